"""Threads inside the generated library: the kernel barrier and the worker pool.

Every worker walks the same kernel schedule (``sqz_body(ctx, tid)``); each kernel takes
its share of the work (``KernelContext.split_range``) and the barrier in the caller's
workspace separates the kernels. The workers live in a *pool*
(``sqz_pool_create``/``sqz_pool_destroy``) that outlives the calls, because two things
made per-call threads slow on small VMs:

* a freshly created thread usually starts on its creator's CPU and stays there for
  milliseconds, so both workers share one core and every barrier hands the core back
  and forth (SqueezeNet 1.1 ran 2x slower on 2 threads than on 1);
* creating and joining threads costs tens of microseconds per call.

A pool worker also keeps itself off the caller's CPU: each job carries the caller's CPU
and worker ``t`` pins itself to the ``t``-th allowed CPU after it (only when there are at
least as many allowed CPUs as workers; oversubscribed pools are left to the scheduler).
Waiting is spin-then-sleep everywhere (``pause`` loops, then a futex), so an idle pool
costs nothing and back-to-back calls do not pay a wake-up.

A pool runs one call at a time; a call that finds its pool busy (another thread of the
caller is using it) runs single-threaded instead of waiting, which keeps concurrent
calls safe. Results never depend on the thread count.
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import I8, I32, I64, PTR, declare_intrinsic, for_range, i64, opaque_ptr
from sqzc.backends.llvm.target import module_arch

#: The largest thread count a call or pool accepts (more is clamped).
MAX_THREADS = 256
#: Spins (``pause``, about 23 ns each on Zen) before a waiting worker sleeps in the kernel
#: (futex): short waits stay cheap, and an oversubscribed machine does not burn the
#: core the other worker needs.
SPINS_BEFORE_SLEEP = 4096
FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 128, 129  # the futex number is a target fact
#: CPUs a pool can place workers on (the size of glibc's ``cpu_set_t``).
MAX_CPUS = 1024

# The run context every worker reads: inputs, outputs, workspace, batch, nthreads.
CTX = ir.LiteralStructType([PTR, PTR, PTR, I64, I64])
CTX_NTHREADS = 4

# Pool layout (bytes from the calloc'd base). Fields written by different threads sit
# 64 bytes apart so they never share a cache line.
POOL_GEN = 0          # job generation: bumped per job (workers futex-wait on its low half)
POOL_DONE = 64        # workers that finished the current job
POOL_CTX = 128        # ptr to the job's CTX
POOL_WORKERS = 136    # started workers (the caller is worker 0 and not counted)
POOL_QUIT = 144       # set by sqz_pool_destroy
POOL_BUSY = 152       # 1 while a call owns the pool
POOL_CALLER = 160     # index in POOL_CPUS of the caller's CPU for this job
POOL_NCPUS = 168      # allowed CPUs (0: do not pin)
POOL_HANDLES = 192    # pthread_t[MAX_THREADS]
POOL_ARGS = POOL_HANDLES + 8 * MAX_THREADS   # {ptr pool, i64 tid}[MAX_THREADS]
POOL_CPUS = POOL_ARGS + 16 * MAX_THREADS     # i32[MAX_CPUS]: the allowed CPU ids
POOL_BYTES = POOL_CPUS + 4 * MAX_CPUS


def _libc(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type],
          var_arg: bool = False) -> ir.Function:
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ret, args, var_arg=var_arg), name)


def _syscall(module: ir.Module) -> ir.Function:
    return _libc(module, "syscall", I64, [I64], var_arg=True)


def _pause(b: ir.IRBuilder) -> None:
    """The target's spin-wait hint (x86 ``pause``, Arm ``yield``), as an intrinsic: inline
    assembly would need the target's assembly parser, which llvmlite has only for the
    native architecture."""
    name, args = module_arch(b.module).SPIN_HINT
    fn = declare_intrinsic(b.module, name, ir.VoidType(), [I32] * len(args))
    b.call(fn, [ir.Constant(I32, a) for a in args])


def _at(b: ir.IRBuilder, base: ir.Value, offset: int | ir.Value, name: str = "") -> ir.Value:
    off = i64(offset) if isinstance(offset, int) else offset
    return b.gep(base, [off], source_etype=I8, name=name)


def futex(module: ir.Module, b: ir.IRBuilder, word: ir.Value, op: int, val: ir.Value) -> None:
    null = ir.Constant(PTR, None)
    number = module_arch(module).SYS_FUTEX
    b.call(_syscall(module), [i64(number), word, i64(op), val, null, null, i64(0)])


def wait_for_change(module: ir.Module, fn: ir.Function, b: ir.IRBuilder, word: ir.Value,
                     old: ir.Value, name: str) -> ir.Value:
    """Spin until the i64 at ``word`` differs from ``old``, then sleep on its low 32 bits
    (FUTEX_WAIT) until it does; returns the new value. The writer must FUTEX_WAKE after
    changing it."""
    entry = b.block
    spin, more, sleep, done = (fn.append_basic_block(f"{name}.{x}")
                               for x in ("spin", "more", "sleep", "done"))
    b.branch(spin)
    b.position_at_end(spin)
    spins = b.phi(I64, name=f"{name}.spins")
    spins.add_incoming(i64(0), entry)
    cur = b.load_atomic(word, "acquire", 8, typ=I64, name=f"{name}.cur")
    b.cbranch(b.icmp_signed("!=", cur, old), done, more)
    b.position_at_end(more)
    _pause(b)
    nxt = b.add(spins, i64(1))
    spins.add_incoming(nxt, more)
    b.cbranch(b.icmp_unsigned("<", nxt, i64(SPINS_BEFORE_SLEEP)), spin, sleep)
    b.position_at_end(sleep)
    # FUTEX_WAIT returns at once if the word already changed, so no wake-up is lost;
    # spurious returns go back to the check (spins stays past the limit).
    futex(module, b, word, FUTEX_WAIT_PRIVATE, b.and_(old, i64(0xFFFFFFFF)))
    spins.add_incoming(i64(SPINS_BEFORE_SLEEP), sleep)
    b.branch(spin)
    b.position_at_end(done)
    return cur


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
    # one copy: called between every two kernels, it would add ~120 bytes at each call
    # site if inlined (LLVM inlines it once the spin hint is an intrinsic, not asm)
    fn.attributes.add("noinline")
    state, n = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    count = state
    waiters = _at(b, state, 8, "waiters.ptr")
    gen_ptr = _at(b, state, 64, "gen.ptr")
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
        futex(module, b, gen_ptr, FUTEX_WAKE_PRIVATE, i64(0x7FFFFFFF))
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
    futex(module, b, gen_ptr, FUTEX_WAIT_PRIVATE, b.and_(gen, i64(0xFFFFFFFF)))
    b.branch(check)
    b.position_at_end(woken)
    b.atomic_rmw("sub", waiters, i64(1), "seq_cst")
    b.branch(done)

    b.position_at_end(done)
    b.ret_void()
    return fn


def _build_pin(module: ir.Module) -> ir.Function:
    """``pin(pool, tid)``: move worker ``tid`` to the ``tid``-th allowed CPU after the
    caller's, unless it is there already (one ``sched_setaffinity`` the first time)."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, I64]), "sqz_pool_pin")
    fn.linkage = "internal"
    pool, tid = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ncpus = b.load(_at(b, pool, POOL_NCPUS), typ=I64, name="ncpus")
    workers = b.load(_at(b, pool, POOL_WORKERS), typ=I64, name="workers")
    with b.if_then(b.icmp_signed(">", b.add(workers, i64(1)), ncpus)):
        b.ret_void()  # oversubscribed (or pinning off): leave placement to the scheduler
    caller = b.load_atomic(_at(b, pool, POOL_CALLER), "acquire", 8, typ=I64, name="caller")
    slot = b.urem(b.add(caller, tid), ncpus, name="slot")
    target = b.sext(b.load(b.gep(_at(b, pool, POOL_CPUS), [slot], source_etype=I32),
                           typ=I32), I64, name="target")
    getcpu = _libc(module, "sched_getcpu", I32, [])
    here = b.sext(b.call(getcpu, []), I64, name="here")
    with b.if_then(b.icmp_signed("!=", here, target)):
        mask = opaque_ptr(b, b.alloca(ir.ArrayType(I8, MAX_CPUS // 8), name="mask"))
        with for_range(b, 0, MAX_CPUS // 8, name="clear") as i:
            b.store(ir.Constant(I8, 0), b.gep(mask, [i], source_etype=I8))
        byte = b.gep(mask, [b.lshr(target, i64(3))], source_etype=I8)
        bit = b.trunc(b.shl(i64(1), b.and_(target, i64(7))), I8)
        b.store(bit, byte)
        setaff = _libc(module, "sched_setaffinity", I32, [I32, I64, PTR])
        b.call(setaff, [ir.Constant(I32, 0), i64(MAX_CPUS // 8), mask])
    b.ret_void()
    return fn


def _build_pool_worker(module: ir.Module, body: ir.Function) -> ir.Function:
    """The pthread entry of a pool worker: wait for a job, pin, run ``body``, report."""
    pin = _build_pin(module)
    fn = ir.Function(module, ir.FunctionType(PTR, [PTR]), "sqz_pool_worker")
    fn.linkage = "internal"
    arg = fn.args[0]
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    pool = b.load(arg, typ=PTR, name="pool")
    tid = b.load(_at(b, arg, 8), typ=I64, name="tid")
    gen_ptr = _at(b, pool, POOL_GEN, "gen.ptr")
    entry = b.block
    loop = fn.append_basic_block("job.wait")
    b.branch(loop)
    b.position_at_end(loop)
    last = b.phi(I64, name="last")
    last.add_incoming(i64(0), entry)
    gen = wait_for_change(module, fn, b, gen_ptr, last, "job")
    quit_ = b.load_atomic(_at(b, pool, POOL_QUIT), "acquire", 8, typ=I64, name="quit")
    run, leave = fn.append_basic_block("job.run"), fn.append_basic_block("leave")
    b.cbranch(b.icmp_signed("!=", quit_, i64(0)), leave, run)
    b.position_at_end(run)
    b.call(pin, [pool, tid])
    ctx = b.load(_at(b, pool, POOL_CTX), typ=PTR, name="ctx")
    b.call(body, [ctx, tid])
    b.atomic_rmw("add", _at(b, pool, POOL_DONE), i64(1), "release")
    last.add_incoming(gen, b.block)
    b.branch(loop)
    b.position_at_end(leave)
    b.ret(ir.Constant(PTR, None))
    return fn


def build_pool(module: ir.Module, body: ir.Function) -> tuple[ir.Function, ir.Function,
                                                               ir.Function]:
    """Add ``sqz_pool_create``, ``sqz_pool_destroy`` (exported) and the internal
    ``sqz_pool_dispatch(pool, ctx)`` that runs ``body`` on the pool; returns them."""
    worker = _build_pool_worker(module, body)
    return _build_create(module, worker), _build_destroy(module), _build_dispatch(module, body)


def _build_create(module: ir.Module, worker: ir.Function) -> ir.Function:
    """``ptr sqz_pool_create(i32 threads)``: NULL if the memory cannot be had; starts
    ``threads - 1`` workers (fewer if pthread_create fails: the pool uses what it got)."""
    fn = ir.Function(module, ir.FunctionType(PTR, [I32]), "sqz_pool_create")
    threads = fn.args[0]
    threads.name = "threads"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    calloc = _libc(module, "calloc", PTR, [I64, I64])
    pool = b.call(calloc, [i64(1), i64(POOL_BYTES)], name="pool")
    null = ir.Constant(PTR, None)
    with b.if_then(b.icmp_unsigned("==", pool, null)):
        b.ret(null)
    nt = b.sext(threads, I64)
    nt = b.select(b.icmp_signed("<", nt, i64(1)), i64(1), nt)
    nt = b.select(b.icmp_signed(">", nt, i64(MAX_THREADS)), i64(MAX_THREADS), nt, name="nt")
    # the allowed CPUs, in order, for pinning
    mask = opaque_ptr(b, b.alloca(ir.ArrayType(I8, MAX_CPUS // 8), name="mask"))
    getaff = _libc(module, "sched_getaffinity", I32, [I32, I64, PTR])
    rc = b.call(getaff, [ir.Constant(I32, 0), i64(MAX_CPUS // 8), mask])
    with b.if_then(b.icmp_signed("==", rc, ir.Constant(I32, 0))):
        cpus = _at(b, pool, POOL_CPUS)
        count = _at(b, pool, POOL_NCPUS)
        with for_range(b, 0, MAX_CPUS, name="cpu") as c:
            byte = b.load(b.gep(mask, [b.lshr(c, i64(3))], source_etype=I8), typ=I8)
            bit = b.and_(b.lshr(b.zext(byte, I64), b.and_(c, i64(7))), i64(1))
            with b.if_then(b.icmp_signed("!=", bit, i64(0))):
                n = b.load(count, typ=I64)
                b.store(b.trunc(c, I32), b.gep(cpus, [n], source_etype=I32))
                b.store(b.add(n, i64(1)), count)
    create = _libc(module, "pthread_create", I32, [PTR, PTR, PTR, PTR])
    workers = _at(b, pool, POOL_WORKERS)
    spawn_end = fn.append_basic_block("spawn.end")
    with for_range(b, 1, nt, name="spawn") as t:
        arg = _at(b, pool, b.add(i64(POOL_ARGS), b.mul(t, i64(16))))
        b.store(pool, arg)
        b.store(t, _at(b, arg, 8))
        handle = _at(b, pool, b.add(i64(POOL_HANDLES), b.mul(t, i64(8))))
        rc = b.call(create, [handle, ir.Constant(PTR, None), worker, arg])
        failed, ok = fn.append_basic_block("spawn.failed"), fn.append_basic_block("spawn.ok")
        b.cbranch(b.icmp_signed("!=", rc, ir.Constant(I32, 0)), failed, ok)
        b.position_at_end(failed)
        b.branch(spawn_end)
        b.position_at_end(ok)
        b.store(t, workers)
    b.branch(spawn_end)
    b.position_at_end(spawn_end)
    b.ret(pool)
    return fn


def _build_destroy(module: ir.Module) -> ir.Function:
    """``void sqz_pool_destroy(ptr pool)``: stop and join the workers, free the pool
    (NULL is ignored). No call may be running on the pool."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR]), "sqz_pool_destroy")
    pool = fn.args[0]
    pool.name = "pool"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with b.if_then(b.icmp_unsigned("==", pool, ir.Constant(PTR, None))):
        b.ret_void()
    b.atomic_rmw("xchg", _at(b, pool, POOL_QUIT), i64(1), "seq_cst")
    gen_ptr = _at(b, pool, POOL_GEN)
    b.atomic_rmw("add", gen_ptr, i64(1), "seq_cst")
    futex(module, b, gen_ptr, FUTEX_WAKE_PRIVATE, i64(0x7FFFFFFF))
    join = _libc(module, "pthread_join", I32, [I64, PTR])
    workers = b.load(_at(b, pool, POOL_WORKERS), typ=I64)
    with for_range(b, 1, b.add(workers, i64(1)), name="join") as t:
        h = b.load(_at(b, pool, b.add(i64(POOL_HANDLES), b.mul(t, i64(8)))), typ=I64)
        b.call(join, [h, ir.Constant(PTR, None)])
    b.call(_libc(module, "free", ir.VoidType(), [PTR]), [pool])
    b.ret_void()
    return fn


def _build_dispatch(module: ir.Module, body: ir.Function) -> ir.Function:
    """``dispatch(pool, ctx)``: run ``body`` on the caller (worker 0) and the pool's
    workers and return when all are done; alone if the pool is busy or empty."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR]), "sqz_pool_dispatch")
    fn.linkage = "internal"
    pool, ctx = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    nthreads = b.gep(ctx, [ir.Constant(I32, 0), ir.Constant(I32, CTX_NTHREADS)],
                     source_etype=CTX)
    workers = b.load(_at(b, pool, POOL_WORKERS), typ=I64, name="workers")
    was_busy = b.atomic_rmw("xchg", _at(b, pool, POOL_BUSY), i64(1), "acquire")
    alone = b.or_(b.icmp_signed("!=", was_busy, i64(0)),
                  b.icmp_signed("==", workers, i64(0)))
    solo, shared = fn.append_basic_block("solo"), fn.append_basic_block("shared")
    b.cbranch(alone, solo, shared)

    b.position_at_end(solo)
    b.store(i64(1), nthreads)
    b.call(body, [ctx, i64(0)])
    with b.if_then(b.icmp_signed("==", was_busy, i64(0))):
        b.atomic_rmw("xchg", _at(b, pool, POOL_BUSY), i64(0), "release")
    b.ret_void()

    b.position_at_end(shared)
    b.store(b.add(workers, i64(1)), nthreads)
    # where the caller runs, so workers can stay off its CPU
    getcpu = _libc(module, "sched_getcpu", I32, [])
    here = b.call(getcpu, [], name="here")
    ncpus = b.load(_at(b, pool, POOL_NCPUS), typ=I64)
    cpus = _at(b, pool, POOL_CPUS)
    pos_slot = opaque_ptr(b, b.alloca(I64, name="pos"))
    b.store(i64(0), pos_slot)
    with for_range(b, 0, ncpus, name="find") as i:
        cpu = b.load(b.gep(cpus, [i], source_etype=I32), typ=I32)
        with b.if_then(b.icmp_signed("==", cpu, here)):
            b.store(i, pos_slot)
    b.atomic_rmw("xchg", _at(b, pool, POOL_CALLER), b.load(pos_slot, typ=I64), "monotonic")
    b.atomic_rmw("xchg", _at(b, pool, POOL_DONE), i64(0), "monotonic")
    b.store(ctx, _at(b, pool, POOL_CTX))
    gen_ptr = _at(b, pool, POOL_GEN)
    b.atomic_rmw("add", gen_ptr, i64(1), "seq_cst")
    futex(module, b, gen_ptr, FUTEX_WAKE_PRIVATE, i64(0x7FFFFFFF))
    b.call(body, [ctx, i64(0)])
    # every worker has passed the last barrier; wait until each has also left ``body``
    # (it may still be touching the barrier in the workspace) before returning
    done_ptr = _at(b, pool, POOL_DONE)
    wait, pause, finished = (fn.append_basic_block(x) for x in ("done.wait", "done.pause",
                                                               "done.ok"))
    b.branch(wait)
    b.position_at_end(wait)
    done = b.load_atomic(done_ptr, "acquire", 8, typ=I64)
    b.cbranch(b.icmp_signed("==", done, workers), finished, pause)
    b.position_at_end(pause)
    _pause(b)
    b.call(_libc(module, "sched_yield", I32, []), [])
    b.branch(wait)
    b.position_at_end(finished)
    b.atomic_rmw("xchg", _at(b, pool, POOL_BUSY), i64(0), "release")
    b.ret_void()
    return fn
