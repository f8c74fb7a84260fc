"""fold-constants: evaluate ops whose operands are all constants."""

from __future__ import annotations

from sqzc.errors import ModelError
from sqzc.ir import Graph
from sqzc.ops import NoAttrs, OpKind, OpNode, QuantAttrs
from sqzc.ops.recipes import Dequantize, Recipe, recipe_of
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext
from sqzc.ops import reference

#: Folding a constant bigger than this (bytes) would bloat the library; leave it at runtime.
MAX_FOLDED_BYTES = 64 << 20


def _runtime_dequantized_weight(g: Graph, nid: str) -> bool:
    """A DequantizeLinear read only as the weight of MLAS-order convs (fold-qdq): kept, so
    the library stores the int8 weights (a quarter of the bytes) and dequantizes them at
    run time, as onnxruntime does; ~1% of such a model's run time."""
    if g.op(nid).kind is not OpKind.DEQUANTIZE:
        return False
    users = g.consumers(nid)
    return bool(users) and all(
        g.op(u).kind is OpKind.CONV and getattr(g.op(u).attrs, "ort_order", None)
        and g.op(u).inputs[1] == nid and nid not in (g.op(u).inputs[0], *g.op(u).inputs[2:])
        for u in users)


def _codes_recipe(g: Graph, op: OpNode) -> Recipe | None:
    """A folded DequantizeLinear of 8-bit (or int4) codes, per tensor or per axis, derives
    from its codes (``Dequantize``): the compressed library stores them, not the floats.
    Per-element parameters (blocked Q/DQ) would cost more than the floats: none."""
    if op.kind is not OpKind.DEQUANTIZE:
        return None
    q, src = op.attrs, g.op(op.inputs[0])
    assert isinstance(q, QuantAttrs)
    if src.out.dtype not in ("int8", "uint8") or len(src.out.shape) < 2 \
            or (not q.per_tensor and len(q.scale) >= src.out.size):
        return None
    return recipe_of(g.const_value(op.inputs[0]), Dequantize(q.scale, q.zero_point, q.axis))


def fold_constants(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Replace every op with only constant operands by its value (numpy references).

    This removes the float16->float32 casts of weights, transposes/reshapes of weights
    and any shape arithmetic left by exporters. Results use the same reference semantics
    the tests check against onnxruntime, so folding never changes what a model computes.
    Graph outputs that become constants keep a copy node (the ABI writes every output).
    """
    changed = False
    for nid in list(g.nodes()):
        op = g.op(nid)
        if op.kind in (OpKind.CONST, OpKind.INPUT) or not op.inputs:
            continue
        if not all(g.is_const(i) for i in op.inputs):
            continue
        if op.kind is OpKind.IDENTITY and nid in g.output_nodes():
            continue
        if _runtime_dequantized_weight(g, nid):
            continue
        if op.out.nbytes > MAX_FOLDED_BYTES:
            continue
        try:
            value = reference(op.kind, op.attrs, [g.const_value(i) for i in op.inputs])
        except (ModelError, ValueError, FloatingPointError):
            continue
        value = value.astype(op.out.dtype, copy=False).reshape(op.out.shape)
        new = g.add_const(value, nid + "_folded", op.origin, _codes_recipe(g, op))
        was_output = [o for o in g.outputs if o.node == nid]
        g.replace_uses(nid, new)
        for o in was_output:
            o.node = g.add_op(OpKind.IDENTITY, NoAttrs(), [new], nid + "_out", op.origin)
        g.remove(nid)
        changed = True
    return g.remove_dead() or changed
