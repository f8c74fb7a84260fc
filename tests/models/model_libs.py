"""The libraries the whole-model tests compile, declared as ``Lib`` fixture parameters.

A module-scoped fixture parametrized with ``Lib`` values compiles each library once per
session (``Lib.load`` goes through ``sqz_testing.compile_and_load``, which caches
libraries by content in a directory private to the test process). Because the libraries
are fixture *parameters*, ``conftest.py`` can see, right after collection, every library
the selected tests need and compile them up front in parallel worker processes that write
into that same directory (``compile_all``): a full SqueezeNet spends ~5-8 s in LLVM at
-O3, and there are ~20 such libraries. The tests then find them in the cache. This only
warms the cache: a compile that fails in a worker is ignored, and the test that needs the
library compiles it again and reports the error.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import onnx
import sqz_testing
from sqz_testing import compile_and_load, model_path

import sqzc
from sqzc.tools.zoo import ZOO, build

ROOT = Path(__file__).resolve().parents[2]


def find_shared_dir() -> Path | None:
    """The same search as the ``shared_dir`` fixture in tests/conftest.py."""
    for candidate in (ROOT.parent / "shared", ROOT / "shared"):
        if (candidate / "models").is_dir():
            return candidate
    return None


@dataclass(frozen=True)
class Lib:
    """One library to compile: a zoo model (name + build arguments) or an ONNX file.

    ``model`` is a ``sqzc.tools.zoo`` name, or a file path: absolute, or relative to the shared
    folder when ``shared`` is true (then ``source`` is ``None`` if the folder is missing).
    """

    model: str
    opt_level: int = 3
    opset: int = 13
    dtype: str = "float32"
    batch: int | None = 1
    shared: bool = False
    image_size: int = 224

    @property
    def id(self) -> str:
        if self.model not in ZOO:
            return f"{Path(self.model).stem}-O{self.opt_level}"
        batch = "" if self.batch == 1 else f"-batch{self.batch or 'N'}"
        size = "" if self.image_size == 224 else f"-{self.image_size}px"
        return f"{self.model}-op{self.opset}-{self.dtype}{batch}{size}-O{self.opt_level}"

    def source(self, shared_dir: Path | None = None) -> onnx.ModelProto | Path | None:
        """The model to compile (a built zoo model or a file path)."""
        if self.model in ZOO:
            return build(self.model, opset=self.opset, dtype=self.dtype, batch=self.batch,
                         image_size=self.image_size)
        if not self.shared:
            return Path(self.model)
        base = shared_dir or find_shared_dir()
        return None if base is None else base / self.model

    def load(self, shared_dir: Path | None = None) -> sqzc.CompiledModel:
        """Compile (or find in the cache) and load the library."""
        source = self.source(shared_dir)
        assert source is not None, f"{self.model}: the shared folder is missing"
        return compile_and_load(source, opt_level=self.opt_level)


def _compile_one(cache_dir: str, path: str, opt_level: int) -> bool:
    """Worker: compile into the parent's cache; errors are left to the test itself."""
    own = sqz_testing._CACHE
    sqz_testing._CACHE = Path(cache_dir)  # the cache is per process: share the parent's
    if own != sqz_testing._CACHE and own.is_dir() and not any(own.iterdir()):
        own.rmdir()  # the empty directory importing sqz_testing made in this worker
    try:
        compile_and_load(Path(path), opt_level=opt_level)
    except Exception:  # noqa: BLE001 - the test that needs the library reports it
        return False
    return True


def compile_all(libs: Iterable[Lib], workers: int | None = None) -> None:
    """Compile ``libs`` into this process's library cache, in parallel processes."""
    jobs: dict[tuple[bytes, int], tuple[str, int]] = {}  # by content: copies compile once
    # -O3 first: the slow jobs start early, the quick -O0 ones fill the gaps at the end.
    for lib in sorted(set(libs), key=lambda lib: (lib.opt_level == 0, lib.model)):
        source = lib.source()
        if source is None or (isinstance(source, Path) and not source.is_file()):
            continue
        path = model_path(source)
        digest = hashlib.sha256(path.read_bytes()).digest()
        jobs.setdefault((digest, lib.opt_level), (str(path), lib.opt_level))
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    cache = getattr(sqz_testing, "_CACHE", None)
    if workers < 2 or not isinstance(cache, Path):
        return  # nothing to gain (or the helper changed): the tests compile lazily
    before = set(cache.glob("lib-*.so"))
    # spawn, not fork: the parent has onnxruntime and llvmlite loaded (threads, LLVM state).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        done = list(pool.map(_compile_one, [str(cache)] * len(jobs), *zip(*jobs.values())))
    if any(done) and not set(cache.glob("lib-*.so")) - before:
        warnings.warn("compiling the model libraries in parallel produced nothing in "
                      f"{cache}: has sqz_testing's cache changed? The tests compile them "
                      "again, one by one", stacklevel=1)
