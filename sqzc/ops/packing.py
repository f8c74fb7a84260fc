"""The packed weight layouts as plain numpy: output channels in blocks of ``b`` (float) and
input channels in groups of ``g`` (int8). Kept apart from ``sqzc.ops.layout`` (which
packs and unpacks whole ops and so needs their attributes) so that the load-time recipes
(``sqzc.ops.recipes``) depend on the layouts alone, not on the op definitions that hold
recipes."""

from __future__ import annotations

import numpy as np

__all__ = ["pack_conv_weight", "pack_qconv_weight"]


def pack_conv_weight(w: np.ndarray, block: int) -> np.ndarray:
    """OIHW -> [OC/b, I, H, W, b] with output channels zero-padded to a multiple of b."""
    oc = w.shape[0]
    ocb = -(-oc // block)
    padded = np.zeros((ocb * block,) + w.shape[1:], dtype=w.dtype)
    padded[:oc] = w
    return np.ascontiguousarray(padded.reshape((ocb, block) + w.shape[1:]).transpose(0, 2, 3, 4, 1))


def pack_qconv_weight(w: np.ndarray, block: int, group: int) -> np.ndarray:
    """int8 OIHW weights -> [OC/b, IC/g, KH, KW, b, g], zero padded: int8 quads (``group``
    4, ``vpdpbusd``) or int16 pairs (``group`` 2, ``pmaddwd``)."""
    oc, ic, kh, kw = w.shape
    ocb, icq = -(-oc // block), -(-ic // group)
    padded = np.zeros((ocb * block, icq * group, kh, kw), np.int8 if group == 4 else np.int16)
    padded[:oc, :ic] = w
    packed = padded.reshape(ocb, block, icq, group, kh, kw).transpose(0, 2, 4, 5, 1, 3)
    return np.ascontiguousarray(packed)
