"""Concurrency of compiled libraries (issue 6, hardening).

* 8 Python threads x 100 calls on one loaded model give exactly the single-threaded results
  (ctypes releases the GIL, so the calls really overlap; each thread has its own workspace).
* Two different models loaded in one process, called from interleaved threads, do not
  interfere (no shared global state between libraries).
* ``sqzc.load(path, threads=N)`` (N worker pthreads per call) is bit-for-bit identical to
  ``threads=1`` on a SqueezeNet v1.1 (the ABI promises identical results for every thread
  count), for batch 1 and a dynamic batch of 3.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest
from hardening_support import mini_squeezenet, small_conv
from sqz_testing import assert_close, compile_and_load, ort_run, random_inputs

import sqzc
from sqzc.tools.zoo import build


@pytest.fixture(scope="module")
def conv_lib() -> sqzc.CompiledModel:
    return compile_and_load(small_conv(batch=None, cin=3, cout=16, size=15))


@pytest.fixture(scope="module")
def mini_lib() -> sqzc.CompiledModel:
    return compile_and_load(mini_squeezenet(batch=None, image_size=23))


def _inputs(m: sqzc.CompiledModel, seed: int, batch: int) -> np.ndarray:
    return random_inputs(m, seed=seed, batch=batch)[m.input_specs[0].name]


def _hammer(jobs: list[Callable[[], None]]) -> list[BaseException]:
    """Run every job in its own thread, released together; return their exceptions."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def wrap(job: Callable[[], None]) -> None:
        try:
            start.wait()
            job()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive(), "a calling thread hung"
    return errors


@pytest.mark.parametrize("native_threads", [1, 2])
def test_8_threads_x_100_calls_match_single_threaded(conv_lib: sqzc.CompiledModel,
                                                      native_threads: int) -> None:
    m = sqzc.load(conv_lib.path, threads=native_threads)
    n_threads, n_calls = 8, 100
    # Distinct inputs per (thread, call) and batch sizes 1..3, so a mix-up between
    # concurrent calls (shared workspace, shared output) cannot go unnoticed.
    xs = {(t, c): _inputs(m, 1000 * t + c, 1 + (t + c) % 3) for t in range(n_threads)
          for c in range(n_calls)}
    want = {k: m(x) for k, x in xs.items()}  # single-threaded reference
    got: dict[tuple[int, int], np.ndarray] = {}

    def job(t: int) -> Callable[[], None]:
        def run() -> None:
            for c in range(n_calls):
                got[(t, c)] = m(xs[(t, c)])
        return run

    errors = _hammer([job(t) for t in range(n_threads)])
    assert not errors, errors[:3]
    bad = [k for k in xs if not np.array_equal(got[k], want[k])]
    assert not bad, f"{len(bad)} of {len(xs)} concurrent results differ, e.g. {bad[:5]}"
    # The reference itself is right (not just self-consistent).
    assert_close(want[(0, 0)], ort_run(small_conv(batch=None, cin=3, cout=16, size=15),
                                       {"x": xs[(0, 0)]})[0])


def test_two_models_in_one_process_do_not_interfere(conv_lib: sqzc.CompiledModel,
                                                    mini_lib: sqzc.CompiledModel) -> None:
    models = {"conv": sqzc.load(conv_lib.path, threads=2),
              "mini": sqzc.load(mini_lib.path, threads=1)}
    xs = {(name, i): _inputs(m, 50 + i, 1 + i % 2) for name, m in models.items()
          for i in range(20)}
    want = {k: models[k[0]](x) for k, x in xs.items()}
    got: dict[tuple[str, int], np.ndarray] = {}

    def job(name: str, offset: int) -> Callable[[], None]:
        def run() -> None:
            for rep in range(5):
                for i in range(offset, 20, 2):
                    got[(name, i, rep)] = models[name](xs[(name, i)])  # type: ignore[index]
        return run

    errors = _hammer([job(n, o) for n in models for o in (0, 1)] * 2)
    assert not errors, errors[:3]
    bad = [k for k in got if not np.array_equal(got[k], want[k[:2]])]  # type: ignore[index]
    assert not bad, f"{len(bad)} results differ, e.g. {bad[:5]}"
    assert len(got) == 2 * 20 * 5
    # And each model still gives what onnxruntime gives.
    x = xs[("mini", 0)]
    assert_close(want[("mini", 0)],
                 ort_run(mini_squeezenet(batch=None, image_size=23), {"data_0": x})[0])


@pytest.fixture(scope="module")
def squeezenet_lib() -> tuple[sqzc.CompiledModel, object]:
    model = build("squeezenet1.1", image_size=64, num_classes=10, batch=None)
    return compile_and_load(model), model


@pytest.mark.parametrize("batch", [1, 3])
def test_thread_count_is_bit_identical(squeezenet_lib: tuple[sqzc.CompiledModel, object],
                                       batch: int) -> None:
    lib, model = squeezenet_lib
    feeds = random_inputs(lib, seed=batch, batch=batch)
    ref = sqzc.load(lib.path, threads=1).run(feeds)
    for n in (2, 3, 4, 7):
        got = sqzc.load(lib.path, threads=n).run(feeds)
        for name in ref:
            assert got[name].tobytes() == ref[name].tobytes(), \
                f"threads={n} differs from threads=1 (max diff " \
                f"{np.abs(got[name] - ref[name]).max():.3g})"
    want = ort_run(model, feeds)  # type: ignore[arg-type]
    assert_close(ref["softmaxout_1"], want[0])


def test_concurrent_multithreaded_calls(squeezenet_lib: tuple[sqzc.CompiledModel, object]) -> None:
    """Several Python threads, each call itself using 2 worker pthreads."""
    lib, _ = squeezenet_lib
    m = sqzc.load(lib.path, threads=2)
    xs = [random_inputs(m, seed=100 + i, batch=1 + i % 2) for i in range(4)]
    want = [m.run(x) for x in xs]
    got: dict[tuple[int, int], dict[str, np.ndarray]] = {}

    def job(i: int) -> Callable[[], None]:
        def run() -> None:
            for rep in range(8):
                got[(i, rep)] = m.run(xs[i])
        return run

    errors = _hammer([job(i) for i in range(4)])
    assert not errors, errors[:3]
    for (i, _rep), out in got.items():
        assert out["softmaxout_1"].tobytes() == want[i]["softmaxout_1"].tobytes()
