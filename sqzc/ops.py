"""The closed set of IR operations: kinds, typed attributes and tensor types.

ONNX op-type strings never leave ``frontends/``; everything after import speaks in
``OpKind`` members and the attribute dataclasses below. Shape rules and numpy reference
semantics for each kind are dispatched by ``sqzc.semantics`` (defined in
``sqzc.float_semantics`` and ``sqzc.quant_semantics``).
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
    RELU = "relu"  # max(x, 0)
    CLIP = "clip"  # min(max(x, lo), hi)
    LEAKY_RELU = "leaky_relu"  # x if x >= 0 else alpha * x
    MAXPOOL = "maxpool"  # 2-D max pooling with explicit pads and output size
    AVGPOOL = "avgpool"  # 2-D average pooling (count_include_pad on or off)
    REDUCE = "reduce"  # mean or max over axes (global pools are reduces over H, W)
    CONCAT = "concat"  # join along an axis; inputs may be placed straight into it
    SOFTMAX = "softmax"  # softmax or log-softmax along one axis (opset-13 meaning)
    RESHAPE = "reshape"  # same elements, new static shape (Flatten/Squeeze/Unsqueeze too)
    TRANSPOSE = "transpose"  # permute axes
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


UNARY_ACTIVATIONS = frozenset({OpKind.RELU, OpKind.CLIP, OpKind.LEAKY_RELU})
QUANTIZED = frozenset({OpKind.QUANTIZE, OpKind.DEQUANTIZE, OpKind.QCONV,
                       OpKind.QGLOBAL_AVGPOOL, OpKind.REQUANTIZE, OpKind.LOOKUP, OpKind.QADD,
                       OpKind.QMUL, OpKind.QMATMUL, OpKind.MATMUL_INTEGER,
                       OpKind.CONV_INTEGER, OpKind.QAVGPOOL, OpKind.QSOFTMAX})
INT_DTYPES = frozenset({"uint8", "int8"})
#: The value range of each integer dtype the quantized ops produce (saturation bounds).
INT_RANGE: dict[str, tuple[int, int]] = {
    "uint8": (0, 255), "int8": (-128, 127), "int32": (-(2**31), 2**31 - 1)}
BINARY = frozenset({OpKind.ADD, OpKind.SUB, OpKind.MUL, OpKind.DIV})
ELEMENTWISE = UNARY_ACTIVATIONS | BINARY | {OpKind.CAST, OpKind.IDENTITY}
POOLS = frozenset({OpKind.MAXPOOL, OpKind.AVGPOOL})
#: kinds that only move data and never compute (copies the optimizer may remove).
DATA_MOVEMENT = frozenset({OpKind.RESHAPE, OpKind.TRANSPOSE, OpKind.IDENTITY, OpKind.CONCAT})


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
class Activation:
    """An elementwise epilogue applied in registers before a kernel stores its result.

    ``kind`` is ``"none"``, ``"relu"``, ``"clip"`` (``lo``..``hi``; relu6 is clip 0..6) or
    ``"leaky"`` (slope ``alpha`` below zero).
    """

    kind: str = "none"
    lo: float = 0.0
    hi: float = 0.0
    alpha: float = 0.0

    def __str__(self) -> str:
        if self.kind == "clip":
            if self.lo == 0.0 and self.hi == 6.0:
                return "relu6"
            return f"clip({self.lo!r},{self.hi!r})"
        if self.kind == "leaky":
            return f"leaky({self.alpha!r})"
        return self.kind

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Reference semantics of the epilogue."""
        if self.kind == "relu":
            return np.maximum(x, np.zeros((), x.dtype))
        if self.kind == "clip":
            return np.minimum(np.maximum(x, x.dtype.type(self.lo)), x.dtype.type(self.hi))
        if self.kind == "leaky":
            return np.where(x >= 0, x, x * x.dtype.type(self.alpha)).astype(x.dtype)
        return x


NO_ACTIVATION = Activation()


@dataclass(frozen=True, slots=True)
class NoAttrs:
    """Attributes of kinds that have none."""


