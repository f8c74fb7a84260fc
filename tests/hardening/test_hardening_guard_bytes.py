"""Guard bytes around every buffer a compiled library touches (issue 6, hardening).

The library is called through ctypes directly with ``sqz_run`` declared exactly as
docs/ABI.md says, bypassing ``sqzc.runtime``. Every input, output and the workspace sits
between two guard regions filled with a pattern; after many calls (batch 1 and 3 of a
dynamic-batch SqueezeNet, 1 and 2 worker threads, buffers at 64-byte aligned and merely
4-byte aligned addresses) the guards must be untouched, the inputs unchanged, and the
outputs equal to what ``sqzc.load`` computes. Error returns must not write anything.

The libraries are compiled for the host, natively run, so on an AVX-512 machine these
tests are the memory-safety check of the AVX-512 code that valgrind cannot run (valgrind
has no EVEX decoder; see tests/hardening/valgrind_check.py): the float kernels (zmm
FMA), and, with the int8 mini SqueezeNets (QOperator uint8 and QDQ int8 per-channel,
``hardening_support.mini_squeezenet_int8``), the AVX512-VNNI ``vpdpbusd`` int8 convs,
8-bit pools, concats and (de)quantization. Where the host can run it, the QOperator
model is also compiled for ``skylake-avx512``, the AVX-512BW int8 path (``vpmaddwd
zmm`` on int16 pairs) that no VNNI host would otherwise take.
``test_host_libraries_are_avx512`` checks that the host build really is the AVX-512
(and VNNI) code on such a machine.
"""

from __future__ import annotations

import ctypes
import json

import numpy as np
import pytest
from hardening_support import mini_squeezenet, mini_squeezenet_int8, small_conv
from sqz_testing import compile_and_load

import sqzc
from sqzc.backends.llvm.target import host_target, resolve_target

GUARD = 256  # bytes before and after each buffer


def _declare(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    lib.sqz_metadata.argtypes = []
    lib.sqz_metadata.restype = ctypes.c_char_p
    lib.sqz_workspace_size.argtypes = []
    lib.sqz_workspace_size.restype = ctypes.c_uint64
    # int32_t sqz_run(const void *const *inputs, void *const *outputs, void *workspace,
    #                 int64_t batch, int32_t threads);
    lib.sqz_run.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p),
                            ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32]
    lib.sqz_run.restype = ctypes.c_int32
    return lib


