"""Weight layouts of the packed kernels, and their inverses for reference semantics.

A float conv in the channel-blocked layout NCHW[b]c reads its weight as
[OC/b, IC, KH, KW, b] (``sqzc.ops.packing.pack_conv_weight``); a Winograd conv reads the transformed
weight (``sqzc.winograd``); an int8 conv reads [OC/b, IC/g, KH, KW, b, g] quads or pairs
plus a table of corrected biases and multipliers (``pack_qconv``). assign-layout and
select-winograd pack at compile time; the ``unpack_*`` functions give the plain op a
packed one computes, so the numpy references (and constant folding) need no packed
variants.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from sqzc.ops.attrs import ConvAttrs, QConvAttrs
from sqzc.ops.packing import pack_qconv_weight
from sqzc.winograd import untransform_weights


def unpack_conv(a: ConvAttrs, ins: Sequence[np.ndarray]) -> tuple[ConvAttrs, np.ndarray, np.ndarray, np.ndarray]:
    """The plain (attrs, x, w, b) equivalent of a packed conv (for reference semantics)."""
    x, wp, bp = ins[0], ins[1], ins[2]
    if a.winograd:
        w = untransform_weights(wp, a.winograd, a.out_channels)
    else:
        ocb, ic, kh, kw, blk = wp.shape
        w = wp.transpose(0, 4, 1, 2, 3).reshape(ocb * blk, ic, kh, kw)[:a.out_channels]
    plain = dataclasses.replace(a, packed=0, out_channels=0, winograd=0, compact=False)
    return plain, x, np.ascontiguousarray(w), bp[:a.out_channels]


def qconv_input_offset(x_dtype: str, x_zp: int, signed: bool = False) -> int:
    """The constant c with ``sum((x - x_zp) * w) = sum(u * w) - c * sum(w)`` where ``u`` is
    the byte the packed kernel multiplies: unsigned for VNNI and the int16 pairs (int8
    activations are shifted by +128), signed for Arm's SDOT (``signed``: uint8 activations
    are shifted by -128)."""
    if signed:
        return x_zp - (128 if x_dtype == "uint8" else 0)
    return x_zp + (128 if x_dtype == "int8" else 0)


def pack_qconv(a: QConvAttrs, x_dtype: str, w: np.ndarray, b: np.ndarray | None, block: int,
               group: int = 4, signed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Weights [OC, IC, KH, KW] -> [OC/b, IC/g, KH, KW, b, g] (zero padded): int8 quads
    (``group`` 4) for ``vpdpbusd``, or int16 pairs (``group`` 2) for ``pmaddwd`` on
    targets without VNNI (``signed``: for Arm's SDOT, quads multiplied as signed bytes);
    and a [2, OC padded] int32 table: the bias with the zero-point correction folded in,
    then the float32 requantization multipliers as bits (data the
    kernel reads, so layers of equal geometry share code)."""
    oc, ic, kh, kw = w.shape
    ocb = -(-oc // block)
    packed = pack_qconv_weight(w, block, group)
    bias = np.zeros(ocb * block, np.int64)
    if b is not None:
        bias[:oc] = b
    c = qconv_input_offset(x_dtype, a.x_zp, signed)
    bias[:oc] -= c * w.astype(np.int64).reshape(oc, -1).sum(axis=1)
    mult = np.zeros(ocb * block, np.float32)
    mult[:oc] = np.asarray(a.multiplier, np.float32)  # one value (per tensor) or one per oc
    table = np.stack([bias.astype(np.int32), mult.view(np.int32)])
    return packed, table


def unpack_qconv(a: QConvAttrs, x: np.ndarray, wp: np.ndarray, bp: np.ndarray | None
                 ) -> tuple[QConvAttrs, np.ndarray, np.ndarray]:
    """The plain (attrs, weight, bias) a packed qconv computes (for reference semantics)."""
    ocb, icq, kh, kw, blk, group = wp.shape
    oc, ic = a.conv.out_channels, x.shape[1]
    w = wp.transpose(0, 4, 1, 5, 2, 3).reshape(ocb * blk, icq * group, kh, kw)[:oc, :ic]
    c = qconv_input_offset(x.dtype.name, a.x_zp, a.signed_dot)
    assert bp is not None
    b = bp[0, :oc].astype(np.int64) + c * w.astype(np.int64).reshape(oc, -1).sum(axis=1)
    plain = dataclasses.replace(a, conv=dataclasses.replace(a.conv, packed=0, out_channels=0),
                                signed_dot=False)
    return plain, np.ascontiguousarray(w), b.astype(np.int32)
