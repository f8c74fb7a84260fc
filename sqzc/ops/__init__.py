"""The IR's ops: kinds and tensor types, attributes, and one definition per kind.

* ``kinds.py``: ``OpKind``, dtypes, ``TensorType``, ``OpNode``;
* ``attrs.py``: the attribute dataclasses (``ConvAttrs`` ...);
* ``activations.py``: the activation table (``Activation``, ``ActDef``, ``ACTIVATIONS``);
* ``opdef.py``: ``OpDef`` and ``OPDEFS``, with ``infer_type``, ``reference``, ``macs``;
* ``defs/``: the definitions, one module per op family (shape rules and numpy
  references beside their ``define`` calls);
* ``geometry.py``: conv/pool output sizes and broadcasting; ``layout.py``: the packed
  weight layouts.

Importing this package loads the definitions. The names below are the public API;
import family-specific helpers (``conv_multipliers``, ``pack_qconv`` ...) from their
modules.
"""

from __future__ import annotations

from sqzc.ops.activations import (
    ACTIVATIONS,
    NO_ACTIVATION,
    ActDef,
    Activation,
    make_activation,
)
from sqzc.ops.attrs import (
    OrtOrder,
    AxisAttrs,
    CastAttrs,
    ConstAttrs,
    ConvAttrs,
    IntConvAttrs,
    IntMatMulAttrs,
    LookupAttrs,
    MatMulAttrs,
    NoAttrs,
    PoolAttrs,
    QAvgPoolAttrs,
    QBinaryAttrs,
    QConvAttrs,
    QMatMulAttrs,
    QPoolAttrs,
    QSoftmaxAttrs,
    QuantAttrs,
    ReduceAttrs,
    ReshapeAttrs,
    SliceAttrs,
    SoftmaxAttrs,
    TransposeAttrs,
)
from sqzc.ops.geometry import (
    broadcast_shapes,
    conv_out_dim,
    pool_out_dim,
)
from sqzc.ops.kinds import (
    DTYPE_SHORT,
    FLOAT_DTYPES,
    INT_DTYPES,
    INT_RANGE,
    SHORT_DTYPE,
    OpKind,
    OpNode,
    Placement,
    TensorType,
    quant_range,
)
from sqzc.ops.opdef import (
    DEFAULT_VARIANT,
    EIGHT_BIT,
    OPDEFS,
    OpDef,
    define,
    infer_type,
    kernels,
    kind_name,
    kinds_tagged,
    op_name,
    macs,
    need_8bit,
    opdef,
    reference,
    same_shape,
    variant_of,
)
from sqzc.ops import defs  # fills OPDEFS

#: The broadcasting binary float ops (add, sub, mul, div).
BINARY = kinds_tagged("binary")

__all__ = [
    "OrtOrder",
    "ACTIVATIONS",
    "ActDef",
    "make_activation",
    "kind_name",
    "op_name",
    "defs",
    "Activation",
    "AxisAttrs",
    "BINARY",
    "CastAttrs",
    "ConstAttrs",
    "ConvAttrs",
    "DEFAULT_VARIANT",
    "DTYPE_SHORT",
    "EIGHT_BIT",
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "INT_RANGE",
    "quant_range",
    "IntConvAttrs",
    "IntMatMulAttrs",
    "LookupAttrs",
    "MatMulAttrs",
    "NO_ACTIVATION",
    "NoAttrs",
    "OPDEFS",
    "OpDef",
    "OpKind",
    "OpNode",
    "Placement",
    "PoolAttrs",
    "QAvgPoolAttrs",
    "QBinaryAttrs",
    "QConvAttrs",
    "QMatMulAttrs",
    "QPoolAttrs",
    "QSoftmaxAttrs",
    "QuantAttrs",
    "ReduceAttrs",
    "ReshapeAttrs",
    "SHORT_DTYPE",
    "SoftmaxAttrs",
    "TensorType",
    "SliceAttrs",
    "TransposeAttrs",
    "broadcast_shapes",
    "conv_out_dim",
    "define",
    "infer_type",
    "kernels",
    "kinds_tagged",
    "macs",
    "need_8bit",
    "opdef",
    "pool_out_dim",
    "reference",
    "same_shape",
    "variant_of",
]
