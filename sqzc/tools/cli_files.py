"""The command line's files: checking output paths and dump folders before any work
(so a bad path fails fast and leaves nothing behind), reading ``--input`` arrays
(.npy/.npz) with errors that name the option and file, and writing .npz archives."""

from __future__ import annotations

import os
from pathlib import Path

from sqzc.errors import UsageError


def check_dump_dir(path: Path | None) -> None:
    """``--dump-dir`` must be a folder, or a path where one can be created (checked before
    any work; the pass manager creates it when the passes start)."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise UsageError(f"--dump-dir '{path}' exists and is not a directory")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--dump-dir '{path}': '{existing}' is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--dump-dir '{path}': '{existing}' is not writable")


def check_output_path(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """Fail before any work if ``path`` cannot be written: its folder must exist and it must
    not be a folder itself (the stages write atomically into the same folder)."""
    from sqzc.backends.llvm.link import output_path_problem

    out = Path(path)
    problem = output_path_problem(out)
    if problem:
        raise UsageError(f"{option} {path}: {problem}")
    return out


def read_arrays(path: str, option: str = "--input") -> object:
    """A .npy file's array, or a .npz file's arrays as ``{name: array}``. Any file numpy
    cannot read as such (missing, empty, a folder, not numpy's format, Python objects)
    is a ``UsageError`` naming the option and the file."""
    import zipfile

    import numpy as np

    what = f"{option} '{path}'"
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what}: no such file")
    if p.is_dir():
        raise UsageError(f"{what} is a directory, not a .npy or .npz file")
    try:
        data = np.load(p, allow_pickle=False)
        if isinstance(data, np.ndarray):
            return data
        with data:
            return {k: data[k] for k in data.files}
    except EOFError:
        raise UsageError(f"{what} is empty, not a .npy or .npz file") from None
    except ValueError as e:
        if "Object arrays" in str(e):
            raise UsageError(f"{what} holds Python objects (dtype object), which sqzc does "
                             "not load; save numeric arrays") from None
        if "pickle" in str(e):
            raise UsageError(f"{what} is not a .npy or .npz file") from None
        raise UsageError(f"cannot read {what}: {e}") from None
    except (OSError, zipfile.BadZipFile, KeyError) as e:
        raise UsageError(f"cannot read {what}: {getattr(e, 'strerror', None) or e}") from None


def run_feeds(specs: list[str], names: list[str]) -> dict[str, object]:
    """The feeds of ``sqzc run``: each ``--input`` is ``NAME=FILE.npy``, a bare ``FILE.npy``
    (single-input models), or a ``FILE.npz`` whose arrays are named after the inputs."""
    feeds: dict[str, object] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if sep and name not in names and Path(spec).exists():
            name, sep, path = "", "", spec  # a file name containing '='
        if not sep:
            path = spec
        elif name not in names:
            raise UsageError(f"--input {spec}: the model has no input '{name}'; its inputs "
                             f"are {', '.join(names)}")
        data = read_arrays(path)
        if isinstance(data, dict):
            if sep:
                raise UsageError(f"--input {spec}: NAME=FILE takes a .npy file; a .npz file "
                                 f"names its arrays itself (use --input {path})")
            arrays = data
        elif sep:
            arrays = {name: data}
        elif len(names) == 1:
            arrays = {names[0]: data}
        else:
            raise UsageError(f"--input {spec}: the model has inputs {', '.join(names)}; use "
                             "--input NAME=FILE.npy for each, or one .npz file")
        for k, v in arrays.items():
            if k in feeds:
                raise UsageError(f"input '{k}' is given more than once")
            feeds[k] = v
    return feeds


def npz_bytes(arrays: dict[str, object]) -> bytes:
    """An uncompressed .npz archive of ``arrays`` (as ``np.savez`` writes; any array name,
    including ones that clash with ``np.savez``'s own parameters)."""
    import io
    import zipfile

    import numpy as np

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, value in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    return buf.getvalue()
