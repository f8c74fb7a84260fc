"""The IR's vocabulary: op kinds, dtypes, tensor types and the op node.

ONNX op-type strings never leave ``frontends/``; everything after import speaks in
``OpKind`` members. What each kind means (attributes, arity, shape rule, numpy reference,
kernels) is its one ``OpDef`` (``sqzc.ops.opdef``, entries in ``sqzc/ops/defs/``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

#: dtypes the IR knows, by numpy name, with the short spelling used in the text dump.
DTYPE_SHORT: dict[str, str] = {
    "float32": "f32",
    "float16": "f16",
    "float64": "f64",
    "int64": "i64",
    "int32": "i32",
    "int8": "i8",
    "uint8": "u8",
    "bool": "bool",
}


SHORT_DTYPE: dict[str, str] = {v: k for k, v in DTYPE_SHORT.items()}


FLOAT_DTYPES = frozenset({"float32", "float16", "float64"})


class OpKind(enum.Enum):
    """Every operation the IR can hold."""

    INPUT = "input"  # a graph input; its buffer is passed in by the caller
    CONST = "const"  # a compile-time constant (weights, shapes, scalars)
    CONV = "conv"  # 2-D convolution (groups, strides, pads, dilations) + fused epilogue
    ACTIVATION = "activation"  # an element-wise activation of the table (relu, clip, ...)
    MAXPOOL = "maxpool"  # 2-D max pooling with explicit pads and output size
    AVGPOOL = "avgpool"  # 2-D average pooling (count_include_pad on or off)
    REDUCE = "reduce"  # mean or max over axes (global pools are reduces over H, W)
    CONCAT = "concat"  # join along an axis; inputs may be placed straight into it
    SOFTMAX = "softmax"  # softmax or log-softmax along one axis (opset-13 meaning)
    RESHAPE = "reshape"  # same elements, new static shape (Flatten/Squeeze/Unsqueeze too)
    TRANSPOSE = "transpose"  # permute axes
    SLICE = "slice"  # a strided window of every axis (Slice; Split is one per output)
    ADD = "add"  # numpy-broadcasting elementwise binary ops
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    MATMUL = "matmul"  # numpy matmul semantics (batched, broadcasting)
    CAST = "cast"  # dtype conversion (float16 <-> float32 at the model boundary)
    IDENTITY = "identity"  # copy; Dropout in inference mode becomes this too
    REORDER = "reorder"  # channel-blocked (NCHW[b]c) -> plain NCHW layout conversion
    QUANTIZE = "quantize"  # float32 -> uint8/int8 (scale, zero point; per tensor or axis)
    DEQUANTIZE = "dequantize"  # uint8/int8/int32 -> float32
    QCONV = "qconv"  # integer convolution (int32 accumulation) + requantization
    QGLOBAL_AVGPOOL = "qglobal_avgpool"  # quantized global average pool (requantizing)
    REQUANTIZE = "requantize"  # 8 bit -> 8 bit with new scale/zero point (exactly Q(DQ(x)))
    LOOKUP = "lookup"  # 8 bit -> 8 bit through a 256-entry table indexed by the raw byte
    QADD = "qadd"  # quantized broadcasting add (onnxruntime's fused-multiply-add formula)
    QMUL = "qmul"  # quantized broadcasting multiply (onnxruntime's unfused formula)
    QMATMUL = "qmatmul"  # integer matmul (int32 accumulation) + requantization
    MATMUL_INTEGER = "matmul_integer"  # integer matmul with zero points -> int32
    CONV_INTEGER = "conv_integer"  # integer 2-D convolution with zero points -> int32
    QAVGPOOL = "qavgpool"  # quantized 2-D average pool (onnxruntime's float32 path)
    QSOFTMAX = "qsoftmax"  # quantized softmax along an axis (onnxruntime's QLinearSoftmax)


INT_DTYPES = frozenset({"uint8", "int8"})


#: The value range of each integer dtype the quantized ops produce (saturation bounds).
INT_RANGE: dict[str, tuple[int, int]] = {
    "uint8": (0, 255), "int8": (-128, 127), "int32": (-(2**31), 2**31 - 1)}


def quant_range(dtype: str, bits: int = 8) -> tuple[int, int]:
    """Saturation bounds of a ``bits``-wide value held in ``dtype``: INT_RANGE for 8 bits
    and more, [-8, 7] / [0, 15] for INT4 / UINT4 in their 8-bit containers."""
    if bits >= 8 or dtype == "int32":
        return INT_RANGE[dtype]
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if dtype == "int8" else (0, (1 << bits) - 1)


@dataclass(frozen=True, slots=True)
class TensorType:
    """A static shape and a dtype (numpy name). The batch axis is always concrete here."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        """Bytes of a dense buffer holding this tensor."""
        return self.size * np.dtype(self.dtype).itemsize

    def __str__(self) -> str:
        return f"{DTYPE_SHORT.get(self.dtype, self.dtype)}[{','.join(map(str, self.shape))}]"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a node writes its result when concat elimination aliased it.

    The node's output is the slice ``[start, start + extent)`` along ``axis`` of the
    buffer of concat node ``concat``; the dump shows ``into %concat[c=start:end]``.
    """

    concat: str
    axis: int
    start: int


@dataclass(frozen=True, slots=True, eq=False)
class OpNode:
    """One IR operation producing one tensor.

    ``inputs`` holds operand order (a DiGraph cannot hold two edges between one pair, as
    in ``Concat(x, x)``); ``origin`` names the ONNX node(s) it came from, joined by fusion,
    so every error and dump line can point back at the user's model.
    """

    kind: OpKind
    attrs: object
    out: TensorType
    inputs: tuple[str, ...] = ()
    origin: tuple[str, ...] = ()
    into: Placement | None = None
    block: int = 0  # 0: plain row-major; b > 0: channel-blocked NCHW[b]c (see sqzc.ops.layout)

    @property
    def origin_str(self) -> str:
        """Origins joined with '+', as shown in messages and dumps."""
        return "+".join(self.origin) if self.origin else "?"
