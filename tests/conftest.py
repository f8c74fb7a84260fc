"""Shared pytest fixtures: paths to the shared models/data and a compile-and-load helper;
and the default tier's sampling of the long parametrized sweeps."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (skip tests that need it when it is missing)."""
    for candidate in (ROOT.parent / "shared", ROOT / "shared"):
        if (candidate / "models").is_dir():
            return candidate
    pytest.skip("../shared (models and photos) is not present")


#: Parametrized sweeps the default tier samples: one case in k, chosen by a CRC of the
#: test id (the same cases every run, spread over every parameter, which a stride through
#: a product of parameters would not be). The others get the ``exhaustive`` mark, so
#: ``pytest -m exhaustive`` (which .ci/run also runs) covers the rest of each sweep. Each
#: of these took 4.5-36 s in the default tier, 420 s in all, on a slow day (2026-12-07).
SAMPLED_SWEEPS: dict[str, int] = {
    "tests/ops/test_pool.py::test_avgpool_sums_in_onnxruntime_order": 3,
    "tests/ops/test_pool.py::test_avgpool_kernel_stride_pads": 3,
    "tests/ops/test_pool.py::test_avgpool_auto_pad": 3,
    "tests/ops/test_qdq_activation_before_q.py::test_activation_before_q_fused_as_onnxruntime_does": 3,
    "tests/ops/test_reduce_softmax.py::test_softmax_axes": 3,
    "tests/ops/test_qdq_unary_binary_fusion.py::test_qdq_group_matches_onnxruntime": 3,
    "tests/ops/test_qdq_float_weights.py::test_float_weight_conv_matches_onnxruntime": 3,
    "tests/ops/test_qdq_conv_float_path.py::test_qdq_conv_float_path_bit_exact": 3,
    "tests/ops/test_qdq_matmul.py::test_qdq_matmul_matches_onnxruntime": 3,
    "tests/ops/test_qdq_matmul.py::test_qdq_gemm_matches_onnxruntime": 3,
    "tests/ops/test_conv.py::test_conv_then_channel_affine": 3,
    "tests/ops/test_elementwise.py::test_batchnorm": 3,
    "tests/ops/test_elementwise.py::test_binary_both_runtime": 3,
    "tests/ops/test_elementwise.py::test_binary_constant_operand": 3,
    "tests/ops/test_shape_ops.py::test_concat_graph_inputs": 3,
    "tests/models/test_zoo_models.py::test_float32_matches_onnxruntime": 2,
    "tests/models/test_int8_models.py::test_zoo_int8_weights_below_30_percent": 2,
    "tests/models/test_int8_models.py::test_zoo_default_op_types_bit_exact": 2,
    "tests/models/test_int8_models.py::test_ir_after_fold_qdq_has_no_float_conv": 2,
    "tests/ops/test_quant_ops.py::test_qlinear_matmul": 2,
    "tests/ops/test_quant_ops.py::test_qlinear_average_pool": 2,
    "tests/ops/test_activations.py::test_conv_act_O3_winograd_fused": 2,
    "tests/ops/test_activations.py::test_dynamic_batch_3": 2,
    "tests/ops/test_conv.py::test_conv_grouped": 2,
    "tests/ops/test_conv.py::test_conv_bias_group_opsets": 2,
    "tests/ops/test_qdq_dq_q_pairs.py::test_dq_q_pair_matches_onnxruntime": 2,
    "tests/ops/test_pool.py::test_pool_dilated_same_auto_pad": 2,
    "tests/ops/test_pool.py::test_avgpool_ceil_mode": 2,
    "tests/ops/test_reduce_softmax.py::test_reduce_axes_attribute": 2,
    "tests/ops/test_reduce_softmax.py::test_reduce_axes_input": 2,
    "tests/ops/test_shape_ops.py::test_reshape": 2,
    "tests/ops/test_shape_ops.py::test_transpose": 2,
    "tests/ops/test_shape_ops.py::test_unsqueeze": 2,
    "tests/ops/test_matmul_gemm.py::test_gemm_trans_and_c_broadcast": 2,
    "tests/ops/test_matmul_gemm.py::test_matmul_shapes": 2,
    "tests/ops/test_ops_opt_levels.py::test_opt_level_and_target": 2,
    "tests/ops/test_conv.py::test_conv_auto_pad": 2,
    # issue 24's model x Arm64 CPU preset matrix under qemu (50 cases, 5.5 min in all)
    "tests/targets/test_aarch64.py::test_every_squeezenet_on_every_preset": 5,
    "tests/ops/test_conv.py::test_conv_depthwise_blocked": 2,
    # issue 22's torchvision families (13 compiles of 5-30 s each)
    "tests/models/test_family_models.py::test_family_matches_onnxruntime": 8,
}


def in_default_sample(nodeid: str, k: int) -> bool:
    """Whether the default tier runs this case of a sweep sampled one in ``k``."""
    return zlib.crc32(nodeid.encode()) % k == 0


@pytest.hookimpl(tryfirst=True)  # before -m deselects by mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        k = SAMPLED_SWEEPS.get(item.nodeid.split("[", 1)[0])
        if k and not in_default_sample(item.nodeid, k):
            item.add_marker(pytest.mark.exhaustive)
