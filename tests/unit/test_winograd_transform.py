"""The Winograd filter transform's summation order is a specification (issue 21): a library
that stores compressed 3x3 filters rebuilds ``U = G g G^T`` at load time and must produce
the same float32 bits as the compiler. ``filter_transform`` writes the order down; these
tests pin it to a scalar loop that spells it out, and to what the compiler computed before
(``np.einsum`` on C-contiguous input), so the weights of existing builds do not change."""

from __future__ import annotations

import numpy as np
import pytest

from sqzc.winograd import filter_transform, matrices, transform_weights


def _spelled_out(w: np.ndarray, g: np.ndarray) -> np.ndarray:
    """acc = +0.0; for k: for l: acc += (G[i, k] * w[o, c, k, l]) * G[j, l], in float64."""
    a = g.shape[0]
    u = np.empty((a, a) + w.shape[:2])
    for o in range(w.shape[0]):
        for c in range(w.shape[1]):
            for i in range(a):
                for j in range(a):
                    acc = 0.0
                    for k in range(3):
                        for l in range(3):  # noqa: E741
                            acc += (float(g[i, k]) * float(w[o, c, k, l])) * float(g[j, l])
                    u[i, j, o, c] = acc
    return u


def _tensors() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    sparse = rng.standard_normal((8, 5, 3, 3)).astype(np.float32)
    sparse[rng.random(sparse.shape) < 0.7] = 0.0
    return [rng.standard_normal((6, 4, 3, 3)).astype(np.float32),
            (rng.standard_normal((3, 7, 3, 3)) * 1e-30).astype(np.float32),
            (rng.standard_normal((5, 3, 3, 3)) * 1e30).astype(np.float32), sparse]


@pytest.mark.parametrize("m", (2, 4))
def test_filter_transform_is_the_written_order(m: int) -> None:
    g = matrices(m).g
    for w in _tensors():
        got = filter_transform(w, g)
        assert np.array_equal(got.view(np.uint64), _spelled_out(w, g).view(np.uint64))


@pytest.mark.parametrize("m", (2, 4))
def test_filter_transform_equals_the_old_einsum(m: int) -> None:
    g = matrices(m).g
    for w in _tensors():
        old = np.einsum("ik,ockl,jl->ijoc", g, np.ascontiguousarray(w, np.float64), g)
        assert np.array_equal(filter_transform(w, g).view(np.uint64), old.view(np.uint64))


def test_a_fortran_ordered_filter_gives_the_same_transform() -> None:
    """The order no longer depends on the memory layout of the input (einsum's did)."""
    g = matrices(4).g
    w = _tensors()[0]
    fortran = np.asfortranarray(w)
    assert np.array_equal(transform_weights(fortran, 4, 16), transform_weights(w, 4, 16))
    assert np.array_equal(filter_transform(fortran, g), filter_transform(w, g))