@dataclass(frozen=True, slots=True)
class MatMulAttrs:
    """MatMul (numpy semantics). ``from_gemm``: the product of an ONNX Gemm, whose QDQ
    form onnxruntime fuses under QGemm's rule rather than QLinearMatMul's."""

    from_gemm: bool = False
    #: False for a Gemm whose C was dropped (beta 0): onnxruntime still counts C's
    #: DequantizeLinear and its QGemm selector (beta must be 1) leaves the group float
    qgemm_ok: bool = True


@dataclass(frozen=True, slots=True, eq=False)
class ConstAttrs:
    """A constant's value (a numpy array owned by the IR; never mutated in place)."""

    value: np.ndarray


@dataclass(frozen=True, slots=True)
class ConvAttrs:
    """2-D convolution over NCHW; ``pads`` = (top, left, bottom, right), as resolved."""

    kernel: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)
    group: int = 1
    act: Activation = NO_ACTIVATION
    packed: int = 0  # b > 0: weight is pre-packed [OC/b, IC, KH, KW, b], bias padded to b
    out_channels: int = 0  # the true OC when packed (the packed weight is padded)
    winograd: int = 0  # m > 0: packed weight is U of F(m x m, 3x3), [alpha^2, OC/b, IC, b]
    #: s > 0: sum in onnxruntime's MLAS float order (im2col taps in (ic, kh, kw) order,
    #: fused multiply-adds from zero in chunks of s taps, each chunk added to the output,
    #: then bias); set by fold-qdq on the QDQ convs onnxruntime runs in float (sqzc.ort.rules)
    mlas_stride_k: int = 0
    #: the QuantizeLinear after an MLAS-order conv, fused as its epilogue (the result is
    #: then 8-bit): fuse-conv-quantize
    quantize: QuantAttrs | None = None


@dataclass(frozen=True, slots=True)
class ClipAttrs:
    """Bounds of Clip; missing ONNX bounds become +-inf."""

    lo: float = float("-inf")
    hi: float = float("inf")


@dataclass(frozen=True, slots=True)
class LeakyReluAttrs:
    """Slope below zero."""

    alpha: float = 0.01


@dataclass(frozen=True, slots=True)
class PoolAttrs:
    """2-D pooling over NCHW with explicit pads; ``ceil_mode`` only shapes the output."""

    kernel: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    count_include_pad: bool = False
    #: float average pooling that onnxruntime runs with ``MlasPool`` (AveragePool before
    #: opset 19), whose kernel choice fixes the summation order the emitter reproduces
    mlas: bool = False


@dataclass(frozen=True, slots=True)
class ReduceAttrs:
    """Reduction ``mode`` (``mean`` or ``max``) over sorted non-negative ``axes``."""

    mode: str
    axes: tuple[int, ...]
    keepdims: bool = True
    lowest_finite: bool = False  # max never below -FLT_MAX (onnxruntime's max *pooling*)
    #: a GlobalAveragePool: onnxruntime sums with MlasPool's global kernel (4 interleaved
    #: partial sums), whose order the emitter reproduces ...
    mlas_global: bool = False
    #: ... unless its NCHWc transformer takes the pool (row-by-row sums): a 4-D input from
    #: where that transformer works (a graph input, or a float conv or pool, possibly
    #: through elementwise ops) with channels filling its blocks
    nchwc_source: bool = False


@dataclass(frozen=True, slots=True)
class AxisAttrs:
    """A single non-negative axis (Concat)."""

    axis: int


@dataclass(frozen=True, slots=True)
class SoftmaxAttrs:
    """Softmax (or log-softmax when ``log``) along one non-negative axis."""

    axis: int
    log: bool = False


