"""assign-layout: channel-blocked NCHW[b]c activations and pre-packed conv weights."""

from __future__ import annotations

import dataclasses

import numpy as np

from sqzc.ir import Graph
from sqzc.memory import ALIGN
from sqzc.ops import (
    BINARY,
    FLOAT_DTYPES,
    ConvAttrs,
    NoAttrs,
    OpKind,
    QConvAttrs,
    ReduceAttrs,
    kinds_tagged,
    opdef,
)
from sqzc.ops.defs.conv import is_depthwise
from sqzc.ops.layout import pack_qconv
from sqzc.ops.packing import pack_conv_weight
from sqzc.ops.recipes import PackConv, PackQConv, PadTo, derived, recipe_of
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext

#: Kinds whose blocked kernel maps each channel block of the input to the same block of
#: the output (the standalone activations and the 2-D pools).
_CHANNELWISE = kinds_tagged("activation") | kinds_tagged("pool")


def _packable_groups(a: ConvAttrs, in_channels: int, out_channels: int, block: int) -> bool:
    """Group 1; depthwise (the depthwise kernel); or groups of whole output-channel
    blocks, which the direct kernel runs with the group's input channels (RegNet's group
    width 16 on 16- or 8-channel blocks)."""
    return a.group == 1 or is_depthwise(a, in_channels, out_channels) \
        or (out_channels // a.group) % block == 0


def _pack_conv(g: Graph, nid: str, block: int) -> bool:
    op = g.op(nid)
    a = op.attrs
    assert isinstance(a, ConvAttrs)
    x = g.op(op.inputs[0]).out
    if a.packed or a.ort_order or op.out.dtype != "float32" or len(x.shape) != 4 \
            or not _packable_groups(a, x.shape[1], op.out.shape[1], block):
        return False
    w = op.inputs[1]
    b = op.inputs[2] if len(op.inputs) > 2 else None
    if not g.is_const(w) or (b is not None and not g.is_const(b)):
        return False
    oc = op.out.shape[1]
    packed = pack_conv_weight(g.const_value(w), block)
    bias = np.zeros(packed.shape[0] * block, np.float32)
    if b is not None:
        bias[:oc] = g.const_value(b)
    pw = g.add_const(packed, f"{w}_packed{block}", op.origin,
                     derived(g.op(w).attrs.recipe, g.const_value(w), PackConv(block)))  # type: ignore[attr-defined]
    pb = g.add_const(bias, f"{b or nid + '_bias'}_padded{block}", op.origin,
                     recipe_of(g.const_value(b), PadTo(bias.shape[0])) if b is not None
                     else None)
    attrs = dataclasses.replace(a, packed=block, out_channels=oc)
    x_in = op.inputs[0]
    if is_depthwise(a, x.shape[1], oc) and g.op(x_in).block != block:
        # the depthwise kernel loads a block of channels per pixel: blocked input only
        x_in = g.add_op(OpKind.REORDER, NoAttrs(), [x_in], f"{x_in}_nchw{block}c", op.origin)
        g.set_op(x_in, dataclasses.replace(g.op(x_in), block=block))
    g.set_op(nid, dataclasses.replace(op, attrs=attrs, inputs=(x_in, pw, pb), block=block))
    return True


def _pack_qconv(g: Graph, nid: str, block: int, vnni: bool, sdot: bool = False) -> bool:
    """Pack an integer conv for the blocked integer kernel: int8 quads for ``vpdpbusd``
    on AVX512-VNNI targets or for ``sdot`` on Arm with the dot-product extension (which
    multiplies signed bytes: ``signed_dot``), int16 pairs on the others."""
    op = g.op(nid)
    a = op.attrs
    assert isinstance(a, QConvAttrs)
    w = op.inputs[1]
    b = op.inputs[2] if len(op.inputs) > 2 else None
    if a.conv.group != 1 or a.conv.packed or any(a.w_zp) \
            or not g.is_const(w) or g.op(w).out.dtype != "int8" \
            or (b is not None and not g.is_const(b)):
        return False
    x = op.inputs[0]
    xop = g.op(x)
    group, kind = (4, "vnni") if vnni else (4, "sdot") if sdot else (2, "pairs")
    wp, bp = pack_qconv(a, xop.out.dtype, g.const_value(w),
                        g.const_value(b) if b is not None else None, block, group, sdot)
    pw = g.add_const(wp, f"{w}_{kind}{block}", op.origin,
                     recipe_of(g.const_value(w), PackQConv(block, group)))
    pb = g.add_const(bp, f"{b or nid + '_bias'}_{kind}{block}", op.origin)
    if xop.block != block:
        x = g.add_op(OpKind.REORDER, NoAttrs(), [x], f"{x}_nchw{block}c", op.origin)
        g.set_op(x, dataclasses.replace(g.op(x), block=block))
    conv = dataclasses.replace(a.conv, packed=block, out_channels=op.out.shape[1])
    g.set_op(nid, dataclasses.replace(op, attrs=dataclasses.replace(a, conv=conv,
                                                                    signed_dot=sdot),
                                      inputs=(x, pw, pb), block=block))
    return True


def _per_channel_operand(g: Graph, src: str, shape: tuple[int, ...], block: int) -> bool:
    """A [1, C, 1, 1] operand of a binary op on [N, C, H, W] that the blocked kernel reads
    one channel block at a time: a float constant (BatchNormalization's scale and shift
    before a ReLU, as DenseNet's pre-activations have them), whose zero fill up to the
    next ``ALIGN`` boundary gives the padded lanes, or a blocked run-time tensor
    (squeeze-excite's gate)."""
    op = g.op(src)
    if op.out.shape != (1, shape[1], 1, 1) or op.out.dtype != "float32":
        return False
    if g.is_const(src):
        return block * 4 <= ALIGN
    return op.block == block


def _per_channel_constants(g: Graph, nid: str) -> bool:
    """Give a binary op's [C, 1, 1] constant operands (ONNX broadcasting from the right)
    the [1, C, 1, 1] shape the blocked kernel's per-channel reads expect."""
    op = g.op(nid)
    shape = op.out.shape
    inputs = list(op.inputs)
    for k, src in enumerate(inputs):
        sop = g.op(src)
        if g.is_const(src) and len(shape) == 4 and sop.out.shape == (shape[1], 1, 1):
            inputs[k] = g.add_const(g.const_value(src).reshape(1, shape[1], 1, 1),
                                    f"{src}_nchw", sop.origin)
    if inputs == list(op.inputs):
        return False
    g.set_op(nid, dataclasses.replace(op, inputs=tuple(inputs)))
    return True


def _can_block(g: Graph, nid: str, block: int) -> bool:
    op = g.op(nid)
    if len(op.out.shape) != 4:
        return False
    ins = [g.op(i) for i in op.inputs]
    x_dtype = ins[0].out.dtype if ins else op.out.dtype
    if not opdef(op.kind).has_layout("float" if x_dtype in FLOAT_DTYPES else x_dtype, "blocked"):
        return False  # its definition declares no blocked kernel
    if op.out.dtype in ("uint8", "int8"):  # 8-bit: max pooling, global average, concat
        if op.kind in (OpKind.MAXPOOL, OpKind.QGLOBAL_AVGPOOL):
            return ins[0].block == block
        if op.kind is not OpKind.CONCAT:
            return False
    elif op.out.dtype != "float32":
        return False
    if op.kind is OpKind.DEQUANTIZE:  # blocked 8-bit in, blocked float out (per tensor)
        # ... unless only MLAS-order convs (plain layout) read it: then the reorder to
        # plain is cheaper on the 8-bit tensor, before dequantizing
        plain_only = all(g.op(c).kind is OpKind.CONV
                         and getattr(g.op(c).attrs, "ort_order", None)
                         for c in g.consumers(nid))
        return ins[0].block == block and ins[0].out.dtype in ("uint8", "int8") and \
            op.attrs.per_tensor and not plain_only  # type: ignore[attr-defined]
    if op.kind in _CHANNELWISE:
        return ins[0].block == block
    if op.kind is OpKind.REDUCE:
        a = op.attrs
        assert isinstance(a, ReduceAttrs)
        return ins[0].block == block and a.axes == (2, 3) and a.keepdims
    if op.kind in BINARY:
        full = [i.block == block and i.out.shape == op.out.shape for i in ins]
        return any(full) and all(f or _per_channel_operand(g, src, op.out.shape, block)
                                 for f, src in zip(full, op.inputs))
    if op.kind is OpKind.CONCAT:
        if op.attrs.axis != 1:  # type: ignore[attr-defined]
            return False
        return all(i.block == block for i in ins) and \
            all(i.out.shape[1] % block == 0 for i in ins[:-1])
    return False


def _reads_blocked(g: Graph, consumer: str) -> bool:
    op = g.op(consumer)
    if op.kind is OpKind.REORDER:
        return op.block == 0  # a reorder to plain reads the blocked tensor
    return op.block > 0 or (op.kind is OpKind.CONV and bool(op.attrs.packed))  # type: ignore[attr-defined]


def assign_layout(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Make convolutions produce channel-blocked tensors and keep them blocked downstream.

    Convs with constant weights (group 1, depthwise, or groups of whole channel blocks)
    get weights packed at compile time as [OC/b, IC/group, KH, KW, b] and biases padded to b, so a kernel loads b output channels'
    weights with one vector load; their outputs are stored NCHW[b]c (b = the target's
    float vector width, ``ctx.target_block``). Pools, global pools, activations,
    same-shape binary ops and channel concats of blocked tensors stay blocked. Padded
    channels hold zeros. A ``reorder`` back to plain NCHW is inserted before any other
    consumer and before graph outputs, so layout conversion happens only at the edges of
    the conv trunk.
    """
    block = ctx.target_block
    changed = False
    for nid in list(g.nodes()):
        op = g.op(nid)
        if op.kind is OpKind.CONV:
            changed |= _pack_conv(g, nid, block)
        elif op.kind is OpKind.QCONV:
            changed |= _pack_qconv(g, nid, block, ctx.target_vnni, ctx.target_sdot)
        elif op.kind not in (OpKind.CONST, OpKind.INPUT) and not op.block:
            if op.kind in BINARY:
                changed |= _per_channel_constants(g, nid)
            if not _can_block(g, nid, block):
                continue
            g.set_op(nid, dataclasses.replace(g.op(nid), block=block))
            changed = True
    for nid in list(g.nodes()):
        op = g.op(nid)
        if not op.block or op.kind is OpKind.REORDER:
            continue
        plain_users = [c for c in g.consumers(nid) if not _reads_blocked(g, c)]
        is_output = nid in g.output_nodes()
        if not plain_users and not is_output:
            continue
        r = g.add_op(OpKind.REORDER, NoAttrs(), [nid], f"{nid}_nchw", op.origin)
        for user in plain_users:
            uop = g.op(user)
            g.set_op(user, dataclasses.replace(
                uop, inputs=tuple(r if i == nid else i for i in uop.inputs)))
        for out in g.outputs:
            if out.node == nid:
                out.node = r
        changed = True
    g.remove_dead()
    return changed
