"""The 256-entry lookup tables of onnxruntime's table-driven quantized ops.

QLinearSigmoid, QLinearLeakyRelu and the identity table that requantizes (QLinearConcat's
per-input rescale) are, in onnxruntime, a table indexed by the input byte, built once
from float32 arithmetic (``QlinearBuildLookupTable``). sqzc builds the same table at
compile time, from the bit-exact oracles, and its LOOKUP op indexes it at run time.
"""

from __future__ import annotations

import numpy as np

from sqzc.ops import QuantAttrs
from sqzc.ort.oracles import lookup_ops


def lookup_table(fn: str, x: QuantAttrs, y: QuantAttrs, alpha: float = 0.0) -> tuple[int, ...]:
    """onnxruntime's 256-entry table (``QlinearBuildLookupTable``) for ``fn`` = ``sigmoid``,
    ``leaky`` or ``identity``, indexed by the input's raw byte; entries are ``y.dtype``
    values. Built with the ``sqzc.ort.oracles.contrib_ops`` formulas (float32, MLAS logistic)."""
    q = np.arange(256, dtype=np.uint8).view(x.dtype)
    args = (q, x.scale[0], x.zero_point[0], y.scale[0], y.zero_point[0])
    if fn == "sigmoid":
        out = lookup_ops.qlinear_sigmoid(*args)
    elif fn == "leaky":
        out = lookup_ops.qlinear_leaky_relu(*args, alpha=alpha)
    elif fn == "identity":
        out = lookup_ops.qlinear_concat(y.scale[0], np.asarray(y.zero_point[0], y.dtype),
                                [(q, x.scale[0], x.zero_point[0])], 0)
    else:
        raise ValueError(f"unknown lookup function {fn!r}")
    return tuple(int(v) for v in out)
