"""The exported C ABI (docs/ABI.md): ``sqz_metadata``, ``sqz_workspace_size``, ``sqz_run``.

``sqz_run`` validates its arguments (batch, null pointers, workspace alignment) and runs
the kernel schedule once per sample, so a dynamic-batch model compiled at batch 1 serves
any batch. With ``threads > 1`` it starts ``threads - 1`` pthreads for the duration of
the call; every worker walks the same schedule, each kernel takes its share of the work
(``split_range``) and a barrier in the caller's workspace separates the kernels. Nothing
is global: concurrent calls with separate workspaces are safe, and results do not depend
on the thread count (every output element is computed by one worker, the same way).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from sqzc.backends.llvm.cg import I8, I32, I64, PTR, for_range, i64
from sqzc.ir import Graph
from sqzc.memory import ALIGN, MemoryPlan, View

ABI_VERSION = 1
ERR_BATCH, ERR_NULL, ERR_ALIGN = 1, 2, 3
#: Bytes after the arena holding the barrier (counter, generation), one cache line each.
BARRIER_BYTES = 2 * ALIGN
#: The largest thread count a call accepts (more is clamped).
MAX_THREADS = 256

# The run context every worker reads: inputs, outputs, workspace, batch, nthreads, start.
CTX = ir.LiteralStructType([PTR, PTR, PTR, I64, I64, I64])
ARG = ir.LiteralStructType([PTR, I64])  # (context, worker id) handed to pthread_create


def profile_offset(plan: MemoryPlan) -> int:
    """Byte offset in the workspace of the per-kernel nanosecond counters (profile builds)."""
    return plan.arena_bytes + BARRIER_BYTES


def workspace_bytes(plan: MemoryPlan, profiled_kernels: int = 0) -> int:
    """What ``sqz_workspace_size`` reports: arena, barrier, and profile counters."""
    return profile_offset(plan) + 8 * profiled_kernels


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


def _opaque(b: ir.IRBuilder, ptr: ir.Value) -> ir.Value:
    """View an alloca as an opaque ``ptr``: llvmlite types allocas as typed pointers and
    then mis-types GEPs through them; LLVM folds this round trip away."""
    return b.inttoptr(b.ptrtoint(ptr, I64), PTR)


def _pause(b: ir.IRBuilder) -> None:
    b.asm(ir.FunctionType(ir.VoidType(), []), "pause", "", [], side_effect=True)


#: Spins before a waiting worker sleeps in the kernel (futex): short waits stay cheap,
#: and an oversubscribed machine does not burn the core the other worker needs.
SPINS_BEFORE_SLEEP = 4096
SYS_FUTEX, FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 202, 128, 129


def build_barrier(module: ir.Module) -> ir.Function:
    """``barrier(ptr state, i64 n)``: a generation barrier that spins, then sleeps.

    State (in the caller's workspace): arrival counter at +0, sleeping-waiter count at +8,
    generation at +64 (its own cache line). The last arriver resets the counter, bumps the
    generation and wakes sleepers with FUTEX_WAKE; the others spin on the generation for a
    while and then FUTEX_WAIT on its low 32 bits. The generation store and the waiter
    count use sequentially consistent atomics so a wake-up is never missed.
    """
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, I64]), "sqz_barrier")
    fn.linkage = "internal"
    state, n = fn.args
    syscall = module.globals.get("syscall") or ir.Function(
        module, ir.FunctionType(I64, [I64], var_arg=True), "syscall")
    null = ir.Constant(PTR, None)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    count = state
    waiters = b.gep(state, [i64(8)], source_etype=I8, name="waiters.ptr")
    gen_ptr = b.gep(state, [i64(ALIGN)], source_etype=I8, name="gen.ptr")
    gen = b.load_atomic(gen_ptr, "acquire", 8, typ=I64, name="gen")
    arrived = b.atomic_rmw("add", count, i64(1), "acq_rel", name="arrived")
    last = b.icmp_signed("==", arrived, b.sub(n, i64(1)))
    names = ("release", "spin", "sleep", "sleep.check", "sleep.wait", "woken", "done")
    release, spin, sleep, check, wait, woken, done = (fn.append_basic_block(x) for x in names)
    b.cbranch(last, release, spin)

    b.position_at_end(release)
    # (llvmlite's store_atomic predates opaque pointers; an atomic exchange is a store)
    b.atomic_rmw("xchg", count, i64(0), "monotonic")
    b.atomic_rmw("xchg", gen_ptr, b.add(gen, i64(1)), "seq_cst")
    sleeping = b.atomic_rmw("add", waiters, i64(0), "seq_cst", name="sleeping")
    with b.if_then(b.icmp_signed("!=", sleeping, i64(0))):
        b.call(syscall, [i64(SYS_FUTEX), gen_ptr, i64(FUTEX_WAKE_PRIVATE), i64(0x7FFFFFFF),
                         null, null, i64(0)])
    b.ret_void()

    b.position_at_end(spin)
    spins = b.phi(I64, name="spins")
    spins.add_incoming(i64(0), fn.entry_basic_block)
    _pause(b)
    cur = b.load_atomic(gen_ptr, "acquire", 8, typ=I64)
    nxt = b.add(spins, i64(1))
    decide = fn.append_basic_block("spin.more")
    b.cbranch(b.icmp_signed("!=", cur, gen), done, decide)
    b.position_at_end(decide)
    spins.add_incoming(nxt, decide)
    b.cbranch(b.icmp_unsigned("<", nxt, i64(SPINS_BEFORE_SLEEP)), spin, sleep)

    b.position_at_end(sleep)
    b.atomic_rmw("add", waiters, i64(1), "seq_cst")
    b.branch(check)
    b.position_at_end(check)
    cur2 = b.load_atomic(gen_ptr, "seq_cst", 8, typ=I64)
    b.cbranch(b.icmp_signed("!=", cur2, gen), woken, wait)
    b.position_at_end(wait)
    expected = b.and_(gen, i64(0xFFFFFFFF))
    b.call(syscall, [i64(SYS_FUTEX), gen_ptr, i64(FUTEX_WAIT_PRIVATE), expected, null, null,
                     i64(0)])
    b.branch(check)
    b.position_at_end(woken)
    b.atomic_rmw("sub", waiters, i64(1), "seq_cst")
    b.branch(done)

    b.position_at_end(done)
    b.ret_void()
    return fn


def build_entry_points(module: ir.Module, graph: Graph, plan: MemoryPlan,
                       views: dict[str, View], kernels: list[tuple[str, ir.Function]],
                       weights: ir.GlobalVariable, metadata_json: str,
                       profile: bool = False) -> None:
    """Add the exported functions (and the internal worker) to ``module``."""
    meta = _cstring(module, "sqz_metadata_json", metadata_json)
    fn = ir.Function(module, ir.FunctionType(PTR, []), "sqz_metadata")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(b.gep(meta, [i64(0), i64(0)], source_etype=meta.value_type))

    fn = ir.Function(module, ir.FunctionType(I64, []), "sqz_workspace_size")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(i64(workspace_bytes(plan, len(kernels) if profile else 0)))

    barrier = build_barrier(module)
    body = _build_body(module, graph, plan, views, kernels, weights, barrier, profile)
    worker = _build_worker(module, body)
    _build_run(module, graph, plan, body, worker, len(kernels) if profile else 0)


def _build_body(module: ir.Module, graph: Graph, plan: MemoryPlan, views: dict[str, View],
                kernels: list[tuple[str, ir.Function]], weights: ir.GlobalVariable,
                barrier: ir.Function, profile: bool) -> ir.Function:
    """``body(ctx, tid)``: one worker's walk over samples and kernels; profile builds
    have worker 0 add each kernel's wall time (including its barrier) to a counter."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, I64]), "sqz_body")
    fn.linkage = "internal"
    ctx, tid = fn.args
    ctx.name, tid.name = "ctx", "tid"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    clock = _opaque(b, b.alloca(ir.ArrayType(I64, 2), name="timespec"))
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

        counters = b.gep(workspace, [i64(profile_offset(plan))], source_etype=I8)
        for k, (nid, kernel) in enumerate(kernels):
            op = graph.op(nid)
            args = [pointer(src) for src in op.inputs] + [pointer(nid), tid, nthreads]
            t0 = _now(module, b, clock) if profile else None
            b.call(kernel, args)
            b.call(barrier, [bar, nthreads])
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


def _build_worker(module: ir.Module, body: ir.Function) -> ir.Function:
    """The pthread entry: wait for the start flag, then run ``body``."""
    fn = ir.Function(module, ir.FunctionType(PTR, [PTR]), "sqz_worker")
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    arg = fn.args[0]
    ctx = b.load(b.gep(arg, [ir.Constant(I32, 0), ir.Constant(I32, 0)], source_etype=ARG),
                 typ=PTR, name="ctx")
    tid = b.load(b.gep(arg, [ir.Constant(I32, 0), ir.Constant(I32, 1)], source_etype=ARG),
                 typ=I64, name="tid")
    start = b.gep(ctx, [ir.Constant(I32, 0), ir.Constant(I32, 5)], source_etype=CTX)
    wait, go = fn.append_basic_block("wait"), fn.append_basic_block("go")
    b.branch(wait)
    b.position_at_end(wait)
    _pause(b)
    flag = b.load_atomic(start, "acquire", 8, typ=I64)
    b.cbranch(b.icmp_signed("==", flag, i64(0)), wait, go)
    b.position_at_end(go)
    b.call(body, [ctx, tid])
    b.ret(ir.Constant(PTR, None))
    return fn


def _build_run(module: ir.Module, graph: Graph, plan: MemoryPlan, body: ir.Function,
               worker: ir.Function, profiled_kernels: int) -> None:
    i64p = I64
    create = ir.Function(module, ir.FunctionType(I32, [PTR, PTR, PTR, PTR]), "pthread_create")
    join = ir.Function(module, ir.FunctionType(I32, [i64p, PTR]), "pthread_join")
    run = ir.Function(module, ir.FunctionType(I32, [PTR, PTR, PTR, I64, I32]), "sqz_run")
    inputs, outputs, workspace, batch, threads = run.args
    for a, name in zip(run.args, ("inputs", "outputs", "workspace", "batch", "threads")):
        a.name = name
    b = ir.IRBuilder(run.append_basic_block("entry"))
    handles_t, args_t = ir.ArrayType(I64, MAX_THREADS), ir.ArrayType(ARG, MAX_THREADS)
    handles = _opaque(b, b.alloca(handles_t, name="handles"))
    args = _opaque(b, b.alloca(args_t, name="args"))
    ctx = _opaque(b, b.alloca(CTX, name="ctx"))
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
    nt = b.sext(threads, I64)
    nt = b.select(b.icmp_signed("<", nt, i64(1)), i64(1), nt)
    nt = b.select(b.icmp_signed(">", nt, i64(MAX_THREADS)), i64(MAX_THREADS), nt, name="nt")
    bar = b.gep(workspace, [i64(plan.arena_bytes)], source_etype=I8)
    b.store(i64(0), bar)  # arrivals
    b.store(i64(0), b.gep(bar, [i64(8)], source_etype=I8))  # sleeping waiters
    b.store(i64(0), b.gep(bar, [i64(ALIGN)], source_etype=I8))  # generation
    for k in range(profiled_kernels):
        b.store(i64(0), b.gep(workspace, [i64(profile_offset(plan) + 8 * k)], source_etype=I8))

    def setf(i: int, v: ir.Value) -> None:
        b.store(v, b.gep(ctx, [ir.Constant(I32, 0), ir.Constant(I32, i)], source_etype=CTX))

    for i, v in enumerate((inputs, outputs, workspace, batch, nt, i64(0))):
        setf(i, v)
    # start workers 1..nt-1; if one cannot be created, run with the ones that were
    started = _opaque(b, b.alloca(I64, name="started"))
    b.store(i64(1), started)
    spawn_end = run.append_basic_block("spawn.end")
    with for_range(b, 1, nt, name="spawn") as t:
        slot = b.gep(args, [i64(0), t], source_etype=args_t)
        b.store(ctx, b.gep(slot, [ir.Constant(I32, 0), ir.Constant(I32, 0)], source_etype=ARG))
        b.store(t, b.gep(slot, [ir.Constant(I32, 0), ir.Constant(I32, 1)], source_etype=ARG))
        h = b.gep(handles, [i64(0), t], source_etype=handles_t)
        rc = b.call(create, [h, null, worker, slot])
        failed, ok = run.append_basic_block("spawn.failed"), run.append_basic_block("spawn.ok")
        b.cbranch(b.icmp_signed("!=", rc, ir.Constant(I32, 0)), failed, ok)
        b.position_at_end(failed)
        b.branch(spawn_end)
        b.position_at_end(ok)
        b.store(b.add(t, i64(1)), started)
    b.branch(spawn_end)
    b.position_at_end(spawn_end)
    count = b.load(started, typ=I64, name="workers")
    setf(4, count)
    b.atomic_rmw("xchg", b.gep(ctx, [ir.Constant(I32, 0), ir.Constant(I32, 5)],
                               source_etype=CTX), i64(1), "release")
    b.call(body, [ctx, i64(0)])
    with for_range(b, 1, count, name="join") as t:
        h = b.load(b.gep(handles, [i64(0), t], source_etype=handles_t), typ=I64)
        b.call(join, [h, null])
    b.ret(ir.Constant(I32, 0))
