"""drop-dq-q-pairs: DequantizeLinear -> QuantizeLinear pairs with equal parameters go.

``Q(DQ(x))`` with the same type, scale, zero point (and axis) returns ``x`` exactly, so
removing such a pair never changes a value. It matters anyway: onnxruntime removes these
pairs (its transpose optimizer's ``TryRemoveEmptyDQQ``, run at the basic level, before
any QDQ group is fused), and its fusion decisions are taken on the graph without them.
An int8 ``x -> DQ -> Q -> DQ -> op -> Q`` keeps its pair's Q -> DQ in sqzc's view of the
imported graph, which onnxruntime's S8->U8 transformer would rewrite to uint8, so
``fold-qdq`` judged the group mixed-type and left it float, while onnxruntime fuses it in
int8: one step apart in a few elements (the fuzzing repros of issue 4). Running this
first makes ``fold-qdq`` decide on the graph onnxruntime decides on.

onnxruntime's conditions, mirrored: the Q reads a DequantizeLinear whose input type is
the Q's output type and whose scale and zero point equal the Q's (its
``EnsureUniqueDQForNodeUnit`` has already given that Q its own copy of a shared DQ);
then either the Q has exactly one reader node and is no graph output (the reader reads
the DQ's input instead), or the Q is only a graph output and the DQ's input is computed
by a node whose only reader is that DQ (the node then produces the graph output).
"""

from __future__ import annotations

import dataclasses

from sqzc.ir import Graph
from sqzc.ops import OpKind
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext


def _drop_pair(g: Graph, qid: str) -> bool:
    """Remove ``DQ -> qid`` if onnxruntime would; True if the graph changed."""
    q = g.op(qid)
    dq_id = q.inputs[0]
    dq = g.op(dq_id)
    if dq.kind is not OpKind.DEQUANTIZE or dq.attrs != q.attrs:
        return False
    src = dq.inputs[0]
    readers = g.consumers(qid)
    as_output = [o for o in g.outputs if o.node == qid]
    if len(readers) == 1 and not as_output:
        user = g.op(readers[0])
        ins = tuple(src if i == qid else i for i in user.inputs)
        g.set_op(readers[0], dataclasses.replace(user, inputs=ins))
        _remove_pair(g, qid, dq_id)
        return True
    if readers or len(as_output) != 1:
        return False
    if g.op(src).kind in (OpKind.INPUT, OpKind.CONST) or src in g.output_nodes() \
            or g.consumers(src) != [dq_id] or g.consumers(dq_id) != [qid] \
            or dq_id in g.output_nodes():
        return False  # onnxruntime keeps a pair on a graph input or a shared tensor
    as_output[0].node = src
    _remove_pair(g, qid, dq_id)
    return True


def _remove_pair(g: Graph, qid: str, dq_id: str) -> None:
    """Delete the bypassed Q, and its DQ when nothing else reads it, at once (as
    onnxruntime does): a dead DQ would still count as a reader of its source when the
    next pair of a chain is checked."""
    g.remove(qid)
    if not g.consumers(dq_id) and dq_id not in g.output_nodes():
        g.remove(dq_id)


def drop_dq_q_pairs(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Remove DequantizeLinear -> QuantizeLinear pairs with equal parameters (as onnxruntime does).

    The values are unchanged (the pair is an exact identity); what changes is which
    Q -> DQ pairs ``fold-qdq`` sees when it decides, as onnxruntime does, in which type a
    group is fused. Repeats until no pair is left, as onnxruntime's loop does for chains.
    """
    changed = False
    progress = True
    while progress:
        progress = False
        for nid in list(g.nodes()):
            if nid in g and g.op(nid).kind is OpKind.QUANTIZE and _drop_pair(g, nid):
                progress = changed = True
    if changed:
        g.remove_dead()
    return changed
