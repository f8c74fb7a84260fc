"""Convolutions: float Conv (plain, channel-blocked, Winograd, MLAS order), QLinearConv
(requantizing, plain or VNNI-packed) and ConvInteger.

The float conv's variants are kernels of one kind: select-winograd sets ``winograd``,
fold-qdq sets ``ort_order`` (onnxruntime's sgemm summation order), and ``_conv_variant``
turns that into the emitter variant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from sqzc.errors import ModelError
from sqzc.ops.attrs import ConvAttrs, IntConvAttrs, QConvAttrs
from sqzc.ops.defs.quantize import dequantize, quantize, requantize
from sqzc.ops.geometry import conv_out_dim
from sqzc.ops.kinds import OpKind, TensorType
from sqzc.ops.layout import unpack_conv, unpack_qconv
from sqzc.ops.opdef import EIGHT_BIT, OpDef, define, kernels, need_8bit
from sqzc.ort.oracles import mlas, onnx_ops

def conv_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, ConvAttrs)
    x, w = ins[0], ins[1]
    if a.packed:
        return _packed_conv_shape(a, ins)
    if len(x.shape) != 4 or len(w.shape) != 4:
        raise ModelError(f"Conv needs 4-D input and weight, got {list(x.shape)} and {list(w.shape)}")
    n, c, h, wd = x.shape
    oc, icg, kh, kw = w.shape
    if a.group < 1 or c % a.group or oc % a.group or icg * a.group != c:
        raise ModelError(
            f"Conv input has {c} channels but weight {list(w.shape)} with group={a.group} "
            f"expects {icg * a.group}"
        )
    if (kh, kw) != a.kernel:
        raise ModelError(f"Conv kernel_shape {list(a.kernel)} != weight {list(w.shape)}")
    if len(ins) > 2 and ins[2].shape != (oc,):
        raise ModelError(f"Conv bias shape {list(ins[2].shape)} != [{oc}]")
    oh = conv_out_dim(h, kh, a.strides[0], a.dilations[0], a.pads[0], a.pads[2])
    ow = conv_out_dim(wd, kw, a.strides[1], a.dilations[1], a.pads[1], a.pads[3])
    if oh < 1 or ow < 1:
        raise ModelError(f"Conv output would be empty ({oh}x{ow}) for input {list(x.shape)}")
    return TensorType((n, oc, oh, ow), a.quantize.dtype if a.quantize else x.dtype)


def _packed_conv_shape(a: ConvAttrs, ins: Sequence[TensorType]) -> TensorType:
    """Shape rule for a conv whose weight is packed [OCb, IC, KH, KW, b] (OC in out_channels)."""
    x, w = ins[0], ins[1]
    n, c, h, wd = x.shape
    if a.winograd:
        alpha = a.winograd + 2
        if len(w.shape) != 4 or w.shape[0] != alpha * alpha or w.shape[2] != c \
                or w.shape[3] != a.packed or a.kernel != (3, 3) or a.strides != (1, 1) \
                or a.dilations != (1, 1) or a.group != 1:
            raise ModelError(f"Winograd conv weight {list(w.shape)} does not fit input "
                             f"{list(x.shape)}")
        oh = conv_out_dim(h, 3, 1, 1, a.pads[0], a.pads[2])
        ow = conv_out_dim(wd, 3, 1, 1, a.pads[1], a.pads[3])
        return TensorType((n, a.out_channels, oh, ow), x.dtype)
    if len(w.shape) != 5:
        raise ModelError(f"packed conv weight {list(w.shape)} is not [OC/b, IC, KH, KW, b]")
    ocb, ic, kh, kw, blk = w.shape
    if blk != a.packed or ic * a.group != c or (kh, kw) != a.kernel \
            or (a.group > 1 and a.group == a.out_channels and ic != 1):
        raise ModelError(f"packed conv weight {list(w.shape)} does not fit input {list(x.shape)}")
    oh = conv_out_dim(h, kh, a.strides[0], a.dilations[0], a.pads[0], a.pads[2])
    ow = conv_out_dim(wd, kw, a.strides[1], a.dilations[1], a.pads[1], a.pads[3])
    return TensorType((n, a.out_channels, oh, ow), x.dtype)


def ref_conv(a: ConvAttrs, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Direct convolution in float64-free numpy (accumulates in the input dtype)."""
    n, c, h, wd = x.shape
    oc, icg, kh, kw = w.shape
    (sh, sw), (dh, dw), g = a.strides, a.dilations, a.group
    xp = np.pad(x, ((0, 0), (0, 0), (a.pads[0], a.pads[2]), (a.pads[1], a.pads[3])))
    oh = conv_out_dim(h, kh, sh, dh, a.pads[0], a.pads[2])
    ow = conv_out_dim(wd, kw, sw, dw, a.pads[1], a.pads[3])
    out = np.zeros((n, oc, oh, ow), dtype=x.dtype)
    ocg = oc // g
    for gi in range(g):
        xs = xp[:, gi * icg:(gi + 1) * icg]
        ws = w[gi * ocg:(gi + 1) * ocg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                           j * dw:j * dw + sw * (ow - 1) + 1:sw]
                out[:, gi * ocg:(gi + 1) * ocg] += np.einsum(
                    "nchw,oc->nohw", patch, ws[:, :, i, j]).astype(x.dtype)
    if b is not None:
        out += b.reshape(1, oc, 1, 1).astype(x.dtype)
    out = a.act.apply(out)
    if a.quantize is not None:
        out = quantize(out, a.quantize)
    return out


