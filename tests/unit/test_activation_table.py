"""The activation table (``sqzc.ops.activations``): one builder per activation serves the
numpy reference and every LLVM width. Each entry's builder is JIT-compiled here for a
scalar and for 4-, 8- and 16-lane vectors and run on a grid of special and ordinary
float32 values; the results must equal the numpy reference bit for bit (NaN passing
through, signed zeros kept). The onnxruntime comparisons are in
``tests/ops/test_activations.py``."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from llvmlite import binding as llvm
from llvmlite import ir

from sqzc.backends.llvm.cg import F32
from sqzc.backends.llvm.emit.common.vec import vtype
from sqzc.backends.llvm.emit.common.vecops import LLVMVecOps, apply_activation
from sqzc.backends.llvm.link import parse_and_optimize
from sqzc.backends.llvm.target import host_target
from sqzc.ops import ACTIVATIONS, NO_ACTIVATION, Activation, make_activation

F32NP = np.float32

#: every entry with its default parameters, and the parametrized ones with others too
CASES = [make_activation(k) for k in ACTIVATIONS] + [
    make_activation("clip", lo=0.0, hi=6.0), make_activation("clip", lo=-1.5, hi=0.25),
    make_activation("leaky", alpha=0.3)]
if "hard_sigmoid" in ACTIVATIONS:
    CASES.append(make_activation("hard_sigmoid", alpha=0.3, beta=0.4))


def _grid() -> np.ndarray:
    special = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1.2e-38, 1e30,
               -1e30, 3.4e38, -3.4e38, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 3.0, -3.0, 6.0, 18.0,
               -18.0, 17.9, -17.9, 20.0, -20.0]
    rng = np.random.default_rng(7)
    values = np.concatenate([np.asarray(special, F32NP),
                             rng.uniform(-25, 25, 4000).astype(F32NP),
                             rng.standard_normal(1000).astype(F32NP)])
    return values[: len(values) // 16 * 16]


def _jit(act: Activation, lanes: int) -> ctypes._CFuncPtr:
    """``void f(float *x, float *y, i64 n)``: y = act(x), ``lanes`` at a time."""
    target = host_target()
    module = ir.Module("act")
    module.triple = target.triple
    i64 = ir.IntType(64)
    ptr = ir.PointerType(F32)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr, ptr, i64]), "f")
    x, y, n = fn.args
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    b.branch(loop)
    b.position_at_end(loop)
    i = b.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    t = F32 if lanes == 1 else vtype(lanes)
    src = b.bitcast(b.gep(x, [i]), t.as_pointer())
    dst = b.bitcast(b.gep(y, [i]), t.as_pointer())
    value = apply_activation(LLVMVecOps(b, module, target, lanes), b.load(src, align=4), act)
    b.store(value, dst, align=4)
    nxt = b.add(i, ir.Constant(i64, lanes))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()
    mod = parse_and_optimize(str(module), target, 2)
    engine = llvm.create_mcjit_compiler(mod, target.machine(2))
    engine.finalize_object()
    _jit.keep.append(engine)  # type: ignore[attr-defined]
    return ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(
        engine.get_function_address("f"))


_jit.keep = []  # type: ignore[attr-defined]


#: widths wider than the host's vector unit are legal LLVM (split into several registers)
@pytest.mark.parametrize("lanes", (1, 4, 8, 16))
@pytest.mark.parametrize("act", CASES, ids=str)
def test_llvm_builder_equals_numpy_reference(act: Activation, lanes: int) -> None:
    x = _grid()
    want = act.apply(x)
    got = np.empty_like(x)
    _jit(act, lanes)(x.ctypes.data, got.ctypes.data, x.size)
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    bad = np.flatnonzero(~same)
    assert bad.size == 0, [(float(x[i]), float(got[i]), float(want[i])) for i in bad[:5]]


@pytest.mark.parametrize("act", CASES, ids=str)
def test_nan_passes_through(act: Activation) -> None:
    assert np.isnan(act.apply(np.asarray([np.nan], F32NP)))[0]


def test_entries_and_parameters() -> None:
    assert not NO_ACTIVATION and str(NO_ACTIVATION) == "none"
    assert make_activation("clip") == Activation("clip", (float("-inf"), float("inf")))
    assert str(make_activation("clip", lo=0.0, hi=6.0)) == "relu6"
    assert make_activation("leaky").param("alpha") == 0.01
    assert make_activation("leaky", alpha=0.3).named_params() == [("alpha", 0.3)]
    with pytest.raises(ValueError, match="no parameter 'beta'"):
        make_activation("leaky", beta=1.0)
    for name, d in ACTIVATIONS.items():
        assert d.name == name and d.op_name and d.onnx