@dataclass(frozen=True, slots=True)
class ReshapeAttrs:
    """The resolved target shape (no 0 or -1 entries left)."""

    shape: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TransposeAttrs:
    """Output axis i is input axis ``perm[i]``."""

    perm: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CastAttrs:
    """Target dtype (numpy name)."""

    to: str


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a node writes its result when concat elimination aliased it.

    The node's output is the slice ``[start, start + extent)`` along ``axis`` of the
    buffer of concat node ``concat``; the dump shows ``into %concat[c=start:end]``.
    """

    concat: str
    axis: int
    start: int


#: Which attribute class each kind carries (checked by the verifier).
ATTRS_OF: dict[OpKind, type] = {
    OpKind.INPUT: NoAttrs,
    OpKind.CONST: ConstAttrs,
    OpKind.CONV: ConvAttrs,
    OpKind.RELU: NoAttrs,
    OpKind.CLIP: ClipAttrs,
    OpKind.LEAKY_RELU: LeakyReluAttrs,
    OpKind.MAXPOOL: PoolAttrs,
    OpKind.AVGPOOL: PoolAttrs,
    OpKind.REDUCE: ReduceAttrs,
    OpKind.CONCAT: AxisAttrs,
    OpKind.SOFTMAX: SoftmaxAttrs,
    OpKind.RESHAPE: ReshapeAttrs,
    OpKind.TRANSPOSE: TransposeAttrs,
    OpKind.ADD: NoAttrs,
    OpKind.SUB: NoAttrs,
    OpKind.MUL: NoAttrs,
    OpKind.DIV: NoAttrs,
    OpKind.MATMUL: MatMulAttrs,
    OpKind.CAST: CastAttrs,
    OpKind.IDENTITY: NoAttrs,
    OpKind.REORDER: NoAttrs,
    OpKind.QUANTIZE: None,  # filled below (QuantAttrs is defined after this table)
    OpKind.DEQUANTIZE: None,
    OpKind.QCONV: None,
    OpKind.QGLOBAL_AVGPOOL: None,
    OpKind.REQUANTIZE: None,
    OpKind.LOOKUP: None,
    OpKind.QADD: None,
    OpKind.QMUL: None,
    OpKind.QMATMUL: None,
    OpKind.MATMUL_INTEGER: None,
    OpKind.CONV_INTEGER: None,
    OpKind.QAVGPOOL: None,
    OpKind.QSOFTMAX: None,
}


@dataclass(frozen=True, slots=True)
class QuantAttrs:
    """Affine quantization ``real = (q - zero_point) * scale`` of an integer tensor.

    One scale/zero point (per tensor) or one per index of ``axis`` (per axis);
    ``dtype`` is the integer type (uint8, int8, or int32 for biases).
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    dtype: str
    axis: int = 1

    @property
    def per_tensor(self) -> bool:
        """True when one scale and zero point cover the whole tensor."""
        return len(self.scale) == 1


@dataclass(frozen=True, slots=True)
class QConvAttrs:
    """Integer convolution: ``acc = bias + sum((x - x_zp) * (w - w_zp))`` in int32, then
    ``y = saturate(round_half_even(float(acc) * multiplier[oc]) + y_zp)``.

    ``multiplier[oc]`` is onnxruntime's float32 ``x_scale * w_scale[oc] / y_scale``
    (computed once at import, in that order and precision). ``w_zp`` is per output
    channel (or a single value). ``out`` is the output quantization (scale kept for
    dequantizing consumers and dumps).
    """

    conv: ConvAttrs
    x_zp: int
    w_zp: tuple[int, ...]
    multiplier: tuple[float, ...]
    out: QuantAttrs
    requant: QuantAttrs | None = None  # fused Q(DQ(y)): the result is re-quantized to this


@dataclass(frozen=True, slots=True)
class QPoolAttrs:
    """Input and output quantization (per tensor) of a quantized global average pool or a
    requantization."""

    x: QuantAttrs
    y: QuantAttrs


@dataclass(frozen=True, slots=True)
class LookupAttrs:
    """``y = table[raw byte of x]``: 256 output values (in ``dtype``), indexed by the input's
    bit pattern read as unsigned (so int8 -128 is entry 128). ``fn`` names what the table
    computes, for dumps (``sigmoid``, ``leaky(0.1)``)."""

    table: tuple[int, ...]
    dtype: str
    fn: str = ""


@dataclass(frozen=True, slots=True)
class QSoftmaxAttrs:
    """onnxruntime's QLinearSoftmax along ``axis`` (opset-13 meaning): exponentials from a
    256-entry table built from ``x_scale`` and the axis length, a float32 sum per row and a
    division rescaled by ``floor(1 / y.scale)`` (``sqzc.ort.oracles.contrib_ops.qlinear_softmax``).
    The input is of ``y.dtype``; its zero point cancels out and is not kept."""

    x_scale: float
    y: QuantAttrs
    axis: int


