"""The exported C ABI (docs/ABI.md): metadata, workspace size, the pool, ``sqz_run``.

``sqz_run`` and ``sqz_run_pool`` validate their arguments (batch, null pointers,
workspace alignment) and run the kernel schedule once per sample, so a dynamic-batch
model compiled at batch 1 serves any batch. Threads (``backends.llvm.threads``): every
worker walks the same schedule, each kernel takes its share of the work
(``split_range``) and a barrier in the caller's workspace separates the kernels.
``sqz_run_pool`` uses a pool made once by ``sqz_pool_create``; ``sqz_run`` with
``threads > 1`` makes a pool for the one call. Nothing is global: concurrent calls with
separate workspaces are safe, and results do not depend on the thread count (every
output element is computed by one worker, the same way).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from sqzc.backends.llvm.cpu_check import emit_cpu_check
from sqzc.backends.llvm.target import Target
from sqzc.runtime.elf import METADATA_SECTION
from sqzc.backends.llvm.cg import I8, I32, I64, PTR, for_range, i64, opaque_ptr
from sqzc.backends.llvm.kernel import WORK_BYTES_PER_KERNEL, WORK_SITE_BYTES
from sqzc.backends.llvm.threads import CTX, MAX_THREADS, build_barrier, build_pool
from sqzc.ir import Graph
from sqzc.memory import ALIGN, MemoryPlan, View

ERR_BATCH, ERR_NULL, ERR_ALIGN, ERR_CPU = 1, 2, 3, 4
#: Bytes after the arena holding the barrier (counter, generation), one cache line each.
BARRIER_BYTES = 2 * ALIGN


def work_offset(plan: MemoryPlan) -> int:
    """Byte offset in the workspace of the kernels' work counters (``parallel_for``):
    WORK_BYTES_PER_KERNEL per scheduled kernel, after the arena and the barrier."""
    return plan.arena_bytes + BARRIER_BYTES


def profile_offset(plan: MemoryPlan, n_kernels: int) -> int:
    """Byte offset in the workspace of the per-kernel nanosecond counters (profile builds)."""
    return work_offset(plan) + n_kernels * WORK_BYTES_PER_KERNEL


def workspace_bytes(plan: MemoryPlan, n_kernels: int, profile: bool = False) -> int:
    """What ``sqz_workspace_size`` reports: arena, barrier, work counters, and profile
    counters."""
    return profile_offset(plan, n_kernels) + (8 * n_kernels if profile else 0)


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


def _field(b: ir.IRBuilder, ctx: ir.Value, i: int, ty: ir.Type, name: str) -> ir.Value:
    return b.load(b.gep(ctx, [ir.Constant(I32, 0), ir.Constant(I32, i)], source_etype=CTX),
                  typ=ty, name=name)


def build_entry_points(module: ir.Module, graph: Graph, plan: MemoryPlan,
                       views: dict[str, View], kernels: list[tuple[str, ir.Function, int]],
                       weights: ir.GlobalVariable, metadata_json: str, target: Target,
                       init: ir.Function, profile: bool = False) -> None:
    """Add the exported functions (and the internal worker) to ``module``."""
    meta = _cstring(module, "sqz_metadata_json", metadata_json)
    meta.section = METADATA_SECTION  # found by name in a file that cannot be loaded here
    fn = ir.Function(module, ir.FunctionType(PTR, []), "sqz_metadata")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(b.gep(meta, [i64(0), i64(0)], source_etype=meta.value_type))

    fn = ir.Function(module, ir.FunctionType(I64, []), "sqz_workspace_size")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(i64(workspace_bytes(plan, len(kernels), profile)))

    barrier = build_barrier(module)
    body = _build_body(module, graph, plan, views, kernels, weights, barrier, profile)
    create, destroy, dispatch = build_pool(module, body)
    # words zeroed at the start of every call: used work counters, profile counters
    zeroed = [work_offset(plan) + k * WORK_BYTES_PER_KERNEL + s * WORK_SITE_BYTES
              for k, (_, _, sites) in enumerate(kernels) for s in range(sites)]
    if profile:
        zeroed += [profile_offset(plan, len(kernels)) + 8 * k for k in range(len(kernels))]
    cpu_ok = emit_cpu_check(module, target)
    _build_runs(module, graph, plan, body, create, destroy, dispatch, zeroed, cpu_ok, init)


def _build_body(module: ir.Module, graph: Graph, plan: MemoryPlan, views: dict[str, View],
                kernels: list[tuple[str, ir.Function, int]], weights: ir.GlobalVariable,
                barrier: ir.Function, profile: bool) -> ir.Function:
    """``body(ctx, tid)``: one worker's walk over samples and kernels; profile builds
    have worker 0 add each kernel's wall time (including its barrier) to a counter.
    After each kernel's barrier worker 0 zeroes the kernel's work counters for the next
    sample (every worker is past them by then)."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, I64]), "sqz_body")
    fn.linkage = "internal"
    # one copy: without this LLVM's function specialization clones the whole body for the
    # callers that pass tid = 0 (about 14 KB of code on SqueezeNet 1.0, nothing gained:
    # the body only compares tid with 0 to decide who zeroes the work counters)
    fn.attributes.add("noduplicate")
    ctx, tid = fn.args
    ctx.name, tid.name = "ctx", "tid"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    clock = opaque_ptr(b, b.alloca(ir.ArrayType(I64, 2), name="timespec"))
    inputs = _field(b, ctx, 0, PTR, "inputs")
    outputs = _field(b, ctx, 1, PTR, "outputs")
    workspace = _field(b, ctx, 2, PTR, "workspace")
    batch = _field(b, ctx, 3, I64, "batch")
    nthreads = _field(b, ctx, 4, I64, "nthreads")
    bar = b.gep(workspace, [i64(plan.arena_bytes)], source_etype=I8, name="barrier")
    in_ptrs = [b.load(b.gep(inputs, [i64(i)], source_etype=PTR), typ=PTR, name=f"in{i}")
               for i in range(len(graph.inputs))]
    out_ptrs = [b.load(b.gep(outputs, [i64(j)], source_etype=PTR), typ=PTR, name=f"out{j}")
                for j in range(len(graph.outputs))]
    in_bytes = [graph.op(n).out.nbytes for n in graph.inputs]
    out_bytes = [graph.op(o.node).out.nbytes for o in graph.outputs]
    with for_range(b, 0, batch, name="sample") as s:
        base_in = [b.gep(p, [b.mul(s, i64(n))], source_etype=I8, name=f"in{i}.s")
                   for i, (p, n) in enumerate(zip(in_ptrs, in_bytes))]
        base_out = [b.gep(p, [b.mul(s, i64(n))], source_etype=I8, name=f"out{j}.s")
                    for j, (p, n) in enumerate(zip(out_ptrs, out_bytes))]

        def pointer(nid: str) -> ir.Value:
            v = views[nid]
            item = np.dtype(graph.op(nid).out.dtype).itemsize
            if v.root.kind == "const":
                return b.gep(weights, [i64(0), i64(v.root.index + v.offset * item)],
                             source_etype=weights.value_type)
            if v.root.kind == "input":
                base = base_in[v.root.index]
            elif v.root.kind == "output":
                base = base_out[v.root.index]
            else:
                base = b.gep(workspace, [i64(v.root.index)], source_etype=I8)
            return base if v.offset == 0 else b.gep(base, [i64(v.offset * item)],
                                                     source_etype=I8)

        counters = b.gep(workspace, [i64(profile_offset(plan, len(kernels)))], source_etype=I8)
        for k, (nid, kernel, sites) in enumerate(kernels):
            op = graph.op(nid)
            work = b.gep(workspace, [i64(work_offset(plan) + k * WORK_BYTES_PER_KERNEL)],
                         source_etype=I8, name="work")
            args = [pointer(src) for src in op.inputs] + [pointer(nid), work, tid, nthreads]
            t0 = _now(module, b, clock) if profile else None
            b.call(kernel, args)
            b.call(barrier, [bar, nthreads])
            if sites:
                with b.if_then(b.icmp_signed("==", tid, i64(0))):
                    for site in range(sites):
                        b.store(i64(0), b.gep(work, [i64(site * WORK_SITE_BYTES)],
                                              source_etype=I8))
            if profile:
                with b.if_then(b.icmp_signed("==", tid, i64(0))):
                    slot = b.gep(counters, [i64(8 * k)], source_etype=I8)
                    spent = b.sub(_now(module, b, clock), t0)
                    b.store(b.add(b.load(slot, typ=I64), spent), slot)
    b.ret_void()
    return fn


