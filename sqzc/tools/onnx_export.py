"""Write the optimized IR back as an ONNX file (for Netron): ``sqzc dump --format onnx``.

Every IR op becomes exactly one ONNX node, named after its IR node id; constants become
initializers (blocked/packed weights keep their packed shape) and graph inputs/outputs
keep the model's names. Ops whose meaning is exactly a standard ONNX operator use it
(Relu, Clip, LeakyRelu, MaxPool, AveragePool, Softmax/LogSoftmax, Concat, Reshape,
Transpose, Add/Sub/Mul/Div, MatMul, Cast, Identity, QuantizeLinear/DequantizeLinear, and
Conv when nothing is fused or packed). Fused or sqzc-specific ops go in the custom
domain ``sqzc`` (version 1) with every IR attribute as an ONNX attribute, plus
``origin`` (the ONNX nodes it came from, joined by '+'), ``layout`` (``plain`` or
``nchw<b>c``) and, for ops written straight into a concat buffer, ``placement``
(``into %concat[c=a:b]``, as in the text dump). Standard-domain nodes cannot carry extra
attributes, so their origin/layout/placement go into the node's ``doc_string`` and
``metadata_props`` instead (Netron shows both).

Shapes are the IR's logical shapes at batch 1 (a dynamic-batch model is compiled at
batch 1; the model's ``metadata_props`` records ``sqzc.dynamic_batch``). Layouts are
physical facts the backend acts on: a tensor tagged ``nchw16c`` is still, logically, the
NCHW tensor its shape says, so the standard ops' meaning is unchanged.

The result passes ``onnx.checker.check_model`` (including ``full_check=True``): the
checker accepts nodes of a custom domain declared in ``opset_import`` without a schema.
The file is for viewing and diffing; onnxruntime cannot run the ``sqzc``-domain nodes.
An IR kind without a dedicated mapping here (one added to the IR later) still exports,
as a ``sqzc``-domain node named after the kind with its attributes flattened
(``flatten_attrs``). Corner cases that need more than one node per op: a graph output produced by an input or
constant node, or several outputs sharing one node, get an extra ``Identity`` named after
the output (never the case for models whose outputs are computed).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sqzc import __version__
from sqzc.ir import Graph
from sqzc.ops import (
    ACTIVATIONS,
    Activation,
    AxisAttrs,
    CastAttrs,
    ConstAttrs,
    ConvAttrs,
    OpKind,
    OpNode,
    PoolAttrs,
    QConvAttrs,
    QPoolAttrs,
    QuantAttrs,
    ReduceAttrs,
    ReshapeAttrs,
    SliceAttrs,
    SoftmaxAttrs,
    TransposeAttrs,
)
from sqzc.passes.manager import DEFAULT_CONTEXT

__all__ = ["SQZC_DOMAIN", "SQZC_DOMAIN_VERSION", "STANDARD_OPSET", "Exporter", "check",
           "flatten_attrs", "to_onnx"]

SQZC_DOMAIN = "sqzc"
SQZC_DOMAIN_VERSION = 1
#: The default-domain opset the export targets (AveragePool's ``dilations`` need 19).
STANDARD_OPSET = min(21, onnx.defs.onnx_opset_version())

_BINARY = {OpKind.ADD: "Add", OpKind.SUB: "Sub", OpKind.MUL: "Mul", OpKind.DIV: "Div",
           OpKind.MATMUL: "MatMul"}
#: sqzc-domain op types (CamelCase like ONNX's) for the kinds that have no exact equivalent.
_CUSTOM_NAMES = {OpKind.CONV: "Conv", OpKind.QCONV: "QConv", OpKind.REDUCE: "Reduce",
                 OpKind.REORDER: "Reorder", OpKind.QGLOBAL_AVGPOOL: "QGlobalAveragePool",
                 OpKind.REQUANTIZE: "Requantize", OpKind.QUANTIZE: "Quantize",
                 OpKind.DEQUANTIZE: "Dequantize"}


def _elem_type(dtype: str) -> int:
    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def _layout(op: OpNode) -> str:
    return f"nchw{op.block}c" if op.block else "plain"


class Exporter:
    """Builds one ModelProto from one Graph (names, nodes, initializers, value infos)."""

    def __init__(self, graph: Graph, target_block: int = DEFAULT_CONTEXT.target_block) -> None:
        self.graph = graph
        self.target_block = target_block
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.used: set[str] = set()
        self.names: dict[str, str] = {}  # IR node id -> ONNX tensor name
        self.extra_identities: list[tuple[str, str]] = []  # (source tensor, output name)
        self._assign_names()

    # ------------------------------------------------------------------ naming

    def _unique(self, hint: str) -> str:
        name, i = hint, 1
        while name in self.used:
            name = f"{hint}_{i}"
            i += 1
        self.used.add(name)
        return name

    def _assign_names(self) -> None:
        g = self.graph
        for nid in g.inputs:
            self.names[nid] = self._unique(g.input_names[nid])
        taken: set[str] = set()
        for o in g.outputs:
            kind = g.op(o.node).kind
            if o.node in taken or kind in (OpKind.INPUT, OpKind.CONST):
                self.extra_identities.append((o.node, o.name))
                continue
            taken.add(o.node)
            self.names[o.node] = self._unique(o.name)
        for _, out_name in self.extra_identities:  # graph output names stay exact
            self.used.add(out_name)
        for nid in g.nodes():
            if nid not in self.names:
                self.names[nid] = self._unique(nid)

    def _const(self, hint: str, value: np.ndarray) -> str:
        """An extra initializer (Clip bounds, Reshape shapes, quantization parameters)."""
        name = self._unique(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    # ------------------------------------------------------------------ node building

    def _note(self, nid: str) -> dict[str, str]:
        """origin / layout / placement (/ concat copies) of a node, as strings."""
        g, op = self.graph, self.graph.op(nid)
        info = {"origin": op.origin_str if op.origin else "", "layout": _layout(op)}
        if op.into is not None:
            p = op.into
            extent = op.out.shape[p.axis]
            axis = "c" if p.axis == 1 else f"axis{p.axis}"
            info["placement"] = (f"into %{self.names.get(p.concat, p.concat)}"
                                 f"[{axis}={p.start}:{p.start + extent}]")
        if op.kind is OpKind.CONCAT:
            from sqzc.ir_text import concat_note

            info["concat"] = concat_note(g, nid).strip()
        return {k: v for k, v in info.items() if v}

    def _emit(self, nid: str, op_type: str, inputs: list[str], domain: str = "",
              **attrs: object) -> None:
        note = self._note(nid)
        if domain == SQZC_DOMAIN:
            attrs.update(note)
        node = helper.make_node(op_type, inputs, [self.names[nid]], name=nid, domain=domain,
                                doc_string="; ".join(f"{k}: {v}" for k, v in note.items()),
                                **{k: v for k, v in attrs.items() if v is not None})
        if hasattr(node, "metadata_props"):
            for k, v in note.items():
                entry = node.metadata_props.add()
                entry.key, entry.value = f"sqzc.{k}", v
        self.nodes.append(node)

    def _custom(self, nid: str, inputs: list[str], attrs: dict[str, object]) -> None:
        self._emit(nid, _CUSTOM_NAMES[self.graph.op(nid).kind], inputs, SQZC_DOMAIN, **attrs)

    # ------------------------------------------------------------------ attribute helpers

    @staticmethod
    def _act_attrs(act: Activation) -> dict[str, object]:
        out: dict[str, object] = {"activation": str(act)}
        out.update({f"activation_{name}": float(v) for name, v in act.named_params()})
        return out

    @classmethod
    def _conv_attrs(cls, a: ConvAttrs) -> dict[str, object]:
        out: dict[str, object] = {
            "kernel_shape": list(a.kernel), "strides": list(a.strides), "pads": list(a.pads),
            "dilations": list(a.dilations), "group": a.group, "packed": a.packed,
            "out_channels": a.out_channels, "winograd": a.winograd, "compact": int(a.compact),
            "ort_order": str(a.ort_order or "")}
        out.update(cls._act_attrs(a.act))
        if a.quantize is not None:
            out.update(cls._quant_attrs("y_", a.quantize))
        return out

    @staticmethod
    def _quant_attrs(prefix: str, q: QuantAttrs) -> dict[str, object]:
        out: dict[str, object] = {f"{prefix}scale": [float(s) for s in q.scale],
                                  f"{prefix}zero_point": [int(z) for z in q.zero_point],
                                  f"{prefix}dtype": q.dtype, f"{prefix}axis": q.axis}
        if q.bits != 8:  # an int4 value range in the 8-bit container
            out[f"{prefix}bits"] = q.bits
        return out

    def _quant_params(self, nid: str, q: QuantAttrs, scale_dtype: str) -> list[str]:
        """Scale and zero-point initializers for QuantizeLinear/DequantizeLinear."""
        shape: tuple[int, ...] = () if q.per_tensor else (len(q.scale),)
        scale = np.asarray(q.scale, dtype=scale_dtype).reshape(shape)
        zp = np.asarray(q.zero_point, dtype=q.dtype).reshape(shape)
        return [self._const(f"{nid}_scale", scale), self._const(f"{nid}_zero_point", zp)]

    # ------------------------------------------------------------------ per kind

    def op_node(self, nid: str) -> None:
        g = self.graph
        op = g.op(nid)
        ins = [self.names[i] for i in op.inputs]
        a = op.attrs
        k = op.kind
        if k is OpKind.CONV:
            assert isinstance(a, ConvAttrs)
            if not a.act and not a.packed:
                self._emit(nid, "Conv", ins, kernel_shape=list(a.kernel), strides=list(a.strides),
                           pads=list(a.pads), dilations=list(a.dilations), group=a.group)
            else:
                self._custom(nid, ins, self._conv_attrs(a))
        elif k is OpKind.ACTIVATION:  # the ONNX op of its table entry
            assert isinstance(a, Activation)
            entry = ACTIVATIONS[a.kind]
            if entry.onnx_inputs:  # parameters as constant inputs (Clip's bounds)
                args = [ins[0]] + [
                    self._const(f"{nid}_{name}", np.array(v).astype(op.out.dtype))
                    if np.isfinite(v) else "" for name, v in a.named_params()]
                while args[-1] == "":
                    args.pop()
                self._emit(nid, entry.onnx, args)
            else:
                self._emit(nid, entry.onnx, ins,
                           **{name: float(v) for name, v in a.named_params()})
        elif k in (OpKind.MAXPOOL, OpKind.AVGPOOL):
            assert isinstance(a, PoolAttrs)
            attrs: dict[str, object] = {
                "kernel_shape": list(a.kernel), "strides": list(a.strides), "pads": list(a.pads),
                "dilations": list(a.dilations), "ceil_mode": int(a.ceil_mode)}
            if k is OpKind.AVGPOOL:
                attrs["count_include_pad"] = int(a.count_include_pad)
            self._emit(nid, "MaxPool" if k is OpKind.MAXPOOL else "AveragePool", ins, **attrs)
        elif k is OpKind.REDUCE:
            assert isinstance(a, ReduceAttrs)
            self._custom(nid, ins, {"mode": a.mode, "axes": list(a.axes),
                                    "keepdims": int(a.keepdims)})
        elif k is OpKind.CONCAT:
            assert isinstance(a, AxisAttrs)
            self._emit(nid, "Concat", ins, axis=a.axis)
        elif k is OpKind.SOFTMAX:
            assert isinstance(a, SoftmaxAttrs)
            self._emit(nid, "LogSoftmax" if a.log else "Softmax", ins, axis=a.axis)
        elif k is OpKind.RESHAPE:
            assert isinstance(a, ReshapeAttrs)
            shape = self._const(f"{nid}_shape", np.asarray(a.shape, dtype=np.int64))
            self._emit(nid, "Reshape", [ins[0], shape])
        elif k is OpKind.TRANSPOSE:
            assert isinstance(a, TransposeAttrs)
            self._emit(nid, "Transpose", ins, perm=list(a.perm))
        elif k is OpKind.SLICE:
            assert isinstance(a, SliceAttrs)
            ends = [s + n * st if s + n * st >= 0 else -(1 << 62)
                    for s, st, n in zip(a.starts, a.steps, a.sizes)]
            window = [self._const(f"{nid}_{part}", np.asarray(v, dtype=np.int64))
                      for part, v in (("starts", a.starts), ("ends", ends),
                                      ("axes", range(len(a.starts))), ("steps", a.steps))]
            self._emit(nid, "Slice", [ins[0], *window])
        elif k in _BINARY:
            self._emit(nid, _BINARY[k], ins)
        elif k is OpKind.CAST:
            assert isinstance(a, CastAttrs)
            self._emit(nid, "Cast", ins, to=_elem_type(a.to))
        elif k is OpKind.IDENTITY:
            self._emit(nid, "Identity", ins)
        elif k is OpKind.REORDER:
            src = g.op(op.inputs[0])
            self._custom(nid, ins, {"src_layout": _layout(src)})
        elif k is OpKind.QUANTIZE:
            assert isinstance(a, QuantAttrs)
            x_dtype = g.op(op.inputs[0]).out.dtype
            if a.dtype in ("uint8", "int8") and a.bits == 8 and \
                    x_dtype in ("float32", "float16"):
                self._emit(nid, "QuantizeLinear", ins + self._quant_params(nid, a, x_dtype),
                           axis=None if a.per_tensor else a.axis)
            else:
                self._custom(nid, ins, self._quant_attrs("", a))
        elif k is OpKind.DEQUANTIZE:
            assert isinstance(a, QuantAttrs)
            standard = a.dtype in ("uint8", "int8") or (
                a.dtype == "int32" and not any(a.zero_point))
            if standard and op.out.dtype == "float32":
                self._emit(nid, "DequantizeLinear",
                           ins + self._quant_params(nid, a, "float32"),
                           axis=None if a.per_tensor else a.axis)
            else:
                self._custom(nid, ins, self._quant_attrs("", a))
        elif k is OpKind.QCONV:
            assert isinstance(a, QConvAttrs)
            attrs = self._conv_attrs(a.conv)
            attrs.update({"x_zero_point": int(a.x_zp), "w_zero_point": [int(z) for z in a.w_zp],
                          "multiplier": [float(m) for m in a.multiplier]})
            attrs.update(self._quant_attrs("out_", a.out))
            if a.requant is not None:
                attrs.update(self._quant_attrs("requant_", a.requant))
            self._custom(nid, ins, attrs)
        elif k in (OpKind.QGLOBAL_AVGPOOL, OpKind.REQUANTIZE):
            assert isinstance(a, QPoolAttrs)
            attrs = self._quant_attrs("x_", a.x)
            attrs.update(self._quant_attrs("y_", a.y))
            self._custom(nid, ins, attrs)
        else:
            self.generic(nid)

    def generic(self, nid: str) -> None:
        """A kind without a dedicated mapping (e.g. added to the IR after this exporter):
        a ``sqzc``-domain node named after the kind (``qglobal_avgpool`` ->
        ``QglobalAvgpool``) with the attributes flattened by ``flatten_attrs``."""
        op = self.graph.op(nid)
        op_type = "".join(w[:1].upper() + w[1:] for w in op.kind.value.split("_"))
        self._emit(nid, op_type, [self.names[i] for i in op.inputs], SQZC_DOMAIN,
                   **flatten_attrs(op.attrs))

    # ------------------------------------------------------------------ whole model

    def build(self) -> onnx.ModelProto:
        g = self.graph
        for nid in g.nodes():
            op = g.op(nid)
            if op.kind is OpKind.INPUT:
                continue
            if op.kind is OpKind.CONST:
                assert isinstance(op.attrs, ConstAttrs)
                # (not np.ascontiguousarray: it turns 0-d scalars into 1-d arrays)
                self.initializers.append(numpy_helper.from_array(op.attrs.value,
                                                                 self.names[nid]))
                continue
            self.op_node(nid)
        for src, out_name in self.extra_identities:
            self.nodes.append(helper.make_node(
                "Identity", [self.names[src]], [out_name], name=f"{out_name}_output",
                doc_string="added by the ONNX export to name a graph output"))

        def vi(nid: str, name: str) -> onnx.ValueInfoProto:
            t = g.op(nid).out
            v = helper.make_tensor_value_info(name, _elem_type(t.dtype), list(t.shape))
            if g.op(nid).block:
                v.doc_string = f"layout {_layout(g.op(nid))}"
            return v

        inputs = [vi(n, self.names[n]) for n in g.inputs]
        extra = {name for _, name in self.extra_identities}
        outputs = [vi(o.node, o.name if o.name in extra else self.names[o.node])
                   for o in g.outputs]
        io = {v.name for v in inputs} | {v.name for v in outputs}
        value_info = [vi(n, self.names[n]) for n in g.nodes()
                      if not g.is_const(n) and self.names[n] not in io]
        graph_proto = helper.make_graph(
            self.nodes, g.name, inputs, outputs, initializer=self.initializers,
            value_info=value_info,
            doc_string="optimized sqzc IR (one node per IR op); see sqzc/tools/onnx_export.py")
        opsets = [helper.make_opsetid("", STANDARD_OPSET),
                  helper.make_opsetid(SQZC_DOMAIN, SQZC_DOMAIN_VERSION)]
        model = helper.make_model(graph_proto, opset_imports=opsets, producer_name="sqzc",
                                  producer_version=__version__)
        if hasattr(helper, "find_min_ir_version_for"):  # readable by older tools too
            min_ir = helper.find_min_ir_version_for(opsets[:1])
            if hasattr(onnx.NodeProto(), "metadata_props"):
                min_ir = max(min_ir, 10)  # node metadata_props appeared in IR version 10
            model.ir_version = min_ir
        helper.set_model_props(model, {
            "sqzc.dynamic_batch": str(bool(g.dynamic_batch)).lower(),
            "sqzc.target_block": str(self.target_block),
            "sqzc.note": "shapes are logical at batch 1; layout/placement are physical facts",
        })
        return model


def flatten_attrs(attrs: object, prefix: str = "") -> dict[str, object]:
    """An IR attribute dataclass as ONNX attribute values: numbers, strings and lists of
    them; nested dataclasses (quantization parameters) become ``<field>_<subfield>``, a
    nested ``ConvAttrs`` is inlined, an ``Activation`` becomes ``activation*``, ``None``
    is left out and anything else becomes its ``str``."""
    out: dict[str, object] = {}
    if not dataclasses.is_dataclass(attrs) or isinstance(attrs, ConstAttrs):
        return out
    for f in dataclasses.fields(attrs):
        value = getattr(attrs, f.name)
        name = prefix + f.name
        if value is None:
            continue
        if isinstance(value, Activation):
            out.update({prefix + k: v for k, v in Exporter._act_attrs(value).items()})
        elif isinstance(value, ConvAttrs):
            out.update({prefix + k: v for k, v in Exporter._conv_attrs(value).items()})
        elif dataclasses.is_dataclass(value):
            out.update(flatten_attrs(value, f"{name}_"))
        elif isinstance(value, bool | int | np.integer):
            out[name] = int(value)
        elif isinstance(value, float | np.floating):
            out[name] = float(value)
        elif isinstance(value, str):
            out[name] = value
        elif isinstance(value, tuple | list) and value and all(
                isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value):
            out[name] = [int(v) for v in value]
        elif isinstance(value, tuple | list) and value and all(
                isinstance(v, int | float | np.number) for v in value):
            out[name] = [float(v) for v in value]
        else:
            out[name] = str(value)
    return out


def to_onnx(graph: Graph, target_block: int = DEFAULT_CONTEXT.target_block) -> onnx.ModelProto:
    """The (optimized) IR ``graph`` as an ONNX model: one node per IR op (see module doc).
    ``target_block`` (the channel block the passes ran with, ``PassContext.target_block``)
    is recorded in the metadata as ``sqzc.target_block``."""
    return Exporter(graph, target_block).build()


def check(model: onnx.ModelProto) -> None:
    """``onnx.checker.check_model`` with the strict full check (shape inference too)."""
    onnx.checker.check_model(model, full_check=True)
