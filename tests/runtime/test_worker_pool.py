"""The library's worker pool (docs/ABI.md: ``sqz_pool_create``/``sqz_run_pool``).

The pool exists because per-call threads started on the caller's CPU and made two
threads slower than one; these tests pin down what must stay true of it: the same bits
for every thread count and for the NULL pool, repeated create/destroy without leaks or
hangs, a busy pool falling back to the calling thread, and a forked child getting a
pool of its own.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import threading

import numpy as np
import pytest
from sqz_testing import compile_and_load, random_inputs

import sqzc
from sqzc.tools.zoo import build


@pytest.fixture(scope="module")
def model() -> sqzc.CompiledModel:
    return compile_and_load(build("squeezenet1.1", image_size=48, num_classes=10, batch=None))


def _raw(m: sqzc.CompiledModel, x: np.ndarray, pool: int | None) -> np.ndarray:
    """One ``sqz_run_pool`` call through ctypes, bypassing the Python runtime."""
    lib = m._lib  # noqa: SLF001 - the test exercises the C entry point itself
    out = np.empty(m.output_specs[0].concrete_shape(x.shape[0]), np.float32)
    raw = np.zeros(m.workspace_size + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    ws = raw[start:start + m.workspace_size]
    ins = (ctypes.c_void_p * 1)(x.ctypes.data)
    outs = (ctypes.c_void_p * 1)(out.ctypes.data)
    assert lib.sqz_run_pool(pool, ins, outs, ws.ctypes.data, x.shape[0]) == 0
    return out


def test_null_pool_and_pools_of_any_size_agree(model: sqzc.CompiledModel) -> None:
    x = random_inputs(model, seed=3, batch=2)["data_0"]
    want = _raw(model, x, None).tobytes()
    lib = model._lib  # noqa: SLF001
    for threads in (1, 2, 3, 5, 0, -1, 300):
        pool = lib.sqz_pool_create(threads)
        assert pool
        try:
            for _ in range(3):
                assert _raw(model, x, pool).tobytes() == want, threads
        finally:
            lib.sqz_pool_destroy(pool)
    lib.sqz_pool_destroy(None)  # a no-op, like free(NULL)


def test_create_destroy_cycles_leave_no_threads(model: sqzc.CompiledModel) -> None:
    lib = model._lib  # noqa: SLF001
    before = len(os.listdir("/proc/self/task"))
    for _ in range(50):
        lib.sqz_pool_destroy(lib.sqz_pool_create(4))
    assert len(os.listdir("/proc/self/task")) == before


def test_busy_pool_runs_the_second_call_alone(model: sqzc.CompiledModel) -> None:
    """Python threads hammering one multi-threaded model: every result is right."""
    m = sqzc.load(model.path, threads=2)
    xs = [random_inputs(m, seed=i, batch=1)["data_0"] for i in range(3)]
    want = [sqzc.load(model.path, threads=1)(x).tobytes() for x in xs]
    errors: list[BaseException] = []

    def hammer(i: int) -> None:
        try:
            for _ in range(30):
                assert m(xs[i]).tobytes() == want[i]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors, errors[0]


def _child(path: str, x: np.ndarray, want: bytes, q: multiprocessing.Queue) -> None:
    m = _shared["m"]
    q.put((m(x).tobytes() == want, sqzc.load(path, threads=2)(x).tobytes() == want))


_shared: dict[str, sqzc.CompiledModel] = {}


def test_forked_child_gets_its_own_pool(model: sqzc.CompiledModel) -> None:
    m = sqzc.load(model.path, threads=2)
    x = random_inputs(m, seed=5, batch=1)["data_0"]
    want = m(x).tobytes()  # the parent's pool now exists
    _shared["m"] = m
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(model.path, x, want, q))
    p.start()
    p.join(60)
    assert p.exitcode == 0, "the forked child hung or crashed calling a pooled model"
    assert q.get(timeout=5) == (True, True)
    assert m(x).tobytes() == want  # and the parent's pool still works
