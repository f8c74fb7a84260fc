"""The exported C ABI (docs/ABI.md): ``sqz_metadata``, ``sqz_workspace_size``, ``sqz_run``.

``sqz_run`` validates its arguments (batch, null pointers, workspace alignment) and then
runs the kernel schedule once per sample, so a dynamic-batch model compiled at batch 1
serves any batch. It touches no global mutable state: concurrent calls with separate
workspaces are safe.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from sqzc.backends.llvm.cg import I8, I32, I64, PTR, for_range, i64
from sqzc.ir import Graph
from sqzc.memory import ALIGN, MemoryPlan, View

ABI_VERSION = 1
ERR_BATCH, ERR_NULL, ERR_ALIGN = 1, 2, 3


def _cstring(module: ir.Module, name: str, text: str) -> ir.GlobalVariable:
    data = bytearray(text.encode("utf-8")) + b"\0"
    ty = ir.ArrayType(I8, len(data))
    g = ir.GlobalVariable(module, ty, name=name)
    g.global_constant = True
    g.linkage = "internal"
    g.initializer = ir.Constant(ty, data)
    return g


def _return_if(b: ir.IRBuilder, cond: ir.Value, code: int, name: str) -> None:
    fail = b.append_basic_block(f"{name}.fail")
    ok = b.append_basic_block(f"{name}.ok")
    b.cbranch(cond, fail, ok)
    b.position_at_end(fail)
    b.ret(ir.Constant(I32, code))
    b.position_at_end(ok)


def _sample_bytes(graph: Graph, nid: str) -> int:
    t = graph.op(nid).out
    return t.nbytes


def build_entry_points(module: ir.Module, graph: Graph, plan: MemoryPlan,
                       views: dict[str, View], kernels: list[tuple[str, ir.Function]],
                       weights: ir.GlobalVariable, metadata_json: str) -> None:
    """Add the three exported functions to ``module``."""
    meta = _cstring(module, "sqz_metadata_json", metadata_json)
    fn = ir.Function(module, ir.FunctionType(PTR, []), "sqz_metadata")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(b.gep(meta, [i64(0), i64(0)], source_etype=meta.value_type))

    fn = ir.Function(module, ir.FunctionType(I64, []), "sqz_workspace_size")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(i64(plan.arena_bytes))

    run = ir.Function(module, ir.FunctionType(I32, [PTR, PTR, PTR, I64]), "sqz_run")
    inputs, outputs, workspace, batch = run.args
    inputs.name, outputs.name, workspace.name, batch.name = "inputs", "outputs", "workspace", \
        "batch"
    b = ir.IRBuilder(run.append_basic_block("entry"))
    if graph.dynamic_batch:
        bad = b.icmp_signed("<", batch, i64(1), name="batch.bad")
    else:
        bad = b.icmp_signed("!=", batch, i64(1), name="batch.bad")
    _return_if(b, bad, ERR_BATCH, "batch")
    null = ir.Constant(PTR, None)
    _return_if(b, b.or_(b.icmp_unsigned("==", inputs, null), b.icmp_unsigned("==", outputs, null)),
               ERR_NULL, "arrays")
    in_ptrs, out_ptrs = [], []
    for i, _ in enumerate(graph.inputs):
        p = b.load(b.gep(inputs, [i64(i)], source_etype=PTR), typ=PTR, name=f"in{i}")
        _return_if(b, b.icmp_unsigned("==", p, null), ERR_NULL, f"in{i}")
        in_ptrs.append(p)
    for j, _ in enumerate(graph.outputs):
        p = b.load(b.gep(outputs, [i64(j)], source_etype=PTR), typ=PTR, name=f"out{j}")
        _return_if(b, b.icmp_unsigned("==", p, null), ERR_NULL, f"out{j}")
        out_ptrs.append(p)
    if plan.arena_bytes:
        _return_if(b, b.icmp_unsigned("==", workspace, null), ERR_NULL, "ws")
        addr = b.ptrtoint(workspace, I64)
        misaligned = b.icmp_unsigned("!=", b.and_(addr, i64(ALIGN - 1)), i64(0))
        _return_if(b, misaligned, ERR_ALIGN, "ws.align")

    in_bytes = [_sample_bytes(graph, n) for n in graph.inputs]
    out_bytes = [_sample_bytes(graph, o.node) for o in graph.outputs]
    with for_range(b, 0, batch, name="sample") as s:
        base_in = [b.gep(p, [b.mul(s, i64(n))], source_etype=I8, name=f"in{i}.s")
                   for i, (p, n) in enumerate(zip(in_ptrs, in_bytes))]
        base_out = [b.gep(p, [b.mul(s, i64(n))], source_etype=I8, name=f"out{j}.s")
                    for j, (p, n) in enumerate(zip(out_ptrs, out_bytes))]

        def pointer(nid: str) -> ir.Value:
            v = views[nid]
            item = np.dtype(graph.op(nid).out.dtype).itemsize
            if v.root.kind == "input":
                base = base_in[v.root.index]
            elif v.root.kind == "output":
                base = base_out[v.root.index]
            elif v.root.kind == "const":
                base, item_off = weights, v.root.index
                return b.gep(base, [i64(0), i64(item_off + v.offset * item)],
                             source_etype=weights.value_type)
            else:
                base = b.gep(workspace, [i64(v.root.index)], source_etype=I8)
            if v.offset == 0:
                return base
            return b.gep(base, [i64(v.offset * item)], source_etype=I8)

        for nid, kernel in kernels:
            op = graph.op(nid)
            args = [pointer(src) for src in op.inputs] + [pointer(nid), i64(0), i64(1)]
            b.call(kernel, args)
    b.ret(ir.Constant(I32, 0))
