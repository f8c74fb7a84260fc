"""Pinning the floating-point environment around load-time weight arithmetic.

``sqz_init`` rebuilds Winograd-transformed weights with float arithmetic that must give
the compiler's bits whatever the caller set (a round-toward-zero mode, flush-to-zero):
it saves the control register, sets the default (round to nearest, no flushing, no
default NaN), and restores the caller's value afterwards. Which register and which
default are target facts (``FP_CONTROL`` in the architecture description): x86's MXCSR
(read and written through memory), Arm64's FPCR (through a register).
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import I32, I64, PTR, declare_intrinsic
from sqzc.backends.llvm.target import module_arch


def pin_default_fp_environment(module: ir.Module, b: ir.IRBuilder
                               ) -> Callable[[ir.IRBuilder], None]:
    """Emit "save the control register, load the default" at ``b``; return a function
    that emits the restore (call it on every path out)."""
    register, default = module_arch(module).FP_CONTROL
    if register == "mxcsr":
        saved = b.alloca(I32, name="mxcsr")
        pinned = b.alloca(I32, name="mxcsr.pinned")
        store = declare_intrinsic(module, "llvm.x86.sse.stmxcsr", ir.VoidType(), [PTR])
        load = declare_intrinsic(module, "llvm.x86.sse.ldmxcsr", ir.VoidType(), [PTR])
        b.call(store, [saved])
        b.store(ir.Constant(I32, default), pinned)
        b.call(load, [pinned])
        return lambda rb: rb.call(load, [saved]) and None
    if register == "fpcr":
        get = declare_intrinsic(module, "llvm.aarch64.get.fpcr", I64, [])
        put = declare_intrinsic(module, "llvm.aarch64.set.fpcr", ir.VoidType(), [I64])
        saved_value = b.call(get, [], name="fpcr")
        b.call(put, [ir.Constant(I64, default)])
        return lambda rb: rb.call(put, [saved_value]) and None
    raise AssertionError(f"no floating-point control register '{register}'")