def _now(module: ir.Module, b: ir.IRBuilder, clock: ir.Value) -> ir.Value:
    """CLOCK_MONOTONIC in nanoseconds via clock_gettime."""
    gettime = module.globals.get("clock_gettime") or ir.Function(
        module, ir.FunctionType(I32, [I32, PTR]), "clock_gettime")
    b.call(gettime, [ir.Constant(I32, 1), clock])
    sec = b.load(clock, typ=I64)
    nsec = b.load(b.gep(clock, [i64(8)], source_etype=I8), typ=I64)
    return b.add(b.mul(sec, i64(1_000_000_000)), nsec)




def _validate_and_prepare(b: ir.IRBuilder, run: ir.Function, graph: Graph, plan: MemoryPlan,
                          inputs: ir.Value, outputs: ir.Value, workspace: ir.Value,
                          batch: ir.Value, zeroed: list[int], cpu_ok: ir.Function,
                          init: ir.Function) -> ir.Value:
    """The CPU check (first: nothing before it may use a vector instruction) and the
    argument checks both run functions share (returning the ABI error codes), then the
    barrier and the ``zeroed`` workspace words reset and the run context on the stack."""
    _return_if(b, b.not_(b.call(cpu_ok, [])), ERR_CPU, "cpu")
    weights_rc = b.call(init, [], name="init")  # once per process (compressed weights)
    failed, ready = run.append_basic_block("init.fail"), run.append_basic_block("init.ok")
    b.cbranch(b.icmp_unsigned("!=", weights_rc, ir.Constant(I32, 0)), failed, ready)
    b.position_at_end(failed)
    b.ret(weights_rc)
    b.position_at_end(ready)
    if graph.dynamic_batch:
        bad = b.icmp_signed("<", batch, i64(1), name="batch.bad")
    else:
        bad = b.icmp_signed("!=", batch, i64(1), name="batch.bad")
    _return_if(b, bad, ERR_BATCH, "batch")
    null = ir.Constant(PTR, None)
    _return_if(b, b.or_(b.or_(b.icmp_unsigned("==", inputs, null),
                              b.icmp_unsigned("==", outputs, null)),
                        b.icmp_unsigned("==", workspace, null)), ERR_NULL, "arrays")
    for i in range(len(graph.inputs)):
        p = b.load(b.gep(inputs, [i64(i)], source_etype=PTR), typ=PTR)
        _return_if(b, b.icmp_unsigned("==", p, null), ERR_NULL, f"in{i}")
    for j in range(len(graph.outputs)):
        p = b.load(b.gep(outputs, [i64(j)], source_etype=PTR), typ=PTR)
        _return_if(b, b.icmp_unsigned("==", p, null), ERR_NULL, f"out{j}")
    addr = b.ptrtoint(workspace, I64)
    _return_if(b, b.icmp_unsigned("!=", b.and_(addr, i64(ALIGN - 1)), i64(0)), ERR_ALIGN,
               "ws.align")
    bar = b.gep(workspace, [i64(plan.arena_bytes)], source_etype=I8)
    b.store(i64(0), bar)  # arrivals
    b.store(i64(0), b.gep(bar, [i64(8)], source_etype=I8))  # sleeping waiters
    b.store(i64(0), b.gep(bar, [i64(ALIGN)], source_etype=I8))  # generation
    for offset in zeroed:
        b.store(i64(0), b.gep(workspace, [i64(offset)], source_etype=I8))
    ctx = opaque_ptr(b, b.alloca(CTX, name="ctx"))
    for i, v in enumerate((inputs, outputs, workspace, batch, i64(1))):
        b.store(v, b.gep(ctx, [ir.Constant(I32, 0), ir.Constant(I32, i)], source_etype=CTX))
    return ctx