def _ref_conv_op(a: ConvAttrs, ins: Sequence[np.ndarray]) -> np.ndarray:
    if a.packed:
        return ref_conv(*unpack_conv(a, ins))
    return ref_conv(a, ins[0], ins[1], ins[2] if len(ins) > 2 else None)


def _conv_macs(a: ConvAttrs, ins: Sequence[TensorType], out: TensorType) -> int:
    n, oc, oh, ow = out.shape
    return n * oc * oh * ow * (ins[0].shape[1] // a.group) * a.kernel[0] * a.kernel[1]


def is_depthwise(a: ConvAttrs, in_channels: int, out_channels: int) -> bool:
    """One input channel per output channel and group (MobileNet's 3x3 and 5x5 convs)."""
    return a.group > 1 and a.group == in_channels == out_channels


def _conv_variant(a: ConvAttrs) -> str:
    """``winograd`` (select-winograd transformed its weights), ``mlas`` (fold-qdq gave it
    onnxruntime's MLAS summation order), ``compact`` (select-compact-conv: one kernel
    with run-time geometry, for ``--optimize size``), ``depthwise`` (a packed conv with one
    channel per group) or ``direct``."""
    if a.packed and a.group > 1 and a.group == a.out_channels:
        return "depthwise"
    if a.winograd:
        return "winograd"
    if a.ort_order is not None:
        return "mlas"
    if a.compact:
        return "compact"
    return "direct"


def _qconv_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, QConvAttrs)
    if a.conv.packed:
        x, w = ins[0], ins[1]
        n, c, h, wd = x.shape
        ocb, icq, kh, kw, blk, group = w.shape
        if blk != a.conv.packed or group not in (2, 4) or icq != -(-c // group) \
                or (kh, kw) != a.conv.kernel:
            raise ModelError(f"packed qconv weight {list(w.shape)} does not fit {list(x.shape)}")
        oh = conv_out_dim(h, kh, a.conv.strides[0], a.conv.dilations[0], a.conv.pads[0],
                          a.conv.pads[2])
        ow = conv_out_dim(wd, kw, a.conv.strides[1], a.conv.dilations[1], a.conv.pads[1],
                          a.conv.pads[3])
        return TensorType((n, a.conv.out_channels, oh, ow), (a.requant or a.out).dtype)
    if ins[0].dtype not in ("uint8", "int8") or ins[1].dtype not in ("uint8", "int8"):
        raise ModelError(f"QLinearConv needs 8-bit input and weight, got {ins[0]} and {ins[1]}")
    if len(ins) > 2 and ins[2].dtype != "int32":
        raise ModelError(f"QLinearConv bias must be int32, got {ins[2]}")
    t = conv_shape(a.conv, [TensorType(ins[0].shape, "float32"),
                             TensorType(ins[1].shape, "float32")]
                    + ([TensorType(ins[2].shape, "float32")] if len(ins) > 2 else []))
    return TensorType(t.shape, (a.requant or a.out).dtype)


def ref_qconv(a: QConvAttrs, x: np.ndarray, w: np.ndarray, b: np.ndarray | None
              ) -> np.ndarray:
    """QLinearConv with int32 accumulation (exact in float64 for these sizes)."""
    if a.conv.packed:
        a, w, b = unpack_qconv(a, x, w, b)
    wz = np.asarray(a.w_zp, np.int64).reshape(-1, 1, 1, 1) if len(a.w_zp) > 1 else a.w_zp[0]
    xf = (x.astype(np.int64) - a.x_zp).astype(np.float64)
    wf = (w.astype(np.int64) - wz).astype(np.float64)
    acc = ref_conv(dataclasses.replace(a.conv, act=type(a.conv.act)()), xf, wf, None)
    acc = np.rint(acc).astype(np.int64)
    if b is not None:
        acc = acc + b.astype(np.int64).reshape(1, -1, 1, 1)
    m = np.asarray(a.multiplier, np.float32)
    m = m.reshape(1, -1, 1, 1) if m.size > 1 else m.reshape(())
    y = requantize(acc.astype(np.int32), m, a.out)
    return quantize(dequantize(y, a.out), a.requant) if a.requant is not None else y


def conv_multipliers(x_scale: float, w_scale: tuple[float, ...], y_scale: float
                     ) -> tuple[float, ...]:
    """onnxruntime's QLinearConv requantization scales: float32 ``x_scale * w_scale / y_scale``
    evaluated in that order (qlinearconv.cc), one per output channel."""
    m = onnx_ops.qlinear_conv_multipliers(np.float32(x_scale), np.asarray(w_scale, np.float32),
                                          np.float32(y_scale))
    return tuple(float(v) for v in m)


def _qconv_macs(a: QConvAttrs, ins: Sequence[TensorType], out: TensorType) -> int:
    return _conv_macs(a.conv, ins, out)


def _conv_integer_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, IntConvAttrs)
    need_8bit("ConvInteger", ins)
    if a.conv.packed:
        raise ModelError("ConvInteger has no packed form")
    t = conv_shape(a.conv, [TensorType(i.shape, "float32") for i in ins])
    if len(a.w_zp) not in (1, t.shape[1]):
        raise ModelError(f"ConvInteger: {len(a.w_zp)} weight zero points for "
                         f"{t.shape[1]} output channels")
    return TensorType(t.shape, "int32")


