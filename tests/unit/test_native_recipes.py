"""The native layout steps (``backends/llvm/recipes.py``) rebuild exactly what the compiler
stores: each is JIT-compiled here and compared byte for byte with the numpy step of
``sqzc.ops.recipes`` (PackConv, PackQConv, and the Winograd filter transform, whose float64
summation order is the specification) on random tensors, special values included, and on
the paper's 3x3 filters."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import onnx
import pytest
from llvmlite import binding as llvm
from llvmlite import ir
from onnx import numpy_helper

from sqzc.backends.llvm.link import parse_and_optimize
from sqzc.backends.llvm.recipes import emit_pack_conv, emit_pack_qconv, emit_winograd
from sqzc.backends.llvm.target import host_target
from sqzc.ops.packing import pack_conv_weight, pack_qconv_weight
from sqzc.winograd import transform_weights

_ENGINES: list[object] = []


def _jit(build: object, *args: object, argtypes: tuple[type, ...] | None = None
         ) -> ctypes._CFuncPtr:
    """JIT ``build(module, *args)`` for this host; ``argtypes`` defaults to the layout
    steps' (src, dst, then i64 sizes)."""
    target = host_target()
    module = ir.Module("recipes")
    module.triple = target.triple
    fn = build(module, *args)  # type: ignore[operator]
    fn.linkage = "external"
    mod = parse_and_optimize(str(module), target, 3)
    engine = llvm.create_mcjit_compiler(mod, target.machine(3))
    engine.finalize_object()
    _ENGINES.append(engine)
    if argtypes is None:
        argtypes = (ctypes.c_void_p, ctypes.c_void_p, *[ctypes.c_int64] * (len(fn.args) - 2))
    proto = ctypes.CFUNCTYPE(None, *argtypes)
    return proto(engine.get_function_address(fn.name))


def _weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    w = rng.standard_normal(shape).astype(np.float32)
    w[rng.random(shape) < 0.5] = 0.0
    flat = w.reshape(-1)
    flat[:6] = [-0.0, 1e-45, -1e30, 3.4e38, 2.0**-126, 7.5]
    return w


@pytest.mark.parametrize("block", (8, 16))
@pytest.mark.parametrize("shape", [(16, 3, 3, 3), (13, 7, 1, 1), (40, 5, 3, 3), (1, 1, 7, 7)])
def test_pack_conv(block: int, shape: tuple[int, ...]) -> None:
    w = _weights(np.random.default_rng(1), shape)
    want = pack_conv_weight(w, block)
    got = np.zeros_like(want)
    _jit(emit_pack_conv, block)(w.ctypes.data, got.ctypes.data, shape[0], shape[1],
                                shape[2] * shape[3])
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("block, group", [(16, 4), (8, 2), (16, 2)])
@pytest.mark.parametrize("shape", [(16, 3, 3, 3), (21, 10, 1, 1), (64, 16, 3, 3)])
def test_pack_qconv(block: int, group: int, shape: tuple[int, ...]) -> None:
    w = np.random.default_rng(2).integers(-128, 128, shape).astype(np.int8)
    want = pack_qconv_weight(w, block, group)
    got = np.zeros_like(want)
    _jit(emit_pack_qconv, block, group)(w.ctypes.data, got.ctypes.data, shape[0], shape[1],
                                        shape[2] * shape[3])
    assert got.tobytes() == want.tobytes()


def _winograd_native(w: np.ndarray, m: int, block: int) -> np.ndarray:
    packed = pack_conv_weight(w, block)  # [OCB, IC, 3, 3, b]
    ocb, ic = packed.shape[:2]
    alpha = m + 2
    got = np.zeros((alpha * alpha, ocb, ic, block), np.float32)
    _jit(emit_winograd, block, m)(packed.ctypes.data, got.ctypes.data, ocb, ic)
    return got


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("block", (8, 16))
@pytest.mark.parametrize("m", (2, 4))
def test_winograd_transform(m: int, block: int) -> None:
    rng = np.random.default_rng(3)
    for w in (_weights(rng, (block * 2 + 3, 5, 3, 3)),
              (rng.standard_normal((block, 3, 3, 3)) * 1e-30).astype(np.float32),
              np.full((block, 2, 3, 3), np.inf, np.float32)):
        want = transform_weights(w, m, block)
        got = _winograd_native(w, m, block)
        same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
        assert same.all(), np.flatnonzero(~same)[:5]


