"""``ImportContext``: the state of one model's conversion, and the node-local helpers
converters use to read a node's inputs and attributes and to emit IR ops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from sqzc.errors import ModelError, UnsupportedError
from sqzc.ir import Graph
from sqzc.ops import CastAttrs, OpKind, TensorType, reference


@dataclass
class ImportContext:
    """State while converting one model; converters read inputs and emit ops through it."""

    graph: Graph
    model_label: str
    opsets: dict[str, int]
    values: dict[str, str] = field(default_factory=dict)  # ONNX tensor name -> node id
    used: set[str] = field(default_factory=set)  # tensor names read by a node or output
    node: onnx.NodeProto | None = None
    #: ONNX tensor name -> "int4" / "uint4" for the tensors shape inference types INT4 /
    #: UINT4 (the IR holds them widened to int8 / uint8, one value per byte)
    nibbles: dict[str, str] = field(default_factory=dict)

    # -------- node-local helpers used by converters

    @property
    def where(self) -> str:
        """``node 'name' (Op)`` for messages about the node being converted."""
        n = self.node
        assert n is not None
        return f"node '{node_label(n)}' ({n.op_type})"

    @property
    def origin(self) -> tuple[str, ...]:
        assert self.node is not None
        return (node_label(self.node),)

    def error(self, msg: str) -> ModelError:
        """A ModelError about the current node."""
        return ModelError(f"{self.model_label}: {msg} at {self.where}")

    def unsupported(self, msg: str) -> UnsupportedError:
        """An UnsupportedError about the current node."""
        return UnsupportedError(f"{self.model_label}: {msg} at {self.where}")

    def output_used(self, i: int) -> bool:
        """True if output ``i`` of the current node is read by anything."""
        assert self.node is not None
        return i < len(self.node.output) and self.node.output[i] in self.used

    def has_input(self, i: int) -> bool:
        """True if optional input ``i`` is present (non-empty name)."""
        assert self.node is not None
        return i < len(self.node.input) and self.node.input[i] != ""

    def input(self, i: int) -> str:
        """Node id of input ``i`` (raises if missing)."""
        assert self.node is not None
        if not self.has_input(i):
            raise self.error(f"missing required input {i}")
        name = self.node.input[i]
        if name not in self.values:
            raise self.error(f"input '{name}' is not produced by any node or initializer")
        return self.values[name]

    def input_bits(self, i: int) -> int:
        """4 when input ``i`` is an ONNX INT4/UINT4 tensor (held in an 8-bit container),
        else 8."""
        assert self.node is not None
        return 4 if self.has_input(i) and self.node.input[i] in self.nibbles else 8

    def float_input(self, i: int) -> str:
        """Input ``i`` as float32 (float16 is widened with a Cast the folder may remove)."""
        nid = self.input(i)
        dtype = self.graph.op(nid).out.dtype
        if dtype == "float32":
            return nid
        if dtype == "float16":
            return self.emit(OpKind.CAST, CastAttrs("float32"), [nid], name=f"{nid}_f32")
        raise self.unsupported(f"dtype {dtype} for input {i} (sqzc computes float ops in float32)")

    def const(self, i: int) -> np.ndarray:
        """The compile-time value of input ``i``: a constant, or computed from constants
        alone (onnxruntime's quantizer stores BatchNormalization's parameters as
        DequantizeLinear of int8 codes), evaluated with the ops' numpy references; a
        runtime tensor here is unsupported."""
        nid = self.input(i)
        value = self._constant_value(nid)
        if value is None:
            raise self.unsupported(f"input {i} ('{self.node.input[i]}') must be a constant")  # type: ignore[union-attr]
        return value

    def _constant_value(self, nid: str, depth: int = 0) -> np.ndarray | None:
        graph = self.graph
        if graph.is_const(nid):
            return graph.const_value(nid)
        op = graph.op(nid)
        if op.kind is OpKind.INPUT or not op.inputs or depth > 8:
            return None
        ins = [self._constant_value(src, depth + 1) for src in op.inputs]
        if any(v is None for v in ins):
            return None
        value = reference(op.kind, op.attrs, ins)  # type: ignore[arg-type]
        return np.asarray(value).astype(op.out.dtype, copy=False).reshape(op.out.shape)

    def type_of(self, nid: str) -> TensorType:
        """The IR type of node ``nid``."""
        return self.graph.op(nid).out

    def attr(self, name: str, default: object = None) -> object:
        """The value of attribute ``name`` of the current node (or ``default``)."""
        assert self.node is not None
        for a in self.node.attribute:
            if a.name == name:
                try:
                    return onnx.helper.get_attribute_value(a)
                except Exception:
                    raise self.error(f"attribute '{name}' is malformed") from None
        return default

    def ints(self, name: str, default: Sequence[int] | None = None) -> tuple[int, ...] | None:
        """An integer-list attribute, type-checked."""
        v = self.attr(name, None)
        if v is None:
            return None if default is None else tuple(default)
        if not isinstance(v, list | tuple) or not all(isinstance(x, int) for x in v):
            raise self.error(f"attribute '{name}' must be a list of ints, got {v!r}")
        return tuple(int(x) for x in v)

    def int_attr(self, name: str, default: int) -> int:
        """An integer attribute, type-checked."""
        v = self.attr(name, default)
        if not isinstance(v, int):
            raise self.error(f"attribute '{name}' must be an int, got {v!r}")
        return int(v)

    def flag_attr(self, name: str, default: bool) -> bool:
        """A 0/1 attribute (ceil_mode, keepdims, transA, ...). Other values are refused:
        onnx's shape inference and onnxruntime read them differently (ceil_mode=2 floors
        but a truth test would ceil; noop_with_empty_axes=2 is a no-op for onnx and not
        for onnxruntime), so no reading of them is right (found by fuzzing)."""
        v = self.int_attr(name, int(default))
        if v not in (0, 1):
            raise self.error(f"attribute '{name}' must be 0 or 1, got {v}")
        return bool(v)

    def float_attr(self, name: str, default: float) -> float:
        """A float attribute, type-checked."""
        v = self.attr(name, default)
        if not isinstance(v, int | float):
            raise self.error(f"attribute '{name}' must be a float, got {v!r}")
        return float(v)

    def emit(self, kind: OpKind, attrs: object, inputs: Sequence[str], name: str | None = None) -> str:
        """Add an IR op for the current node; its type comes from the kind's shape rule."""
        assert self.node is not None
        hint = name or (self.node.output[0] if self.node.output else self.node.op_type)
        try:
            return self.graph.add_op(kind, attrs, inputs, hint, self.origin)
        except ModelError as e:
            raise ModelError(f"{self.model_label}: {e}") from None

    def emit_const(self, value: np.ndarray, name: str) -> str:
        """Add a constant created by a converter."""
        return self.graph.add_const(value, name, self.origin)

    def bind(self, i: int, nid: str) -> None:
        """Make ONNX output ``i`` of the current node refer to node ``nid``."""
        assert self.node is not None
        self.values[self.node.output[i]] = nid
        if not self.graph.is_const(nid):
            self.graph.tensor_names[nid] = self.node.output[i]

    def rank_axis(self, axis: int, rank: int) -> int:
        """Normalize a possibly negative axis, or raise naming the node."""
        if not -rank <= axis < rank:
            raise self.error(f"axis {axis} out of range for rank {rank}")
        return axis % rank


def _text(v: object) -> str:
    """A protobuf string field as text (the upb backend returns bytes for invalid UTF-8)."""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def node_label(node: onnx.NodeProto) -> str:
    """A node's name, or a stand-in built from its first output when it has none."""
    if node.name:
        return _text(node.name)
    return f"{_text(node.op_type)}->{_text(node.output[0])}" if node.output else \
        _text(node.op_type)
