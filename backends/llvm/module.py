"""Lowering a planned IR graph to one LLVM module: kernels, weights, ABI entry points.

One internal function per scheduled node (``k_<node>``), emitted by the registry; the
weights of every surviving constant are packed into one 64-byte aligned blob that the
object file embeds with ``.incbin`` (never spelled out as IR text); ``backends.llvm.abi``
adds the exported ``sqz_*`` functions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from llvmlite import ir

from sqzc.backends.llvm import emit
from sqzc.backends.llvm.abi import build_entry_points
from sqzc.backends.llvm.cg import PTR
from sqzc.backends.llvm.kernel import KernelContext, Operand, kernel_signature
from sqzc.backends.llvm.target import Target
from sqzc.backends.llvm.weights_init import WeightPlan, build_init
from sqzc.errors import InternalError, SqzcError
from sqzc.ir import Graph
from sqzc.memory import ALIGN, MemoryPlan, View, align_up, resolve_views, schedule
from sqzc.ops import OpKind, QConvAttrs, op_name

WEIGHTS_SYMBOL = "sqz_weights"


@dataclass
class LoweredModule:
    """The LLVM IR text (with module asm for the weights) and the weights blob."""

    ir_text: str
    weights: bytes
    kernel_names: list[str]
    #: the assembly embedding the weights, when it cannot be module asm of the IR (a
    #: cross build: llvmlite parses assembly of the native architecture only); the
    #: linker assembles it beside the object
    weights_asm: str = ""


def pack_weights(graph: Graph) -> tuple[bytes, dict[str, int]]:
    """Concatenate every constant a kernel reads, each 64-byte aligned."""
    order = schedule(graph)
    used: list[str] = []
    seen: set[str] = set()
    for n in order:
        for src in graph.op(n).inputs:
            if graph.is_const(src) and src not in seen:
                seen.add(src)
                used.append(src)
    blob = bytearray()
    offsets = {}
    for c in used:
        arr = np.ascontiguousarray(graph.const_value(c))
        blob.extend(b"\0" * (align_up(len(blob)) - len(blob)))
        offsets[c] = len(blob)
        blob.extend(arr.tobytes())
    blob.extend(b"\0" * (align_up(max(len(blob), 1)) - len(blob)))
    return bytes(blob), offsets


def _kernel_name(module: ir.Module, nid: str, prefix: str = "k_") -> str:
    return module.get_unique_name(prefix + nid.replace(".", "_"))


def aliased_positions(graph: Graph, nid: str) -> frozenset[int]:
    """Operand positions of Concat ``nid`` whose producers write straight into it."""
    op = graph.op(nid)
    axis = op.attrs.axis  # type: ignore[attr-defined]
    start, alias = 0, set()
    for pos, src in enumerate(op.inputs):
        p = graph.op(src).into
        if p is not None and p.concat == nid and p.start == start:
            alias.add(pos)
        start += graph.op(src).out.shape[axis]
    return frozenset(alias)


def kernel_key(graph: Graph, nid: str, views: dict[str, View]) -> str:
    """What a kernel's code depends on: op, attributes, and the shape, strides and dtype
    of every operand. Nodes with equal keys (Fire modules of equal geometry) share one
    function, which roughly halves LLVM's work on SqueezeNet."""
    op = graph.op(nid)
    operands = [(views[s].shape, views[s].strides, graph.op(s).out.dtype) for s in op.inputs]
    aliased = aliased_positions(graph, nid) if op.kind is OpKind.CONCAT else frozenset()
    return repr((op.kind, code_attrs(op.attrs), op.block, operands, views[nid].shape,
                 views[nid].strides, op.out.dtype, sorted(aliased)))


def code_attrs(attrs: object) -> object:
    """The attributes a kernel's code depends on: a packed (VNNI) integer conv reads its
    requantization multipliers from its packed bias operand, so they (and the output scale,
    which only they use unless the result is re-quantized) are data, not code."""
    if isinstance(attrs, QConvAttrs) and attrs.conv.packed:
        out = attrs.out if attrs.requant is not None else replace(attrs.out, scale=())
        return replace(attrs, multiplier=(), out=out)
    return attrs


def emitter_dtype_layout(graph: Graph, nid: str) -> tuple[str, str]:
    """The (dtype, layout) the registry looks a node's emitter up by: its first input's
    dtype (its own for nodes without inputs) and whether its output is channel-blocked."""
    op = graph.op(nid)
    dtype = op.inputs and graph.op(op.inputs[0]).out.dtype or op.out.dtype
    return dtype, "blocked" if op.block else "plain"


