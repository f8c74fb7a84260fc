"""Symbolic shapes at compile time and bad calls at run time, on a whole SqueezeNet.

* A symbolic dim other than the leading batch one cannot be compiled as is: sqzc raises a
  ``SqzcError`` that tells the user to fix it with ``--input-shape``; given
  ``CompileOptions(input_shapes=...)`` the same model compiles and matches onnxruntime.
* Calling a library with a wrong shape or dtype raises ``CallError`` naming the tensor,
  before any native code runs, and the library keeps working afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from model_libs import Lib
from sqz_testing import assert_matches_ort, compile_and_load, model_path, random_inputs

import sqzc
from sqzc.driver import CompileOptions
from sqzc.errors import CallError
from sqzc.tools.zoo import INPUT_NAME, OUTPUT_NAME, build

# -O0: these tests are about shapes and errors, not code quality, and -O0 compiles fast.
LEVEL = 0


def with_dims(model: onnx.ModelProto, in_dims: Sequence[int | str],
              out_dims: Sequence[int | str]) -> onnx.ModelProto:
    """``model`` with its (single) input and output declared with these dims."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi, dims in ((m.graph.input[0], in_dims), (m.graph.output[0], out_dims)):
        shape = vi.type.tensor_type.shape
        shape.ClearField("dim")
        for d in dims:
            dim = shape.dim.add()
            if isinstance(d, str):
                dim.dim_param = d
            else:
                dim.dim_value = d
    return m


SYMBOLIC = {
    "spatial": (["N", 3, "H", "W"], ["N", 1000, 1, 1], "dim 2"),
    "channels": ([1, "C", 224, 224], [1, 1000, 1, 1], "dim 1"),
}


@pytest.fixture(scope="module")
def base_model() -> onnx.ModelProto:
    return build("squeezenet1.1", opset=13)


@pytest.mark.parametrize("kind", sorted(SYMBOLIC))
def test_symbolic_non_batch_dim_needs_input_shape(base_model: onnx.ModelProto, kind: str,
                                                  tmp_path: Path) -> None:
    in_dims, out_dims, first_bad = SYMBOLIC[kind]
    path = model_path(with_dims(base_model, in_dims, out_dims), tmp_path)
    with pytest.raises(sqzc.SqzcError) as info:
        sqzc.compile(path, tmp_path / "m.so", CompileOptions(opt_level=LEVEL))
    msg = str(info.value)
    assert "--input-shape" in msg
    assert f"'{INPUT_NAME}'" in msg and first_bad in msg, msg
    assert not (tmp_path / "m.so").exists()


@pytest.mark.parametrize("shape", [(1, 3, 224, 224), (2, 3, 224, 224)],
                         ids=["batch1", "batch2"])
def test_symbolic_dims_compile_with_input_shapes(base_model: onnx.ModelProto,
                                                 shape: tuple[int, ...]) -> None:
    """``input_shapes`` fixes every dim (batch included: the library is then static)."""
    model = with_dims(base_model, *SYMBOLIC["spatial"][:2])
    m = compile_and_load(model, opt_level=LEVEL, input_shapes={INPUT_NAME: shape})
    assert not m.dynamic_batch
    assert [s.shape for s in m.input_specs] == [shape]
    assert [s.shape for s in m.output_specs] == [(shape[0], 1000, 1, 1)]
    got = assert_matches_ort(model, opt_level=LEVEL, batch=shape[0], seed=3,
                             input_shapes={INPUT_NAME: shape})
    assert got[OUTPUT_NAME].shape == (shape[0], 1000, 1, 1)


def test_input_shape_conflicting_with_model_is_rejected(base_model: onnx.ModelProto,
                                                        tmp_path: Path) -> None:
    """A shape that contradicts a static dim of the model is a usage mistake, not a recast."""
    path = model_path(with_dims(base_model, *SYMBOLIC["spatial"][:2]), tmp_path)
    with pytest.raises(sqzc.SqzcError, match="--input-shape") as info:
        sqzc.compile(path, tmp_path / "m.so", CompileOptions(
            opt_level=LEVEL, input_shapes={INPUT_NAME: (1, 4, 224, 224)}))
    assert INPUT_NAME in str(info.value)


# ------------------------------------------------------------------ bad calls


@pytest.fixture(scope="module", params=[Lib("squeezenet1.1", opt_level=LEVEL, batch=b)
                                        for b in (1, None)], ids=["static", "dynamic"])
def lib(request: pytest.FixtureRequest) -> sqzc.CompiledModel:
    return request.param.load()


BAD_SHAPES = {
    "rank3": (3, 224, 224),
    "rank5": (1, 1, 3, 224, 224),
    "channels": (1, 4, 224, 224),
    "height": (1, 3, 225, 224),
    "width": (1, 3, 224, 112),
    "nchw-as-nhwc": (1, 224, 224, 3),
}


@pytest.mark.parametrize("shape", BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_wrong_shape_raises_call_error(lib: sqzc.CompiledModel, shape: tuple[int, ...]) -> None:
    x = np.zeros(shape, np.float32)
    with pytest.raises(CallError, match=f"'{INPUT_NAME}'.*shape"):
        lib.run({INPUT_NAME: x})
    with pytest.raises(CallError, match=f"'{INPUT_NAME}'"):
        lib(x)


def test_batch_on_static_library_raises_call_error(lib: sqzc.CompiledModel) -> None:
    x = np.zeros((2, 3, 224, 224), np.float32)
    if lib.dynamic_batch:
        assert lib(x).shape == (2, 1000, 1, 1)
    else:
        with pytest.raises(CallError, match=rf"'{INPUT_NAME}'.*\[1,3,224,224\]"):
            lib(x)


def test_empty_batch_raises_call_error(lib: sqzc.CompiledModel) -> None:
    with pytest.raises(CallError, match=f"'{INPUT_NAME}'"):
        lib(np.zeros((0, 3, 224, 224), np.float32))


@pytest.mark.parametrize("dtype", ["float64", "float16", "int32", "uint8"])
def test_wrong_dtype_raises_call_error(lib: sqzc.CompiledModel, dtype: str) -> None:
    x = np.zeros((1, 3, 224, 224), dtype)
    with pytest.raises(CallError, match=f"'{INPUT_NAME}'.*float32.*{dtype}"):
        lib(x)


def test_wrong_names_raise_call_error(lib: sqzc.CompiledModel) -> None:
    x = np.zeros((1, 3, 224, 224), np.float32)
    with pytest.raises(CallError, match="'data'.*data_0"):
        lib.run({"data": x})
    with pytest.raises(CallError, match=f"missing.*'{INPUT_NAME}'"):
        lib.run({})
    with pytest.raises(CallError, match=f"2 positional.*'{INPUT_NAME}'"):
        lib(x, x)


def test_library_still_correct_after_bad_calls(lib: sqzc.CompiledModel) -> None:
    """Rejected calls touch no native state: a good call afterwards is still right."""
    feeds = random_inputs(lib, seed=7, batch=2 if lib.dynamic_batch else 1)
    before = lib.run(feeds)[OUTPUT_NAME]
    for bad in (np.zeros((1, 3, 224, 225), np.float32), np.zeros((1, 3, 224, 224), np.float64)):
        with pytest.raises(CallError):
            lib(bad)
    after = lib.run(feeds)[OUTPUT_NAME]
    np.testing.assert_array_equal(before, after)
    assert np.isfinite(after).all()
    np.testing.assert_allclose(after.astype(np.float64).sum(axis=1), 1.0, rtol=0, atol=1e-5)
