"""One definition per op kind: ``OpDef``, the table ``OPDEFS`` and the queries on it.

Everything the compiler knows about a kind that is not a kernel sits in its one entry:
the attribute class, how many operands it takes and of which dtype class, its shape rule,
its numpy reference (the meaning of the IR: constant folding evaluates it, the tests
compare with it), its multiply-accumulate count, the kernels the backend must provide for
it and how an op picks among them (its variant), and tags such as ``binary`` or
``activation`` that passes ask about. The verifier, the importer (``Graph.add_op`` infers
types through it), the passes and the backend registry all read this table, so adding a
kind is one ``define`` call in ``sqzc/ops/defs/`` beside its shape rule and reference,
plus its converter and its emitters; ``tests/unit/test_opdefs.py`` checks that every kind
has a definition and that the declared kernels are exactly the registered emitters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any, Literal

import numpy as np

from sqzc.errors import InternalError, ModelError
from sqzc.ops.kinds import OpKind, OpNode, TensorType

ShapeRule = Callable[[Any, Sequence[TensorType]], TensorType]
Reference = Callable[[Any, Sequence[np.ndarray]], np.ndarray]
Macs = Callable[[Any, Sequence[TensorType], TensorType], int]
#: An emitter the backend must register: (dtype class of input 0, layout, variant).
Kernel = tuple[str, str, str]
#: The variant of a kind with one kernel per dtype class and layout.
DEFAULT_VARIANT = "default"


def no_macs(attrs: Any, ins: Sequence[TensorType], out: TensorType) -> int:
    """The MAC count of kinds that do no multiply-accumulates worth counting."""
    return 0


def default_variant(attrs: Any) -> str:
    """The variant of kinds with a single kernel per dtype class and layout."""
    return DEFAULT_VARIANT


def kernels(dtype_classes: str | Iterable[str], layouts: Iterable[str] = ("plain",),
            variants: Iterable[str] = (DEFAULT_VARIANT,)) -> frozenset[Kernel]:
    """Every (dtype class, layout, variant) combination of the arguments."""
    classes = (dtype_classes,) if isinstance(dtype_classes, str) else tuple(dtype_classes)
    return frozenset(product(classes, tuple(layouts), tuple(variants)))


@dataclass(frozen=True)
class OpDef:
    """Everything about one op kind except its kernels' code.

    ``operands`` is the dtype class the verifier demands: ``float`` (every operand
    float), ``int8`` (the data operand 8-bit) or ``any``. ``reference`` is None only for
    INPUT, whose value is the caller's. ``kernels`` are the emitters the backend must have
    (empty for INPUT and CONST, which own no code); ``variant`` picks the kernel variant
    from the op's attributes.
    """

    kind: OpKind
    attrs: type
    arity: tuple[int, int]
    operands: Literal["float", "int8", "any"]
    shape: ShapeRule
    reference: Reference | None
    kernels: frozenset[Kernel] = frozenset()
    macs: Macs = no_macs
    variant: Callable[[Any], str] = default_variant
    tags: frozenset[str] = field(default_factory=frozenset)
    #: the op's name in dumps, errors and profiles when it is not ``kind.value`` (an
    #: activation op is called by its activation: ``relu``, ``leaky_relu`` ...)
    display: Callable[[Any], str] | None = None
    #: why an op with these attributes mixes the samples of a batch (works along, reduces
    #: or moves axis 0), or ``""``: a dynamic-batch library runs the batch-1 program per
    #: sample, which such an op breaks (``frontends/onnx/batch_shapes.py``)
    batch_rule: Callable[[Any], str] | None = None

    def has_layout(self, dtype_class: str, layout: str) -> bool:
        """Whether some kernel of this kind takes ``dtype_class`` and writes ``layout``."""
        return any(dc in (dtype_class, "any") and lay == layout for dc, lay, _ in self.kernels)


#: kind -> its definition; filled by the modules of ``sqzc/ops/defs/``.
OPDEFS: dict[OpKind, OpDef] = {}


def define(d: OpDef) -> OpDef:
    """Add ``d`` to ``OPDEFS`` (a kind is defined once)."""
    if d.kind in OPDEFS:
        raise InternalError(f"{d.kind.value} is defined twice")
    OPDEFS[d.kind] = d
    return d


def opdef(kind: OpKind) -> OpDef:
    """The definition of ``kind``."""
    return OPDEFS[kind]


def infer_type(kind: OpKind, attrs: object, ins: Sequence[TensorType]) -> TensorType:
    """Output type of ``kind`` applied to inputs of types ``ins`` (its shape rule; raises
    ModelError with the offending shapes, callers add the node name)."""
    return OPDEFS[kind].shape(attrs, ins)


def reference(kind: OpKind, attrs: object, ins: Sequence[np.ndarray]) -> np.ndarray:
    """Evaluate one op on numpy arrays: the meaning of the IR, used for folding and tests."""
    fn = OPDEFS[kind].reference
    if fn is None:
        raise ModelError(f"no reference semantics for {kind.value}")
    return fn(attrs, ins)


def macs(kind: OpKind, attrs: object, ins: Sequence[TensorType], out: TensorType) -> int:
    """Multiply-accumulates an op performs (convolutions and matrix products; else 0)."""
    return OPDEFS[kind].macs(attrs, ins, out)


def variant_of(op: OpNode) -> str:
    """Which kernel variant ``op`` needs (its definition's rule over the attributes passes
    set: a Winograd or MLAS-order conv, for one)."""
    return OPDEFS[op.kind].variant(op.attrs)


def kind_name(kind: OpKind, attrs: object) -> str:
    """The name an op of ``kind`` with ``attrs`` has in dumps, messages and profiles."""
    display = OPDEFS[kind].display
    return display(attrs) if display else kind.value


def op_name(op: OpNode) -> str:
    """The name of ``op`` in dumps, messages and profiles (``relu``, ``conv`` ...)."""
    return kind_name(op.kind, op.attrs)


def kinds_tagged(tag: str) -> frozenset[OpKind]:
    """The kinds whose definition carries ``tag``."""
    return frozenset(k for k, d in OPDEFS.items() if tag in d.tags)


def along_axis(attrs: Any) -> str:
    """The batch rule of ops with an ``axis`` (Concat, Softmax): axis 0 mixes samples."""
    return "works along the batch axis" if attrs.axis == 0 else ""


def same_shape(attrs: object, ins: Sequence[TensorType]) -> TensorType:
    """The shape rule of ops whose result has their first operand's type."""
    return ins[0]


#: The 8-bit dtypes quantized ops compute on.
EIGHT_BIT = ("uint8", "int8")


def need_8bit(what: str, ins: Sequence[TensorType]) -> None:
    """Raise ModelError unless every type in ``ins`` is 8-bit."""
    for t in ins:
        if t.dtype not in EIGHT_BIT:
            raise ModelError(f"{what} needs 8-bit operands, got {[str(i) for i in ins]}")
