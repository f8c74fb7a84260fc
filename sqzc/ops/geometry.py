"""The geometry shape rules are built from: conv and pool output sizes, ONNX broadcasting."""

from __future__ import annotations

import numpy as np

from sqzc.errors import ModelError

def conv_out_dim(size: int, k: int, s: int, d: int, p0: int, p1: int) -> int:
    """Output length of a convolution along one spatial axis (floor rounding)."""
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def pool_out_dim(size: int, k: int, s: int, d: int, p0: int, p1: int, ceil: bool) -> int:
    """Output length of pooling along one axis; ceil mode drops a window starting in the
    end padding, as PyTorch, onnxruntime and the ONNX reference do."""
    span = size + p0 + p1 - d * (k - 1) - 1
    if not ceil:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= size + p0:
        out -= 1
    return out


def broadcast_shapes(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """Numpy/ONNX multidirectional broadcasting, with a ModelError on mismatch."""
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise ModelError(f"shapes {list(a)} and {list(b)} do not broadcast") from None
