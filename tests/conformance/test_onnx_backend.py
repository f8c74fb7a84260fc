"""ONNX backend conformance: the official ONNX node tests, compiled and run by sqzc.

``onnx.backend.test.BackendTest`` drives :class:`sqzc.tools.onnx_backend.SqzcBackend`: every test
builds a one-node model, which the backend saves, compiles with sqzc into a temporary
shared library, loads and runs on the test's inputs; outputs are compared with ONNX's
reference results (shape, dtype, then values at the test's rtol/atol).

Selection (explicit, so the suite does not silently grow or shrink):

* ``OPS`` maps each op sqzc converts to the regex of its node tests. Only ``*_cpu``
  tests are generated (the backend has no other device) and ``*_expanded`` tests are
  left out: they test the op's *function body*, built from other ops (Exp, Where,
  CastLike, ...), not the op itself.
* ``EXCLUDE`` lists, grouped by reason, the tests that fail because of a deliberate
  scope decision of sqzc (dtypes, ranks, training mode, ...). Excluded tests are still
  collected and reported as skipped with their pattern, and counted per op in the
  summary that ``conftest.py`` prints at the end of the session.
* ``INT8_IN_PROGRESS`` holds quantized-op tests that fail while int8 support is being
  added. They are marked expected failures (``BackendTest.xfail``) rather than skipped,
  so a test that starts passing fails the run ("Unexpected success"): then delete its
  entry.
* ``KNOWN_BUGS`` is for failures that are real sqzc bugs (with the root cause in the
  comment). Anything that fails and is on none of these lists is a regression.

Constant-parameter variants (``OnnxBackendNodeConstParamsTest``): node tests feed
every operand as a graph input, but sqzc is an ahead-of-time compiler and requires
shapes, axes, clip bounds, BatchNormalization statistics and quantization parameters
to be compile-time constants. The tests excluded for *only* that reason are run a
second time with those operands turned into initializers (same data, same reference
outputs), so Reshape, Squeeze, Unsqueeze, Clip, BatchNormalization, ReduceMean/Max
with axes, QuantizeLinear/DequantizeLinear and QLinearConv are still checked against
the ONNX references.

The compiler's optimization level is ``$SQZC_BACKEND_OPT_LEVEL`` (default 3, the
level users get).
"""

from __future__ import annotations

import re
import unittest
import warnings
from collections.abc import Callable, Iterable

import numpy as np
import onnx
import onnx.backend.test
from onnx import numpy_helper
from onnx.backend.test.case.test_case import TestCase as OnnxTestCase
from onnx.backend.test.loader import load_model_tests
from onnx.backend.test.runner import Runner

from sqzc.tools.onnx_backend import SqzcBackend

# ---------------------------------------------------------------------- selection

#: op -> regex (``re.search`` on the test name) of its node tests, anchored with ``^``.
#: Checked in order; the first match names the op in the summary.
OPS: dict[str, str] = {
    "Conv": r"^test_(basic_conv|conv_with)_",
    "MaxPool": r"^test_maxpool_",
    "AveragePool": r"^test_averagepool_",
    "GlobalAveragePool": r"^test_globalaveragepool_",
    "GlobalMaxPool": r"^test_globalmaxpool_",
    "Relu": r"^test_relu_",
    "Clip": r"^test_clip_",
    "LeakyRelu": r"^test_leakyrelu_",
    "Sigmoid": r"^test_sigmoid_",
    "HardSigmoid": r"^test_hardsigmoid_",
    "HardSwish": r"^test_hardswish_",
    "Softmax": r"^test_softmax_",
    "LogSoftmax": r"^test_logsoftmax_",
    "Concat": r"^test_concat_",
    "Flatten": r"^test_flatten_",
    "Reshape": r"^test_reshape_",
    "Squeeze": r"^test_squeeze_",
    "Unsqueeze": r"^test_unsqueeze_",
    "Transpose": r"^test_transpose_",
    "Add": r"^test_add_",
    "Sub": r"^test_sub_",
    "Mul": r"^test_mul_",
    "Div": r"^test_div_",
    "BatchNormalization": r"^test_batchnorm_",
    "Gemm": r"^test_gemm_",
    "MatMul": r"^test_matmul_",  # not test_matmulinteger
    "Dropout": r"^test_(training_)?dropout_",
    "Identity": r"^test_identity_",
    "Cast": r"^test_cast_",  # not test_castlike (CastLike is not supported)
    "Shape": r"^test_shape_",
    "Gather": r"^test_gather_(\d|2d_|negative_)",  # not GatherElements / GatherND
    "Constant": r"^test_constant_cpu",  # not test_constant_pad, test_constantofshape
    "ReduceMean": r"^test_reduce_mean_",
    "ReduceMax": r"^test_reduce_max_",
    "QuantizeLinear": r"^test_quantizelinear_",
    "DequantizeLinear": r"^test_dequantizelinear_",
    "QLinearConv": r"^test_qlinearconv_",
    "QLinearMatMul": r"^test_qlinearmatmul_",
    "ConvInteger": r"^test_convinteger_",
    "MatMulInteger": r"^test_matmulinteger_",
    "Slice": r"^test_slice",
    "Split": r"^test_split_(?!to_sequence)",  # not SplitToSequence
}