def ref_conv_integer(a: IntConvAttrs, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ConvInteger: exact int32 convolution of the zero-point-centred operands."""
    c = a.conv
    wz = np.asarray(a.w_zp, np.int64)
    wz = wz.reshape(-1, 1, 1, 1) if wz.size > 1 else wz.reshape(())
    acc = onnx_ops.conv_accumulate(x.astype(np.int64) - a.x_zp, w.astype(np.int64) - wz,
                              c.strides, c.pads, c.dilations, c.group)
    return mlas.wrap_i32(acc)


define(OpDef(OpKind.CONV, ConvAttrs, arity=(2, 3), operands="float", shape=conv_shape,
             reference=_ref_conv_op, macs=_conv_macs, variant=_conv_variant,
             kernels=frozenset({("float", "plain", "direct"), ("float", "plain", "mlas"),
                                ("float", "blocked", "direct"),
                                ("float", "blocked", "compact"),
                                ("float", "blocked", "depthwise"),
                                ("float", "blocked", "winograd")})))
define(OpDef(OpKind.QCONV, QConvAttrs, arity=(2, 3), operands="int8", shape=_qconv_shape,
             reference=lambda a, ins: ref_qconv(a, ins[0], ins[1],
                                                ins[2] if len(ins) > 2 else None),
             macs=_qconv_macs, kernels=kernels(EIGHT_BIT, ("plain", "blocked"))))
define(OpDef(OpKind.CONV_INTEGER, IntConvAttrs, arity=(2, 2), operands="int8",
             shape=_conv_integer_shape, reference=lambda a, ins: ref_conv_integer(a, *ins),
             kernels=kernels(EIGHT_BIT)))
