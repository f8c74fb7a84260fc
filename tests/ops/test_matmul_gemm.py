"""Gemm (transA/transB, alpha/beta, C broadcasting) and MatMul (2-D, batched, 1-D,
constant B) against onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx_builders import init, make_model, rand, single
from sqz_testing import assert_matches_ort

M, K, N = 3, 5, 4


def gemm_model(trans_a: int, trans_b: int, c_shape: list[int] | None, alpha: float | None,
               beta: float | None, opset: int = 13, const_b: bool = True) -> object:
    a_shape = [K, M] if trans_a else [M, K]
    b_shape = [N, K] if trans_b else [K, N]
    inputs: dict[str, list[int]] = {"a": a_shape}
    inits = []
    if const_b:
        inits.append(init("b", rand(b_shape, 1)))
    else:
        inputs["b"] = b_shape
    node_in = ["a", "b"]
    if c_shape is not None:
        inits.append(init("c", rand(c_shape, 2)))
        node_in.append("c")
    attrs: dict = {}
    if trans_a:
        attrs["transA"] = 1
    if trans_b:
        attrs["transB"] = 1
    if alpha is not None:
        attrs["alpha"] = alpha
    if beta is not None:
        attrs["beta"] = beta
    return make_model([helper.make_node("Gemm", node_in, ["y"], **attrs)], inputs, ["y"],
                      inits, opset)


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [None, [N], [M, N], [1, N], [], [1], [M, 1], [1, 1]],
                         ids=str)
def test_gemm_trans_and_c_broadcast(trans_a: int, trans_b: int,
                                    c_shape: list[int] | None) -> None:
    """``nn.Linear`` (transB=1, C=[N]) and every C broadcast shape ([N], [M,N], [1,N],
    scalar, [M,1]) with transA/transB, no C (opset 11+ makes C optional)."""
    assert_matches_ort(gemm_model(trans_a, trans_b, c_shape, None, None))


@pytest.mark.parametrize("alpha,beta", [(0.5, None), (None, 2.0), (-1.5, 0.25), (2.0, 0.0),
                                        (1.0, 1.0), (0.0, 1.0)], ids=str)
@pytest.mark.parametrize("c_shape", [None, [N], [M, N]], ids=str)
def test_gemm_alpha_beta(alpha: float | None, beta: float | None,
                         c_shape: list[int] | None) -> None:
    """alpha and beta scaling (Keras Dense via tf2onnx sets neither; hand-written and
    Caffe2 models do), beta=0 (C ignored), alpha=0."""
    assert_matches_ort(gemm_model(0, 1, c_shape, alpha, beta))


@pytest.mark.parametrize("opset", [7, 9, 11, 13])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_opsets(opset: int, trans_b: int) -> None:
    """Gemm-7/9 (C required, unidirectional broadcast) through Gemm-13."""
    assert_matches_ort(gemm_model(0, trans_b, [N], 0.75, 1.25, opset=opset))


@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 1), (0, 1)], ids=str)
def test_gemm_runtime_b(trans_a: int, trans_b: int) -> None:
    """Both A and B at runtime (attention-style products)."""
    assert_matches_ort(gemm_model(trans_a, trans_b, [M, N], 0.5, 2.0, const_b=False))


def test_gemm_classifier_after_flatten() -> None:
    """PyTorch classifier: Flatten -> Gemm(transB=1) -> Relu -> Gemm(transB=1)."""
    rng = np.random.default_rng(3)
    inits = [init("W1", rng.standard_normal((6, 12)).astype(np.float32)),
             init("B1", rng.standard_normal((6,)).astype(np.float32)),
             init("W2", rng.standard_normal((3, 6)).astype(np.float32)),
             init("B2", rng.standard_normal((3,)).astype(np.float32))]
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("Gemm", ["f", "W1", "B1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "W2", "B2"], ["y"], transB=1)]
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 2, 2]}, ["y"], inits))


# ---------------------------------------------------------------- MatMul


@pytest.mark.parametrize("sa,sb", [
    ([3, 5], [5, 4]),
    ([1, 7], [7, 1]),
    ([2, 3, 5], [2, 5, 4]),       # batched
    ([2, 3, 5], [5, 4]),          # broadcast B over the batch
    ([3, 5], [2, 5, 4]),          # broadcast A over the batch
    ([2, 1, 3, 5], [1, 3, 5, 2]),  # both batch dims broadcast
    ([1, 2, 3, 5], [2, 5, 4]),
    ([5], [5, 4]),                # 1-D A
    ([3, 5], [5]),                # 1-D B
    ([5], [5]),                   # dot product -> scalar
    ([5], [2, 5, 3]),             # 1-D A with batched B
    ([2, 3, 5], [5]),             # batched A with 1-D B
], ids=str)
@pytest.mark.parametrize("const_b", [False, True], ids=["runtimeB", "constB"])
def test_matmul_shapes(sa: list[int], sb: list[int], const_b: bool) -> None:
    """numpy matmul semantics: 2-D, batched 3-D/4-D with broadcasting, 1-D operands
    promoted and removed, B as a weight (``x @ W`` from tf2onnx Dense) or runtime."""
    if const_b:
        m = single("MatMul", {"a": sa}, initializers=[init("b", rand(sb, 4))])
    else:
        m = single("MatMul", {"a": sa, "b": sb})
    assert_matches_ort(m, inputs={"a": rand(sa, 5)} if const_b else
                       {"a": rand(sa, 5), "b": rand(sb, 4)})


@pytest.mark.parametrize("opset", [1, 9, 13])
def test_matmul_opsets(opset: int) -> None:
    """MatMul-1/9/13."""
    m = single("MatMul", {"a": [2, 3, 4]}, opset=opset, initializers=[init("b", rand([4, 6]))])
    assert_matches_ort(m)


def test_matmul_add_linear() -> None:
    """PyTorch ``nn.Linear`` on a 3-D input: MatMul(x, W^T const) -> Add(bias)."""
    nodes = [helper.make_node("MatMul", ["x", "Wt"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    inits = [init("Wt", rand([8, 6], 6)), init("b", rand([6], 7))]
    assert_matches_ort(make_model(nodes, {"x": [1, 4, 8]}, ["y"], inits))


def test_matmul_transposed_operand() -> None:
    """``q @ k.transpose(-1, -2)``: MatMul reading a Transpose output."""
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["y"])]
    assert_matches_ort(make_model(nodes, {"q": [2, 3, 4], "k": [2, 5, 4]}, ["y"]))


def test_matmul_larger_k() -> None:
    """K = 128 accumulation: the 1e-4 relative bound must hold for long dot products."""
    m = single("MatMul", {"a": [4, 128]}, initializers=[init("b", rand([128, 8], 8))])
    assert_matches_ort(m)


def test_classifier_gemm_columns_shared_among_threads(tmp_path: Path) -> None:
    """An unbatched matmul wider than a column slice (MobileNetV2's 1280 -> 1000 head)
    is split by columns among the workers: 1 and 2 threads give the same bits, and both
    match onnxruntime."""
    import sqzc

    rng = np.random.default_rng(7)
    w = init("W", (rng.standard_normal((300, 200)) * 0.1).astype(np.float32))
    model = single("MatMul", {"x": [1, 300]}, initializers=[w])
    assert_matches_ort(model)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    sqzc.compile(path, tmp_path / "m.so")
    x = rng.standard_normal((1, 300)).astype(np.float32)
    one = sqzc.load(tmp_path / "m.so", threads=1)(x)
    two = sqzc.load(tmp_path / "m.so", threads=2)(x)
    assert one.tobytes() == two.tobytes()