@dataclass(frozen=True, slots=True)
class QBinaryAttrs:
    """Quantization of the two operands (``a`` is input 0, ``b`` input 1) and of the
    result ``y`` of a quantized add or multiply; all per tensor.

    For ``qadd`` the operand order is significant (onnxruntime's rounding treats its first
    operand differently); the importer orders the operands as onnxruntime does.
    """

    a: QuantAttrs
    b: QuantAttrs
    y: QuantAttrs


@dataclass(frozen=True, slots=True)
class QMatMulAttrs:
    """Integer matmul ``acc = sum_k (a - a_zp) * (b - b_zp[n])`` in int32, then
    ``y = saturate(round_half_even(float(acc) * multiplier[n]) + y_zp)``.

    ``b_zp`` and ``multiplier`` hold one value or one per output column ``n``;
    ``multiplier[n]`` is onnxruntime's float32 ``a_scale * b_scale[n] / y_scale``.
    ``bias`` (empty, one value or one per column) is added to ``acc`` first: the int32 C
    of onnxruntime's QGemm (a folded QDQ Gemm).
    """

    a_zp: int
    b_zp: tuple[int, ...]
    multiplier: tuple[float, ...]
    out: QuantAttrs
    bias: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class IntMatMulAttrs:
    """MatMulInteger: exact int32 ``(a - a_zp) @ (b - b_zp[n])`` (``b_zp``: one value or
    one per column)."""

    a_zp: int
    b_zp: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class IntConvAttrs:
    """ConvInteger: exact int32 ``sum((x - x_zp) * (w - w_zp[oc]))`` over NCHW
    (``w_zp``: one value or one per output channel); padding contributes 0."""

    conv: ConvAttrs
    x_zp: int
    w_zp: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class QAvgPoolAttrs:
    """com.microsoft QLinearAveragePool over NCHW (onnxruntime's float path): window sums
    of ``float32(x_scale * float32(x - x_zp))``, divided by the tap count (or by the whole
    kernel size with ``pool.count_include_pad``), then ``float32(v / y_scale + y_zp)``
    rounded half to even and saturated. ``x`` and ``y`` are per tensor."""

    pool: PoolAttrs
    x: QuantAttrs
    y: QuantAttrs


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
    block: int = 0  # 0: plain row-major; b > 0: channel-blocked NCHW[b]c (see sqzc.layout)

    @property
    def origin_str(self) -> str:
        """Origins joined with '+', as shown in messages and dumps."""
        return "+".join(self.origin) if self.origin else "?"


ATTRS_OF.update({OpKind.QUANTIZE: QuantAttrs, OpKind.DEQUANTIZE: QuantAttrs,
                 OpKind.QCONV: QConvAttrs, OpKind.QGLOBAL_AVGPOOL: QPoolAttrs,
                 OpKind.REQUANTIZE: QPoolAttrs, OpKind.LOOKUP: LookupAttrs,
                 OpKind.QADD: QBinaryAttrs, OpKind.QMUL: QBinaryAttrs,
                 OpKind.QMATMUL: QMatMulAttrs, OpKind.MATMUL_INTEGER: IntMatMulAttrs,
                 OpKind.CONV_INTEGER: IntConvAttrs, OpKind.QAVGPOOL: QAvgPoolAttrs,
                 OpKind.QSOFTMAX: QSoftmaxAttrs})


def activation_of(kind: OpKind, attrs: object) -> Activation:
    """The ``Activation`` a standalone activation op computes (used by fusion and kernels)."""
    if kind is OpKind.RELU:
        return Activation("relu")
    if kind is OpKind.CLIP:
        assert isinstance(attrs, ClipAttrs)
        return Activation("clip", lo=attrs.lo, hi=attrs.hi)
    if kind is OpKind.LEAKY_RELU:
        assert isinstance(attrs, LeakyReluAttrs)
        return Activation("leaky", alpha=attrs.alpha)
    raise ValueError(f"{kind.value} is not an activation")