class Guarded:
    """``nbytes`` of payload at ``offset`` (mod 64) inside a pattern-filled allocation."""

    def __init__(self, nbytes: int, offset: int, seed: int) -> None:
        self.nbytes = nbytes
        self.raw = np.empty(nbytes + 2 * GUARD + 128, np.uint8)
        self.start = (-self.raw.ctypes.data) % 64 + GUARD + offset
        rng = np.random.default_rng(seed)
        self.pattern = rng.integers(0, 256, self.raw.size, dtype=np.uint8)
        self.raw[...] = self.pattern

    @property
    def ptr(self) -> int:
        return self.raw.ctypes.data + self.start

    def view(self, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        return self.raw[self.start:self.start + self.nbytes].view(dtype).reshape(shape)

    def guards_intact(self) -> bool:
        s, e = self.start, self.start + self.nbytes
        return bool(np.array_equal(self.raw[:s], self.pattern[:s])
                    and np.array_equal(self.raw[e:], self.pattern[e:]))

    def untouched(self) -> bool:
        return bool(np.array_equal(self.raw, self.pattern))


def _shapes(meta: dict, key: str, batch: int) -> list[tuple[str, np.dtype, tuple[int, ...]]]:
    return [(s["name"], np.dtype(s["dtype"]), tuple(batch if d is None else d for d in s["shape"]))
            for s in meta[key]]


def _host_runs(target: str) -> bool:
    """True if this machine has every ISA feature sqzc assumes for ``target``."""
    host = set(host_target().features.split(","))
    return all(f in host for f in resolve_target(target).features.split(",") if f)


#: (model, target) per dynamic-batch library under test: the float and int8 models for
#: the host, and the AVX-512BW (non-VNNI) int8 path where this machine can run it.
DYN_LIBS = {
    "float-host": (lambda: mini_squeezenet(batch=None, image_size=23), "host"),
    "int8-qop-u8-host": (lambda: mini_squeezenet_int8("qop", "uint8", batch=None,
                                                      image_size=23), "host"),
    "int8-qdq-s8-host": (lambda: mini_squeezenet_int8("qdq", "int8", batch=None,
                                                      image_size=23, per_channel=True),
                         "host"),
    "int8-qop-u8-skylake-avx512": (lambda: mini_squeezenet_int8("qop", "uint8", batch=None,
                                                                image_size=23),
                                   "skylake-avx512"),
}


@pytest.fixture(scope="module", params=list(DYN_LIBS))
def dyn_path(request: pytest.FixtureRequest) -> str:
    build, target = DYN_LIBS[request.param]
    if target != "host" and not _host_runs(target):
        pytest.skip(f"this CPU cannot run {target} code")
    return compile_and_load(build(), target_cpu=target).path


@pytest.fixture(scope="module")
def static_path() -> str:
    return compile_and_load(small_conv(batch=1)).path


def test_host_libraries_are_avx512() -> None:
    """On an AVX-512 (VNNI) machine the host libraries above are 512-bit (VNNI) code,
    so these tests do cover what valgrind cannot run."""
    feats = set(host_target().features.split(","))
    if "+avx512f" not in feats:
        pytest.skip("no AVX-512 on this CPU: valgrind_check.py covers its code")
    for name, (build, target) in DYN_LIBS.items():
        if target != "host":
            continue
        meta = compile_and_load(build(), target_cpu=target).metadata["target"]
        assert meta["vector_width"] == 16, (name, meta)
        assert meta["vnni"] is ("+avx512vnni" in feats), (name, meta)


@pytest.mark.parametrize("offset", [0, 4], ids=["aligned64", "aligned4"])
def test_guards_intact_after_many_calls(dyn_path: str, offset: int) -> None:
    lib = _declare(dyn_path)
    meta = json.loads(lib.sqz_metadata().decode())
    assert meta["dynamic_batch"] is True
    ws_size = int(lib.sqz_workspace_size())
    assert ws_size == meta["workspace_bytes"]
    ref = sqzc.load(dyn_path, threads=1)
    rng = np.random.default_rng(offset)
    calls = 0
    for batch in (1, 3):
        ins_spec = _shapes(meta, "inputs", batch)
        outs_spec = _shapes(meta, "outputs", batch)
        ins = [Guarded(int(np.prod(sh)) * dt.itemsize, offset, 1) for _, dt, sh in ins_spec]
        outs = [Guarded(int(np.prod(sh)) * dt.itemsize, offset, 2) for _, dt, sh in outs_spec]
        ws = Guarded(ws_size, 0, 3)  # the ABI requires a 64-byte aligned workspace
        in_ptrs = (ctypes.c_void_p * len(ins))(*(g.ptr for g in ins))
        out_ptrs = (ctypes.c_void_p * len(outs))(*(g.ptr for g in outs))
        for rep in range(12):
            feeds = {}
            for g, (name, dt, sh) in zip(ins, ins_spec):
                x = rng.standard_normal(sh).astype(dt)
                g.view(dt, sh)[...] = x
                feeds[name] = x
            threads = 1 + rep % 2
            code = lib.sqz_run(in_ptrs, out_ptrs, ws.ptr, batch, threads)
            calls += 1
            assert code == 0
            for g in ins + outs + [ws]:
                assert g.guards_intact(), f"guard overwritten (batch {batch}, call {rep})"
            for g, (name, dt, sh) in zip(ins, ins_spec):
                assert np.array_equal(g.view(dt, sh), feeds[name]), "input modified"
            want = ref.run(feeds)
            for g, (name, dt, sh) in zip(outs, outs_spec):
                assert np.array_equal(g.view(dt, sh), want[name]), f"{name} differs"
    assert calls == 24


def test_error_returns_write_nothing(static_path: str, dyn_path: str) -> None:
    """batch < 1, batch != 1 on a static model, NULL pointers, misaligned workspace."""
    for path, static in ((static_path, True), (dyn_path, False)):
        lib = _declare(path)
        meta = json.loads(lib.sqz_metadata().decode())
        ins_spec, outs_spec = _shapes(meta, "inputs", 1), _shapes(meta, "outputs", 1)
        ins = [Guarded(int(np.prod(sh)) * dt.itemsize, 0, 4) for _, dt, sh in ins_spec]
        outs = [Guarded(int(np.prod(sh)) * dt.itemsize, 0, 5) for _, dt, sh in outs_spec]
        ws = Guarded(int(lib.sqz_workspace_size()), 0, 6)
        in_ptrs = (ctypes.c_void_p * len(ins))(*(g.ptr for g in ins))
        out_ptrs = (ctypes.c_void_p * len(outs))(*(g.ptr for g in outs))
        null_in = (ctypes.c_void_p * len(ins))()
        null_out = (ctypes.c_void_p * len(outs))()
        cases = [(in_ptrs, out_ptrs, ws.ptr, 0, 1), (in_ptrs, out_ptrs, ws.ptr, -5, 2),
                 (null_in, out_ptrs, ws.ptr, 1, 1), (in_ptrs, null_out, ws.ptr, 1, 1),
                 (in_ptrs, out_ptrs, None, 1, 1), (in_ptrs, out_ptrs, ws.ptr + 4, 1, 1),
                 (in_ptrs, out_ptrs, ws.ptr + 32, 1, 2)]
        expect = [1, 1, 2, 2, 2, 3, 3]
        if static:
            cases.append((in_ptrs, out_ptrs, ws.ptr, 2, 1))
            expect.append(1)
        for args, code in zip(cases, expect):
            assert lib.sqz_run(*args) == code, (path, args[3:], code)
            for g in ins + outs + [ws]:
                assert g.untouched(), f"an error return ({code}) wrote memory"


def test_extreme_thread_counts(dyn_path: str) -> None:
    """threads < 1 means 1 and large counts are clamped (docs/ABI.md): same results."""
    lib = _declare(dyn_path)
    meta = json.loads(lib.sqz_metadata().decode())
    ins_spec, outs_spec = _shapes(meta, "inputs", 2), _shapes(meta, "outputs", 2)
    ins = [Guarded(int(np.prod(sh)) * dt.itemsize, 0, 7) for _, dt, sh in ins_spec]
    ws = Guarded(int(lib.sqz_workspace_size()), 0, 8)
    rng = np.random.default_rng(9)
    for g, (_, dt, sh) in zip(ins, ins_spec):
        g.view(dt, sh)[...] = rng.standard_normal(sh).astype(dt)
    in_ptrs = (ctypes.c_void_p * len(ins))(*(g.ptr for g in ins))
    results = []
    for threads in (1, 0, -3, 64, 1000, 2**31 - 1):
        outs = [Guarded(int(np.prod(sh)) * dt.itemsize, 0, 10) for _, dt, sh in outs_spec]
        out_ptrs = (ctypes.c_void_p * len(outs))(*(g.ptr for g in outs))
        assert lib.sqz_run(in_ptrs, out_ptrs, ws.ptr, 2, threads) == 0, threads
        for g in outs + ins + [ws]:
            assert g.guards_intact(), threads
        results.append(b"".join(g.view(dt, sh).tobytes()
                                for g, (_, dt, sh) in zip(outs, outs_spec)))
    assert all(r == results[0] for r in results)
