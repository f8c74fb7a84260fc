"""The library's own CPU check: ``sqz_run`` returns ``SQZ_ERR_CPU`` instead of dying of
SIGILL on a CPU without the instruction-set extensions the library was compiled for.

The Python runtime checks the metadata's feature list before it calls anything
(``sqzc.runtime.cpu``); this is the same guarantee for C callers. An internal function,
``sqz_cpu_ok``, runs CPUID for the leaves the target's features need (their bits come from
the target description, ``Target.cpuid_requirements``), checks that the leaves exist,
checks OSXSAVE and then XCR0 through XGETBV (the OS must save the YMM/ZMM/opmask state,
or AVX and AVX-512 instructions fault even on a CPU that has them), and caches the verdict
in a global (CPUID can cost microseconds under a hypervisor). ``sqz_run`` and
``sqz_run_pool`` call it first, before any code that could use a vector instruction. The
check itself is integer code; it is ``noinline`` so that nothing of the caller is
scheduled above it.

On Arm64 there is no CPUID for user code; the kernel reports the CPU's features in the
``AT_HWCAP`` word of the auxiliary vector, which ``getauxval`` returns
(``Target.hwcap_requirements``: NEON, the dot-product extension, fp16 arithmetic).
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import I32, I64
from sqzc.backends.llvm.target import Target

I1 = ir.IntType(1)
_REGS = ir.LiteralStructType([I32, I32, I32, I32])
_OSXSAVE = (1, 0, 2, 27)  # CPUID.1:ECX bit 27: XGETBV is enabled by the OS
_EXTENDED = 0x80000000
AT_HWCAP = 16  # the auxiliary-vector entry of the CPU's feature bits (Linux)


def _cpuid(b: ir.IRBuilder, leaf: int, sub: int) -> list[ir.Value]:
    asm = ir.InlineAsm(ir.FunctionType(_REGS, [I32, I32]), "cpuid",
                       "={ax},={bx},={cx},={dx},{ax},{cx}", side_effect=True)
    regs = b.call(asm, [ir.Constant(I32, leaf), ir.Constant(I32, sub)])
    return [b.extract_value(regs, i) for i in range(4)]


def _has(b: ir.IRBuilder, value: ir.Value, mask: int) -> ir.Value:
    m = ir.Constant(I32, mask)
    return b.icmp_unsigned("==", b.and_(value, m), m)


def emit_cpu_check(module: ir.Module, target: Target) -> ir.Function:
    """``i1 sqz_cpu_ok()``: true when this CPU and OS run every checked feature of
    ``target``; cached in ``sqz_cpu_state`` (0 unknown, 1 yes, 2 no)."""
    fn = ir.Function(module, ir.FunctionType(I1, []), "sqz_cpu_ok")
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    masks, xcr0 = target.cpuid_requirements
    hwcap = target.hwcap_requirements
    if hwcap:
        getauxval = ir.Function(module, ir.FunctionType(I64, [I64]), "getauxval")
        words = b.call(getauxval, [ir.Constant(I64, AT_HWCAP)])
        mask = ir.Constant(I64, hwcap)
        b.ret(b.icmp_unsigned("==", b.and_(words, mask), mask))
        return fn
    if not masks and not xcr0:
        b.ret(ir.Constant(I1, 1))
        return fn
    state = ir.GlobalVariable(module, I32, "sqz_cpu_state")
    state.linkage = "internal"
    state.initializer = ir.Constant(I32, 0)
    known = b.load_atomic(state, "monotonic", 4)
    check, done = fn.append_basic_block("check"), fn.append_basic_block("cached")
    b.cbranch(b.icmp_unsigned("==", known, ir.Constant(I32, 0)), check, done)
    b.position_at_end(done)
    b.ret(b.icmp_unsigned("==", known, ir.Constant(I32, 1)))

    b.position_at_end(check)
    if xcr0:
        leaf, sub, reg, bit = _OSXSAVE
        masks = dict(masks)
        masks[(leaf, sub, reg)] = masks.get((leaf, sub, reg), 0) | (1 << bit)
    max_basic = _cpuid(b, 0, 0)[0]
    max_ext = _cpuid(b, _EXTENDED, 0)[0] if any(k[0] >= _EXTENDED for k in masks) else None
    max_sub7 = _cpuid(b, 7, 0)[0] if any(k[:2] == (7, 1) for k in masks) else None
    ok: ir.Value = ir.Constant(I1, 1)
    leaves: dict[tuple[int, int], list[ir.Value]] = {}
    for (leaf, sub, reg), mask in sorted(masks.items()):
        top = max_ext if leaf >= _EXTENDED else max_basic
        exists = b.icmp_unsigned(">=", top, ir.Constant(I32, leaf))
        if sub:
            exists = b.and_(exists, b.icmp_unsigned(">=", max_sub7, ir.Constant(I32, sub)))
        if (leaf, sub) not in leaves:  # a leaf that does not exist returns junk: masked
            leaves[(leaf, sub)] = _cpuid(b, leaf, sub)
        value = leaves[(leaf, sub)][reg]
        ok = b.and_(ok, b.and_(exists, _has(b, value, mask)))
    if xcr0:  # XGETBV faults unless OSXSAVE is set, so only run it when it is
        xgetbv_block, after = fn.append_basic_block("xgetbv"), fn.append_basic_block("verdict")
        before = b.block
        b.cbranch(ok, xgetbv_block, after)
        b.position_at_end(xgetbv_block)
        asm = ir.InlineAsm(ir.FunctionType(ir.LiteralStructType([I32, I32]), [I32]), "xgetbv",
                           "={ax},={dx},{cx}", side_effect=True)
        low = b.extract_value(b.call(asm, [ir.Constant(I32, 0)]), 0)
        os_ok = _has(b, low, xcr0)
        b.branch(after)
        b.position_at_end(after)
        verdict = b.phi(I1)
        verdict.add_incoming(ir.Constant(I1, 0), before)
        verdict.add_incoming(os_ok, xgetbv_block)
        ok = verdict
    b.store_atomic(b.select(ok, ir.Constant(I32, 1), ir.Constant(I32, 2)), state, "monotonic", 4)
    b.ret(ok)
    return fn