def test_winograd_on_the_papers_filters(shared_dir: Path) -> None:
    model = onnx.load(shared_dir / "models" / "deepcomp" / "squeezenet1.0-deepcompression.onnx")
    filters = [numpy_helper.to_array(t) for t in model.graph.initializer]
    filters = [w for w in filters if w.ndim == 4 and w.shape[2:] == (3, 3)]
    assert len(filters) == 8
    for w in filters[:3]:  # fire2-4 (the rest only adds time)
        for m in (2, 4):
            assert _winograd_native(w, m, 16).tobytes() == transform_weights(w, m, 16).tobytes()


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("shape, axis, per_axis", [((8, 5, 3, 3), 0, True),
                                                   ((4, 6, 3, 3), 1, True),
                                                   ((7, 3, 1, 1), 0, False)])
def test_dequantize(dtype: str, shape: tuple[int, ...], axis: int, per_axis: bool) -> None:
    """``sqz_dequantize`` against ``Dequantize.apply`` (``onnx_ops.dequantize_linear``),
    on every code of the type, scales of awkward magnitudes and nonzero zero points."""
    from sqzc.backends.llvm.recipes import emit_dequantize
    from sqzc.backends.llvm.weights_init import _dq_args
    from sqzc.ops.recipes import Dequantize

    rng = np.random.default_rng(4)
    info = np.iinfo(dtype)
    codes = rng.integers(info.min, info.max + 1, shape).astype(dtype)
    n = shape[axis] if per_axis else 1
    step = Dequantize(tuple(float(v) for v in (rng.uniform(1e-3, 3.0, n) * 0.7)
                            .astype(np.float32)),
                      tuple(int(v) for v in rng.integers(info.min, info.max + 1, n)), axis)
    want = step.apply(codes)
    scales, zps, outer, alen, inner, signed, _ = _dq_args(step, codes)
    assert signed == (dtype == "int8")
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    run = _jit(emit_dequantize, signed, argtypes=(ptr, ptr, i64, i64, i64, ptr, ptr))
    s = np.asarray(scales, np.float32)
    z = np.asarray(zps, np.int32)
    got = np.zeros(shape, np.float32)
    run(codes.ctypes.data, got.ctypes.data, outer, alen, inner, s.ctypes.data, z.ctypes.data)
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("shape, axis, block", [((8, 40, 3, 3), 1, 16), ((64, 32), 0, 16),
                                                ((5, 7), 1, 3)])
def test_dequantize_blocked(dtype: str, shape: tuple[int, ...], axis: int, block: int) -> None:
    """``sqz_dequantize_blocked`` against ``Dequantize.apply`` with ``block``: ragged last
    blocks, zero points of the codes' type (uint8 above 127 included)."""
    from sqzc.backends.llvm.recipes import emit_dequantize_blocked
    from sqzc.backends.llvm.weights_init import _dq_args
    from sqzc.ops.recipes import Dequantize

    rng = np.random.default_rng(5)
    info = np.iinfo(dtype)
    codes = rng.integers(info.min, info.max + 1, shape).astype(dtype)
    pshape = list(shape)
    pshape[axis] = -(-shape[axis] // block)
    n = int(np.prod(pshape))
    step = Dequantize(tuple(float(v) for v in rng.uniform(1e-3, 3.0, n).astype(np.float32)),
                      tuple(int(v) for v in rng.integers(info.min, info.max + 1, n)), axis,
                      block)
    want = step.apply(codes)
    scales, zps, outer, alen, inner, signed, blk = _dq_args(step, codes)
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    run = _jit(emit_dequantize_blocked, signed, argtypes=(ptr, ptr, i64, i64, i64, i64, ptr, ptr))
    s = np.asarray(scales, np.float32)
    z = np.asarray(zps).astype(dtype)
    got = np.zeros(shape, np.float32)
    run(codes.ctypes.data, got.ctypes.data, outer, alen, inner, blk, s.ctypes.data,
        z.ctypes.data)
    assert got.tobytes() == want.tobytes()