def _run_entry(module: ir.Module, graph: Graph, plan: MemoryPlan, name: str,
               args: list[tuple[str, ir.Type]], zeroed: list[int], cpu_ok: ir.Function,
               init: ir.Function
               ) -> tuple[ir.Function, ir.IRBuilder, dict[str, ir.Value], ir.Value]:
    """An exported run function: named arguments, the shared checks, the run context."""
    fn = ir.Function(module, ir.FunctionType(I32, [t for _, t in args]), name)
    named = {}
    for a, (arg_name, _) in zip(fn.args, args):
        a.name = arg_name
        named[arg_name] = a
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ctx = _validate_and_prepare(b, fn, graph, plan, named["inputs"], named["outputs"],
                                named["workspace"], named["batch"], zeroed, cpu_ok, init)
    return fn, b, named, ctx


def _unless_alone(b: ir.IRBuilder, fn: ir.Function, alone: ir.Value, body: ir.Function,
                  ctx: ir.Value) -> None:
    """If ``alone``, run ``body`` on the calling thread and return 0; continue otherwise."""
    solo, pooled = fn.append_basic_block("solo"), fn.append_basic_block("pooled")
    b.cbranch(alone, solo, pooled)
    b.position_at_end(solo)
    b.call(body, [ctx, i64(0)])
    b.ret(ir.Constant(I32, 0))
    b.position_at_end(pooled)


