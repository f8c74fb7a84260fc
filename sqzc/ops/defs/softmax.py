"""Softmax and log-softmax along one axis, and onnxruntime's QLinearSoftmax."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sqzc.errors import ModelError
from sqzc.ops.attrs import QSoftmaxAttrs, SoftmaxAttrs
from sqzc.ops.kinds import OpKind, TensorType
from sqzc.ops.opdef import EIGHT_BIT, OpDef, along_axis, define, kernels, need_8bit
from sqzc.ort.oracles import contrib_ops as qrc

def _softmax_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, SoftmaxAttrs)
    if a.axis >= len(ins[0].shape):
        raise ModelError(f"softmax axis {a.axis} out of range for {list(ins[0].shape)}")
    return ins[0]


def ref_softmax(a: SoftmaxAttrs, x: np.ndarray) -> np.ndarray:
    """Numerically stable (log-)softmax along one axis."""
    shifted = x - x.max(axis=a.axis, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=a.axis, keepdims=True)
    return (shifted - np.log(s)) if a.log else (e / s)


def _qsoftmax_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, QSoftmaxAttrs)
    need_8bit("QLinearSoftmax", ins)
    if ins[0].dtype != a.y.dtype:
        raise ModelError(f"QLinearSoftmax: input is {ins[0].dtype}, output {a.y.dtype}")
    if not 0 <= a.axis < len(ins[0].shape):
        raise ModelError(f"QLinearSoftmax: axis {a.axis} out of range for rank "
                         f"{len(ins[0].shape)}")
    return TensorType(ins[0].shape, a.y.dtype)


def ref_qsoftmax(a: QSoftmaxAttrs, x: np.ndarray) -> np.ndarray:
    """onnxruntime's QLinearSoftmax (``sqzc.ort.oracles.contrib_ops.qlinear_softmax``)."""
    return qrc.qlinear_softmax(x, a.x_scale, a.y.scale[0], a.y.zero_point[0], a.axis)


define(OpDef(OpKind.SOFTMAX, SoftmaxAttrs, arity=(1, 1), operands="float",
             shape=_softmax_shape, reference=lambda a, ins: ref_softmax(a, ins[0]),
             kernels=kernels("float"), batch_rule=along_axis))
define(OpDef(OpKind.QSOFTMAX, QSoftmaxAttrs, arity=(1, 1), operands="int8",
             shape=_qsoftmax_shape, reference=lambda a, ins: ref_qsoftmax(a, *ins),
             kernels=kernels(EIGHT_BIT), batch_rule=along_axis))
