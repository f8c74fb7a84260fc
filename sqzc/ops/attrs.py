"""The typed attributes of the IR's ops: one frozen dataclass per kind of parameters.

Each ``OpDef`` names the class its kind carries (the verifier checks it). The activation
op's attributes, and a conv's epilogue, are an ``Activation`` (``sqzc.ops.activations``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sqzc.ops.activations import NO_ACTIVATION, Activation
from sqzc.ops.kinds import quant_range

if TYPE_CHECKING:
    from sqzc.ops.recipes import Recipe



@dataclass(frozen=True, slots=True)
class OrtOrder:
    """The onnxruntime float kernel whose summation order an op must reproduce, bit for
    bit, on a QDQ model's float path: ``sgemm`` (im2col + MLAS sgemm, K summed in slices
    of ``stride_k``), ``mlas_pool`` (``MlasPool``'s kernel for the shape), ``mlas_global``
    (its global kernel: four interleaved partial sums) or ``mlas_global_or_nchwc`` (that,
    unless onnxruntime's NCHWc transformer takes the pool for the target's block size).
    Data only: ``sqzc.ort.orders`` decides it and tells the emitters what it means."""

    kernel: str
    stride_k: int = 0

    def __str__(self) -> str:
        return f"{self.kernel}/{self.stride_k}" if self.stride_k else self.kernel


@dataclass(frozen=True, slots=True)
class NoAttrs:
    """Attributes of kinds that have none."""


@dataclass(frozen=True, slots=True)
class MatMulAttrs:
    """MatMul (numpy semantics). A product of an ONNX Gemm (``source``) has a QDQ form
    onnxruntime fuses under QGemm's rule rather than QLinearMatMul's."""

    #: the ONNX op it came from: ``matmul``, ``gemm``, or ``gemm_beta0`` for a Gemm whose C
    #: was dropped (beta 0; onnxruntime still counts C's DequantizeLinear and its QGemm
    #: selector, which needs beta 1, leaves the group float)
    source: str = "matmul"


@dataclass(frozen=True, slots=True, eq=False)
class ConstAttrs:
    """A constant's value (a numpy array owned by the IR; never mutated in place) and, for
    a tensor a pass derived from another (packed, Winograd-transformed, padded), the
    ``Recipe`` that rebuilds it from its source (``sqzc.ops.recipes``). The recipe is
    provenance, not identity: dumps and comparisons ignore it."""

    value: np.ndarray
    recipe: Recipe | None = field(default=None, compare=False, repr=False)


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
    #: one kernel for all layers, geometry at run time (select-compact-conv, --optimize size)
    compact: bool = False
    #: ``sgemm/s``: sum in onnxruntime's MLAS float order (im2col taps in (ic, kh, kw)
    #: order, fused multiply-adds from zero in chunks of s taps, each chunk added to the
    #: output, then bias); set by fold-qdq on the QDQ convs onnxruntime runs in float
    ort_order: OrtOrder | None = None
    #: the QuantizeLinear after an MLAS-order conv, fused as its epilogue (the result is
    #: then 8-bit): fuse-conv-quantize
    quantize: QuantAttrs | None = None


@dataclass(frozen=True, slots=True)
class PoolAttrs:
    """2-D pooling over NCHW with explicit pads; ``ceil_mode`` only shapes the output."""

    kernel: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    count_include_pad: bool = False
    #: ``mlas_pool``: a float average pool onnxruntime runs with ``MlasPool`` (AveragePool
    #: before opset 19), whose kernel choice fixes the summation order the emitter follows
    ort_order: OrtOrder | None = None


@dataclass(frozen=True, slots=True)
class ReduceAttrs:
    """Reduction ``mode`` (``mean`` or ``max``) over sorted non-negative ``axes``."""

    mode: str
    axes: tuple[int, ...]
    keepdims: bool = True
    lowest_finite: bool = False  # max never below -FLT_MAX (onnxruntime's max *pooling*)
    #: a GlobalAveragePool: ``mlas_global`` (onnxruntime sums with MlasPool's global
    #: kernel, 4 interleaved partial sums, whose order the emitter follows) or
    #: ``mlas_global_or_nchwc`` (the same, unless its NCHWc transformer takes the pool and
    #: sums row by row: a 4-D input from where that transformer works, with channels
    #: filling its blocks; ``sqzc.ort.orders.runs_mlas_global_pool``)
    ort_order: OrtOrder | None = None


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
class SliceAttrs:
    """Output index i of axis k reads input index ``starts[k] + i * steps[k]``, for
    ``sizes[k]`` indices: ONNX Slice with its clamping already applied, one entry per
    axis (untouched axes are ``0, 1, dim``)."""

    starts: tuple[int, ...]
    steps: tuple[int, ...]
    sizes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CastAttrs:
    """Target dtype (numpy name)."""

    to: str


@dataclass(frozen=True, slots=True)
class QuantAttrs:
    """Affine quantization ``real = (q - zero_point) * scale`` of an integer tensor.

    One scale/zero point (per tensor) or one per index of ``axis`` (per axis);
    ``dtype`` is the integer type (uint8, int8, or int32 for biases). ``bits`` is 4 for
    ONNX INT4/UINT4 tensors, which the IR holds one value per byte in an int8/uint8
    container: it narrows QuantizeLinear's saturation to [-8, 7] / [0, 15] and makes the
    parameters differ from an 8-bit tensor's (passes that fold a QuantizeLinear into an
    8-bit kernel leave a 4-bit one alone).
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    dtype: str
    axis: int = 1
    bits: int = 8

    @property
    def qrange(self) -> tuple[int, int]:
        """The saturation bounds of the quantized values (``quant_range``)."""
        return quant_range(self.dtype, self.bits)

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
    #: the packed kernel multiplies signed activation bytes (Arm SDOT: int8 x int8), not
    #: unsigned ones (x86 VNNI u8 x s8, and the int16 pairs): which constant the packed
    #: bias folds in (``sqzc.ops.layout.qconv_input_offset``); set by assign-layout
    signed_dot: bool = False


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
