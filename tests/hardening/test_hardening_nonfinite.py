"""NaN and infinity inputs propagate exactly as onnxruntime propagates them (issue 6).

Single-op models (Conv, Relu, MaxPool, Softmax, GlobalAveragePool, GlobalMaxPool) and a fused
Conv+Relu+MaxPool chain, at -O0 (reference kernels) and -O3 (fused, channel-blocked
kernels), get inputs with NaN, +inf and -inf at fixed positions. The comparison
(``sqz_testing.assert_close``) requires identical NaN positions, identical infinite values
and the usual tolerance elsewhere.

The comparison is ``hardening_support.compare``, not ``sqz_testing.assert_close``: the
latter compares ``got[~isfinite(want)] == want[~isfinite(want)]``, which includes the NaN
positions and NaN != NaN, so it fails every output that contains a NaN (pinned below by
``test_sqz_testing_assert_close_accepts_equal_nans``).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from hardening_support import compare
from sqz_testing import assert_close, compile_and_load, ort_run


def _model(nodes: list[onnx.NodeProto], in_shape: list[int], out_shape: list[int],
           inits: list[onnx.TensorProto] | None = None, opset: int = 13) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "nonfinite", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=inits or [])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _conv_inits(cout: int, cin: int, k: int) -> list[onnx.TensorProto]:
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((cout, cin, k, k)) * 0.3).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    return [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]


C, H = 16, 11

MODELS = {
    "conv3x3": lambda: _model(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3],
                          pads=[1, 1, 1, 1])],
        [1, C, H, H], [1, C, H, H], _conv_inits(C, C, 3)),
    "conv1x1": lambda: _model(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[1, 1])],
        [1, C, H, H], [1, 32, H, H], _conv_inits(32, C, 1)),
    "relu": lambda: _model([helper.make_node("Relu", ["x"], ["y"])], [1, C, H, H],
                           [1, C, H, H]),
    "maxpool": lambda: _model(
        [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                          ceil_mode=1)], [1, C, H, H], [1, C, 5, 5]),
    "maxpool_padded": lambda: _model(
        [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
        [1, C, H, H], [1, C, H, H]),
    "softmax": lambda: _model([helper.make_node("Softmax", ["x"], ["y"], axis=1)],
                              [1, C, H, H], [1, C, H, H]),
    "softmax_2d": lambda: _model([helper.make_node("Softmax", ["x"], ["y"], axis=-1)],
                                 [4, 40], [4, 40]),
    "global_average_pool": lambda: _model(
        [helper.make_node("GlobalAveragePool", ["x"], ["y"])], [1, C, H, H], [1, C, 1, 1]),
    "global_max_pool": lambda: _model(
        [helper.make_node("GlobalMaxPool", ["x"], ["y"])], [1, C, H, H], [1, C, 1, 1]),
    "conv_relu_maxpool": lambda: _model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3],
                          pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                          ceil_mode=1)],
        [1, C, H, H], [1, C, 5, 5], _conv_inits(C, C, 3)),
}


def _nonfinite_input(shape: tuple[int, ...], pattern: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    n = flat.size
    if pattern == "scattered":
        idx = rng.choice(n, size=max(3, n // 50), replace=False)
        flat[idx[0::3]] = np.nan
        flat[idx[1::3]] = np.inf
        flat[idx[2::3]] = -np.inf
    elif pattern == "nan_only":
        flat[rng.choice(n, size=max(1, n // 40), replace=False)] = np.nan
    elif pattern == "inf_only":
        idx = rng.choice(n, size=max(2, n // 40), replace=False)
        flat[idx[::2]] = np.inf
        flat[idx[1::2]] = -np.inf
    elif pattern == "one_channel":  # a whole channel/row non-finite, the rest finite
        if x.ndim == 4:
            x[0, 3] = np.inf
            x[0, 5] = -np.inf
            x[0, 7, 2, 2] = np.nan
        else:
            x[1] = np.inf
            x[2, 3] = np.nan
            x[3, :5] = -np.inf
    return x


_PATTERNS = ("scattered", "nan_only", "inf_only", "one_channel")


def _cases() -> list:
    out = []
    for name in sorted(MODELS):
        for pattern in _PATTERNS:
            for opt in (0, 3):
                marks: list = []
                out.append(pytest.param(name, pattern, opt, marks=marks,
                                        id=f"{name}-{pattern}-O{opt}"))
    return out


@pytest.mark.parametrize(("name", "pattern", "opt_level"), _cases())
def test_nonfinite_inputs_match_onnxruntime(name: str, pattern: str, opt_level: int) -> None:
    model = MODELS[name]()
    m = compile_and_load(model, opt_level=opt_level)
    shape = m.input_specs[0].concrete_shape(1)
    x = _nonfinite_input(shape, pattern, seed=len(name))
    got = m(x)
    want = ort_run(model, {"x": x})[0]
    # The input really produced non-finite outputs (else the test would test nothing).
    assert not np.isfinite(want).all(), "no non-finite value reached the output"
    problem = compare(got, np.asarray(want))
    if problem:
        bad_nan = np.argwhere(np.isnan(got) != np.isnan(want))[:5].tolist()
        inf = np.isinf(want) | np.isinf(got)
        bad_inf = np.argwhere(inf & (got != want))[:5].tolist()
        pytest.fail(f"{name}/{pattern}/O{opt_level}: {problem}; NaN mismatches at {bad_nan}, "
                    f"inf mismatches at {bad_inf}")


def test_sqz_testing_assert_close_accepts_equal_nans() -> None:
    a = np.array([1.0, np.nan, np.inf, -np.inf], np.float32)
    assert_close(a.copy(), a)