#: The exclusion reason whose tests are rerun by ``OnnxBackendNodeConstParamsTest``.
NONCONST = "operands that must be compile-time constants (rerun with initializers)"

#: Deliberate scope decisions: reason -> regexes of the node tests it excludes.
EXCLUDE: dict[str, list[str]] = {
    # sqzc computes float ops in float32 (float16 is widened at the boundary) and only
    # the quantized ops take int8/uint8; double, bfloat16, float8/float4, 2/4/16/32/64-bit
    # integers and bool never reach a kernel.
    "dtype outside float32/float16 (int8/uint8 only for quantized ops)": [
        r"^test_(add|sub|mul|div)_u?int\d+",  # int8/16/32/64, uint8..64, int32_trunc
        r"^test_cast_.*(DOUBLE|BFLOAT16|FLOAT8|FLOAT4|INT4|INT2|e8m0)",  # only f32<->f16
        r"^test_clip_default_int8_",
        r"^test_reduce_max_bool_inputs",
        r"^test_(de)?quantizelinear_(e4m3fn|e5m2|float4e2m1|u?int(2|16))",
        r"^test_quantizelinear_blocked_symmetric",  # output_dtype int16
    ],
    # sqzc compiles 2-D NCHW convolution and pooling only.
    "1-D / 3-D spatial input (2-D NCHW only)": [
        r"^test_(max|average)pool_(1d|3d)_",
    ],
    # Inference compiler: training-mode BatchNormalization / Dropout are rejected.
    "training mode": [
        r"^test_batchnorm_.*_training_mode",
        r"^test_training_dropout",
    ],
    # Secondary outputs that inference graphs do not use.
    "optional outputs (MaxPool Indices, Dropout mask)": [
        r"^test_maxpool_with_argmax_",
        r"^test_dropout_default_mask",
    ],
    # Shape/Gather are FOLD_ONLY: evaluated at compile time on constants. Their node
    # tests return int64 (Shape) or gather from runtime data with int64 indices.
    "compile-time-only ops (Shape, Gather) on runtime tensors / int64 boundary": [
        r"^test_shape_",
        r"^test_gather_",
    ],
    # Optional / sequence types: compiled models take and return dense tensors only.
    "non-tensor inputs (optional, sequence)": [
        r"^test_identity_(opt|sequence)_",
    ],
    # Empty tensors (a 0 dim) are not compiled; the importer treats dim_value 0 like an
    # unknown dim (the convention of several exporters).
    "zero-sized tensors": [
        r"^test_reduce_max_empty_set",
        r"^test_slice_start_out_of_bounds",  # an empty window
        r"^test_split_zero_size_splits",
        r"^test_reshape_allowzero_reordered",
    ],
    # AOT compilation needs these operands as compile-time constants; the node tests
    # feed them as graph inputs. Rerun as OnnxBackendNodeConstParamsTest (see above).
    NONCONST: [
        r"^test_reshape_(?!allowzero)",
        r"^test_(un)?squeeze_",
        r"^test_reduce_mean_",
        r"^test_reduce_max_(do_not_keepdims|keepdims|negative_axes)_",
        r"^test_clip_(?!default_int8_|default_inbounds)",  # min/max inputs
        r"^test_batchnorm_(example|epsilon)_cpu",  # scale/B/mean/var inputs
        r"^test_(de)?quantizelinear_(axis_|u?int4_|blocked_)?cpu",  # scale/zero-point inputs
        r"^test_quantizelinear_blocked_asymmetric",
        r"^test_qlinearconv_",
        r"^test_qlinearmatmul_",
        r"^test_convinteger_",
        r"^test_matmulinteger_",
        r"^test_slice(_neg|_default_axes|_default_steps|_neg_steps|_negative_axes|"
        r"_end_out_of_bounds)?_cpu",  # starts/ends/axes/steps inputs
        r"^test_split_variable_parts_",  # the split input
    ],
}

#: Quantized-op tests expected to fail while an op is being added (expected failures, not
#: skips: one that starts passing is reported as "Unexpected success"). Empty now.
INT8_IN_PROGRESS: dict[str, list[str]] = {}

#: Real sqzc bugs, excluded so the suite stays green: reason (root cause) -> regexes.
#: Empty: every failure of the selected tests is a scope decision listed above.
KNOWN_BUGS: dict[str, list[str]] = {}

#: Inputs (by position) that ``OnnxBackendNodeConstParamsTest`` turns into initializers;
#: ``None`` means every input but the first.
PARAM_INPUTS: dict[str, set[int] | None] = {
    "Reshape": {1}, "Squeeze": {1}, "Unsqueeze": {1}, "ReduceMean": {1}, "ReduceMax": {1},
    "Clip": {1, 2}, "BatchNormalization": {1, 2, 3, 4}, "QuantizeLinear": {1, 2},
    "DequantizeLinear": {1, 2}, "QLinearConv": None, "QLinearMatMul": None,
    "ConvInteger": None, "MatMulInteger": None, "Slice": None, "Split": {1},
}

