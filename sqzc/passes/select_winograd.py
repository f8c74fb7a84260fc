"""select-winograd: 3x3 stride-1 convolutions switch to Winograd F(2x2) or F(4x4)."""

from __future__ import annotations

import dataclasses

from sqzc.ops.layout import unpack_conv
from sqzc.ops.recipes import Dequantize, PackConv, Recipe, Winograd, recipe_of
from sqzc.ir import Graph
from sqzc.ops import ConvAttrs, OpKind
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext
from sqzc.winograd import ConvGeometry, choose_tile, matrices, transform_weights

#: Per-thread scratch the kernel keeps on its stack for one row of transformed input
#: tiles; layers needing more stay direct.
MAX_TILE_ROW_BYTES = 512 * 1024


def _tile_row_bytes(m: int, out_w: int, in_channels: int, block: int) -> int:
    alpha = m + 2
    icp = -(-in_channels // block) * block
    return alpha * alpha * -(-out_w // m) * icp * 4


def select_winograd(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Rewrite eligible packed 3x3 stride-1 convs to Winograd F(m x m, 3x3), m by cost.

    Eligible: float32, group 1, dilation 1, weights packed by assign-layout and a
    channel-blocked input (the kernel reads b input channels per vector). The filter
    transform ``G g G^T`` is folded into the weights here; ``winograd.choose_tile``
    compares direct, F(2x2) and F(4x4) by estimated vector operations. Off with
    ``--no-winograd`` (the context's ``allow_winograd``) and with ``--optimize size``
    (its transformed weights are 1.8-4x the filter and its kernels larger).
    """
    if not ctx.allow_winograd or ctx.optimize_size:
        return False
    changed = False
    for nid in list(g.nodes()):
        op = g.op(nid)
        a = op.attrs
        if op.kind is not OpKind.CONV or not isinstance(a, ConvAttrs) or not a.packed \
                or a.winograd or a.kernel != (3, 3) or a.strides != (1, 1) \
                or a.dilations != (1, 1) or a.group != 1 or op.out.dtype != "float32":
            continue
        x = g.op(op.inputs[0])
        if x.block != a.packed or not g.is_const(op.inputs[1]):
            continue
        _, oc, oh, ow = op.out.shape
        ic = x.out.shape[1]
        m = choose_tile(ConvGeometry(ic, oc, oh, ow, a.packed))
        if m == 0 or _tile_row_bytes(m, ow, ic, a.packed) > MAX_TILE_ROW_BYTES:
            continue
        _, _, w, _ = unpack_conv(a, [None, g.const_value(op.inputs[1]),  # type: ignore[list-item]
                                     g.const_value(op.inputs[2])])
        u = transform_weights(w, m, a.packed)
        assert u.shape[0] == matrices(m).alpha ** 2
        packed = g.op(op.inputs[1]).attrs.recipe  # type: ignore[attr-defined]
        recipe = recipe_of(w, Winograd(m, a.packed))
        if packed is not None and len(packed.steps) == 2 and \
                isinstance(packed.steps[0], Dequantize) and packed.steps[1] == PackConv(a.packed):
            recipe = Recipe(packed.source, (packed.steps[0], Winograd(m, a.packed)))
        wu = g.add_const(u, f"{op.inputs[1]}_winograd{m}", op.origin, recipe)
        attrs = dataclasses.replace(a, winograd=m)
        g.set_op(nid, dataclasses.replace(op, attrs=attrs,
                                          inputs=(op.inputs[0], wu, op.inputs[2])))
        changed = True
    if changed:
        g.remove_dead()
    return changed