def emit_kernel(module: ir.Module, graph: Graph, nid: str, views: dict[str, View],
                target: Target, caps: dict[str, int] | None = None
                ) -> tuple[ir.Function, int]:
    """Emit ``k_<nid>`` through the registry, with errors naming the node; returns it
    with the number of work counters it uses. With ``caps`` (extent name -> largest
    value) it is the shared kernel ``ks_<nid>`` of a group, taking those extents as
    trailing ``i64`` arguments (``emit_shared_call`` makes each member's ``k_``)."""
    op = graph.op(nid)
    where = f"node '{op.origin_str}' ({op_name(op)})"
    names = sorted(caps) if caps else []
    fn = ir.Function(module, kernel_signature(len(op.inputs), len(names)),
                     _kernel_name(module, nid, "ks_" if caps else "k_"))
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    if caps:  # one copy for the group: not inlined into, nor cloned for, its callers
        fn.attributes.add("noinline")
        fn.attributes.add("noduplicate")
    n_ptr = len(op.inputs) + 1
    for arg in fn.args[:n_ptr]:
        arg.add_attribute("noalias")
    entry = fn.append_basic_block("entry")
    body = fn.append_basic_block("body")
    b = ir.IRBuilder(body)
    ins = [Operand(fn.args[i], views[src], graph.op(src).out.dtype)
           for i, src in enumerate(op.inputs)]
    out = Operand(fn.args[n_ptr - 1], views[nid], op.out.dtype)
    for i, arg in enumerate(fn.args[:n_ptr - 1]):
        arg.name = f"in{i}"
    fn.args[n_ptr - 1].name = "out"
    fn.args[n_ptr].name = "work"
    fn.args[n_ptr + 1].name, fn.args[n_ptr + 2].name = "tid", "nthreads"
    runtime = None
    if caps:
        runtime = dict(zip(names, fn.args[n_ptr + 3:]))
        for name, arg in runtime.items():
            arg.name = name
    emitter = emit.lookup(op, *emitter_dtype_layout(graph, nid), where)
    aliased = aliased_positions(graph, nid) if op.kind is OpKind.CONCAT else frozenset()
    ctx = KernelContext(module, fn, b, nid, op, ins, out, target, aliased,
                        runtime_extents=runtime, extent_caps=caps)
    try:
        emitter(ctx)
    except SqzcError:
        raise
    except Exception as e:
        raise InternalError(f"code generation failed at {where}: {type(e).__name__}: {e}") from e
    ctx.b.ret_void()
    eb = ir.IRBuilder(entry)
    if ctx.parallel:
        eb.branch(body)
    else:  # serial kernels run on worker 0; the others go straight to the barrier
        done = fn.append_basic_block("other_workers")
        eb.cbranch(eb.icmp_signed("==", fn.args[n_ptr + 1], ir.Constant(ir.IntType(64), 0)),
                   body, done)
        ir.IRBuilder(done).ret_void()
    return fn, ctx.sites


def emit_shared_call(module: ir.Module, shared: ir.Function, n_inputs: int, nid: str,
                     extents: dict[str, int]) -> ir.Function:
    """``k_<nid>``: the shared kernel called with this layer's extents (inlined into the
    caller, so the call costs what a direct one does)."""
    fn = ir.Function(module, kernel_signature(n_inputs), _kernel_name(module, nid))
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    fn.attributes.add("alwaysinline")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.call(shared, [*fn.args, *(ir.Constant(ir.IntType(64), extents[name])
                                for name in sorted(extents))])
    b.ret_void()
    return fn


def sharing_key(graph: Graph, nid: str, views: dict[str, View], target: Target
                ) -> tuple[str, dict[str, int]] | None:
    """(group key, extents) of a node whose emitter lets layers share a kernel: nodes with
    equal group keys differ only in the extents (``emit.registry.SharingRule``)."""
    op = graph.op(nid)
    rule = emit.sharing_rule(op, *emitter_dtype_layout(graph, nid))
    if rule is None:
        return None
    structure, extents = rule(op, [views[s] for s in op.inputs], views[nid], target)
    key = repr((op.kind, op.block, [graph.op(s).out.dtype for s in op.inputs],
                op.out.dtype, structure, sorted(extents)))
    return key, extents


