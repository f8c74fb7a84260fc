"""The packed integer conv's bias fold (``sqzc.ops.layout.pack_qconv``), for each way the
blocked kernels multiply activation bytes: unsigned (x86 VNNI, the int16 pairs) or
signed (Arm SDOT, ``signed_dot``). The packed reference (``ref_qconv`` through
``unpack_qconv``) must equal the plain one for int8 and uint8 activations with any zero
point, and the two folds must differ by exactly 128 x sum(w) where they should."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sqzc.ops import ConvAttrs, QConvAttrs, QuantAttrs
from sqzc.ops.defs.conv import ref_qconv
from sqzc.ops.layout import pack_qconv, qconv_input_offset


def _attrs(x_dtype: str, x_zp: int) -> QConvAttrs:
    conv = ConvAttrs((3, 3), pads=(1, 1, 1, 1))
    return QConvAttrs(conv, x_zp, (0,), (0.003,), QuantAttrs((0.05,), (3,), "uint8"))


@pytest.mark.parametrize("x_dtype, x_zp", [("uint8", 0), ("uint8", 128), ("uint8", 37),
                                           ("int8", 0), ("int8", -5)])
@pytest.mark.parametrize("group, signed", [(4, False), (2, False), (4, True)])
def test_packed_reference_equals_plain(x_dtype: str, x_zp: int, group: int, signed: bool
                                       ) -> None:
    rng = np.random.default_rng(7)
    lo, hi = (0, 256) if x_dtype == "uint8" else (-128, 128)
    x = rng.integers(lo, hi, (1, 12, 5, 6)).astype(x_dtype)
    w = rng.integers(-128, 128, (20, 12, 3, 3)).astype(np.int8)
    b = rng.integers(-3000, 3000, 20).astype(np.int32)
    a = _attrs(x_dtype, x_zp)
    want = ref_qconv(a, x, w, b)
    wp, bp = pack_qconv(a, x_dtype, w, b, 8, group, signed)
    packed = dataclasses.replace(a, conv=dataclasses.replace(a.conv, packed=8, out_channels=20),
                                 signed_dot=signed)
    np.testing.assert_array_equal(ref_qconv(packed, x, wp, bp), want)


def test_the_signed_fold_moves_by_128_for_uint8_only() -> None:
    assert qconv_input_offset("uint8", 128, signed=True) == 0
    assert qconv_input_offset("uint8", 128) == 128
    assert qconv_input_offset("int8", 5, signed=True) == 5
    assert qconv_input_offset("int8", 5) == 133