_OP_RES = [(op, re.compile(p)) for op, p in OPS.items()]
#: Include regexes: the op's tests, CPU only, without the ``_expanded`` function bodies.
_INCLUDE = [re.compile(r"^(?!.*_expanded)(?=.*_cpu$)" + p.removeprefix("^"))
            for p in OPS.values()]
_EXCLUDE_GROUPS = {**EXCLUDE, **INT8_IN_PROGRESS,
                   **{f"KNOWN BUG: {k}": v for k, v in KNOWN_BUGS.items()}}


def op_of(test_name: str) -> str:
    """The op a (node or constant-parameter) test belongs to, for the summary."""
    for op, rx in _OP_RES:
        if rx.search(test_name):
            return op
    return "?"


def exclusion_reason(test_name: str) -> str | None:
    """The ``EXCLUDE``/``INT8_IN_PROGRESS``/``KNOWN_BUGS`` group that excludes a test."""
    for reason, patterns in _EXCLUDE_GROUPS.items():
        if any(re.search(p, test_name) for p in patterns):
            return reason
    return None


def _selected(name: str) -> bool:
    return any(rx.search(name) for rx in _INCLUDE)


# ---------------------------------------------------------------------- node tests

with warnings.catch_warnings():  # onnx's case generators overflow/divide by zero on purpose
    warnings.simplefilter("ignore", RuntimeWarning)
    backend_test = onnx.backend.test.BackendTest(SqzcBackend, __name__)
for _rx in _INCLUDE:
    backend_test.include(_rx.pattern)
for _reason, _patterns in _EXCLUDE_GROUPS.items():
    for _p in _patterns:
        if _reason in INT8_IN_PROGRESS:
            backend_test.xfail(_p)
        else:
            backend_test.exclude(_p)

#: Only the node tests, and of those only the selected CPU tests: the thousands of
#: "no matched include pattern" skips BackendTest would add are noise, not exclusions.
OnnxBackendNodeModelTest: type[unittest.TestCase] = \
    backend_test.test_cases["OnnxBackendNodeModelTest"]
for _name in list(vars(OnnxBackendNodeModelTest)):
    if _name.startswith("test_") and not _selected(_name):
        delattr(OnnxBackendNodeModelTest, _name)


# ---------------------------------------------------------------------- constant params


def _array(value: object) -> np.ndarray:
    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) \
        else np.asarray(value)


def with_constant_params(case: OnnxTestCase, positions: set[int] | None,
                         inputs: list[np.ndarray]) -> tuple[onnx.ModelProto, list[str]]:
    """``case.model`` with the node's parameter inputs (``positions``) made initializers
    holding ``inputs``' values; returns the model and the names still fed at run time."""
    assert case.model is not None
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    (node,) = model.graph.node
    graph_inputs = [vi.name for vi in model.graph.input]
    values = dict(zip(graph_inputs, inputs))
    params = {name for i, name in enumerate(node.input)
              if name in values and (i >= 1 if positions is None else i in positions)}
    if not params:
        raise AssertionError(f"{case.name}: no parameter input to make constant")
    kept = [vi for vi in model.graph.input if vi.name not in params]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    model.graph.initializer.extend(numpy_helper.from_array(values[n], n) for n in sorted(params))
    return model, [vi.name for vi in kept]


def _const_params_test(case: OnnxTestCase) -> Callable[[unittest.TestCase], None]:
    def test(self: unittest.TestCase) -> None:
        assert case.model is not None and case.data_sets is not None
        positions = PARAM_INPUTS[case.model.graph.node[0].op_type]
        for inputs, refs in case.data_sets:
            arrays = [_array(x) for x in inputs]
            model, fed = with_constant_params(case, positions, arrays)
            by_name = dict(zip([vi.name for vi in case.model.graph.input], arrays))
            outputs = SqzcBackend.prepare(model, "CPU").run([by_name[n] for n in fed])
            Runner.assert_similar_outputs([_array(r) for r in refs], list(outputs),
                                          rtol=case.rtol, atol=case.atol)

    test.__doc__ = f"{case.name} with its parameter inputs as initializers"
    return test


def _const_param_cases(cases: Iterable[OnnxTestCase]) -> dict[str, Callable[..., None]]:
    tests = {}
    for case in cases:
        cpu_name = f"{case.name}_cpu"
        if not _selected(cpu_name) or exclusion_reason(cpu_name) != NONCONST:
            continue
        tests[f"{case.name}_constparams"] = _const_params_test(case)
    return tests


#: Node tests excluded only for non-constant operands, rerun with those as initializers.
OnnxBackendNodeConstParamsTest: type[unittest.TestCase] = type(
    "OnnxBackendNodeConstParamsTest", (unittest.TestCase,),
    _const_param_cases(load_model_tests(kind="node")))