def _build_runs(module: ir.Module, graph: Graph, plan: MemoryPlan, body: ir.Function,
                create: ir.Function, destroy: ir.Function, dispatch: ir.Function,
                zeroed: list[int], cpu_ok: ir.Function, init: ir.Function) -> None:
    """``sqz_run`` (threads per call) and ``sqz_run_pool`` (a caller-owned pool)."""
    null = ir.Constant(PTR, None)
    io = [("inputs", PTR), ("outputs", PTR), ("workspace", PTR), ("batch", I64)]
    fn, b, a, ctx = _run_entry(module, graph, plan, "sqz_run", io + [("threads", I32)], zeroed,
                               cpu_ok, init)
    _unless_alone(b, fn, b.icmp_signed("<=", a["threads"], ir.Constant(I32, 1)), body, ctx)
    pool = b.call(create, [a["threads"]], name="pool")
    _unless_alone(b, fn, b.icmp_unsigned("==", pool, null), body, ctx)  # no memory: alone
    b.call(dispatch, [pool, ctx])
    b.call(destroy, [pool])
    b.ret(ir.Constant(I32, 0))

    fn, b, a, ctx = _run_entry(module, graph, plan, "sqz_run_pool", [("pool", PTR)] + io,
                               zeroed, cpu_ok, init)
    _unless_alone(b, fn, b.icmp_unsigned("==", a["pool"], null), body, ctx)
    b.call(dispatch, [a["pool"], ctx])
    b.ret(ir.Constant(I32, 0))


__all__ = ["ERR_ALIGN", "ERR_BATCH", "ERR_CPU", "ERR_NULL", "MAX_THREADS", "build_entry_points",
           "workspace_bytes"]