def emit_kernels(module: ir.Module, graph: Graph, views: dict[str, View], target: Target
                 ) -> list[tuple[str, ir.Function, int]]:
    """(node, kernel, work counters) in schedule order. Nodes with equal ``kernel_key``
    share a function outright; layers that differ only in extents their emitter takes
    at run time (Winograd convs of one spatial size, different channel counts) share
    one ``ks_`` function called with constants, which keeps the library small."""
    order = schedule(graph)
    full = {nid: kernel_key(graph, nid, views) for nid in order}
    group_of: dict[str, str] = {}
    groups: dict[str, dict[str, dict[str, int]]] = {}  # group -> full key -> extents
    for nid in order:
        share = sharing_key(graph, nid, views, target)
        if share is not None:
            group_of[nid] = share[0]
            groups.setdefault(share[0], {}).setdefault(full[nid], share[1])
    made: dict[str, tuple[ir.Function, int]] = {}
    shared: dict[str, tuple[ir.Function, int]] = {}
    kernels = []
    for nid in order:
        key = full[nid]
        if key not in made:
            group = group_of.get(nid)
            members = groups[group] if group is not None else {}
            if len(members) > 1:
                assert group is not None
                if group not in shared:
                    caps = {name: max(e[name] for e in members.values())
                            for name in members[key]}
                    shared[group] = emit_kernel(module, graph, nid, views, target, caps)
                fn, sites = shared[group]
                made[key] = (emit_shared_call(module, fn, len(graph.op(nid).inputs), nid,
                                              members[key]), sites)
            else:
                made[key] = emit_kernel(module, graph, nid, views, target)
        kernels.append((nid, *made[key]))
    return kernels


def lower(graph: Graph, plan: MemoryPlan, target: Target, metadata_json: str,
          weights_path: str, profile: bool = False, inline_weights: bool = False,
          compressed: WeightPlan | None = None, optimize_size: bool = False,
          separate_weights_asm: bool = False) -> LoweredModule:
    """Build the module for ``graph``; ``weights_path`` is the file ``.incbin`` will read.

    ``inline_weights`` spells the weights out as an IR constant instead (``--emit llvm``:
    a self-contained, reproducible text file, slow to parse but never used for builds).
    ``separate_weights_asm`` returns the ``.incbin`` assembly apart (``weights_asm``)
    instead of appending it as module asm (cross builds). ``optimize_size`` marks every
    function ``optsize`` (``--optimize size``): LLVM then
    does not unroll loops or duplicate code for speed. (``minsize`` saves 4 KB more on the
    paper's SqueezeNet but makes it 1.4x slower: it gives up the conv loops' scheduling.)
    """
    weights, const_offsets = pack_weights(graph)
    views = resolve_views(graph, plan, const_offsets)
    module = ir.Module(name=graph.name)
    module.triple = target.triple
    tm = target.machine(2)
    module.data_layout = str(tm.target_data)
    wglobal = ir.GlobalVariable(module, ir.ArrayType(ir.IntType(8), len(weights)), WEIGHTS_SYMBOL)
    wglobal.visibility = "hidden"
    wglobal.align = ALIGN
    wplan = compressed  # the stored container and load-time steps, or raw weights
    if inline_weights and wplan is None:
        wglobal.global_constant = True
        wglobal.initializer = ir.Constant(wglobal.value_type, bytearray(weights))
    init = build_init(module, target, wglobal, len(weights), wplan)
    kernels = emit_kernels(module, graph, views, target)
    build_entry_points(module, graph, plan, views, kernels, wglobal, metadata_json, target,
                       init, profile)
    if optimize_size:
        for fn in module.functions:
            if not fn.is_declaration:
                fn.attributes.add("optsize")
    text = str(module)
    if inline_weights or wplan is not None:  # no .incbin: inline, or a .bss image
        return LoweredModule(text, weights, [k.name for _, k, _ in kernels])
    path = weights_path.replace("\\", "\\\\").replace('"', '\\"')
    asm = [
        '.section .rodata.sqz_weights,"a",@progbits',
        f".p2align {ALIGN.bit_length() - 1}",
        f".globl {WEIGHTS_SYMBOL}",
        f".hidden {WEIGHTS_SYMBOL}",
        f".type {WEIGHTS_SYMBOL},@object",
        f"{WEIGHTS_SYMBOL}:",
        f'.incbin "{path}"',
        f".size {WEIGHTS_SYMBOL}, {len(weights)}",
        ".text",
    ]
    if separate_weights_asm:
        wglobal.linkage = "external"  # defined by the assembly file
        return LoweredModule(str(module), weights, [k.name for _, k, _ in kernels],
                             "\n".join(asm) + "\n")
    text += "\n" + "\n".join(f'module asm "{line.replace(chr(34), chr(92) + "22")}"'
                             for line in asm) + "\n"
    return LoweredModule(text, weights, [k.name for _, k, _ in kernels])


__all__ = ["PTR", "LoweredModule", "lower", "pack_weights"]
