"""The curated planted bugs of the mutation tier (issue 26), and the default-tier tests
written to catch each one.

Each entry is one realistic slip in a kernel or pass that matters: the rounding mode of a
requantization, a saturation bound, a padding bound, a concat offset, zero-point folding,
a Winograd transform coefficient, arena overlap. ``run_mutants.py`` plants each in a
private copy of the package and runs the listed tests; every one must fail. The list is
checked on every default test run (``test_mutants.py``): each ``old`` text must still be
in its file exactly as often as stated, so moving code cannot quietly disarm a mutant.
"""

from __future__ import annotations

from mutation_tree import Mutant

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        name="saturate-high-bound",
        path="backends/llvm/emit/common/qmath.py",
        old="high = b.fsub(f32(float(hi)), zpf)",
        new="high = b.fsub(f32(float(hi - 1)), zpf)",
        tests=("tests/ops/test_quant_ops.py::test_quantize_linear_per_tensor",),
        why="QuantizeLinear (scalar) saturates one below the type's top (126 / 254)",
    ),
    Mutant(
        name="qconv-saturate-low-bound",
        path="backends/llvm/emit/conv/qconv_blocked.py",
        old="v = b.select(b.fcmp_ordered(\"<\", v, low), low, v)",
        new="v = b.select(b.fcmp_ordered(\"<\", v, b.fadd(low, _vec(F32, blk, 1.0))), "
            "b.fadd(low, _vec(F32, blk, 1.0)), v)",
        tests=("tests/ops/test_quant_ops.py::test_qlinear_conv_saturates_both_ends",),
        why="the int8 conv epilogue clamps one step above the type's bottom",
    ),
    Mutant(
        name="conv-padding-bound",
        path="backends/llvm/emit/common/geometry.py",
        old="taps = tuple(t for t in range(k) if 0 <= o * s + t * d - pad < in_len)",
        new="taps = tuple(t for t in range(k) if 0 <= o * s + t * d - pad <= in_len - 2 + "
            "(pad == 0))",
        tests=("tests/ops/test_conv.py::test_conv_kernel_stride_same_pads",),
        why="the blocked conv's row loop drops the last input row when the conv is padded",
    ),
    Mutant(
        name="concat-offsets-reversed",
        path="sqzc/passes/eliminate_concat.py",
        old="        for src in op.inputs:\n            sop = g.op(src)",
        new="        for src in reversed(op.inputs):\n            sop = g.op(src)",
        tests=("tests/passes/test_passes.py::test_concat_elimination_places_fire_expands",
               "tests/passes/test_passes.py::test_concat_operand_used_elsewhere_is_still_placed",
               "tests/passes/test_passes.py::test_operand_of_two_concats_is_placed_once",
               "tests/passes/test_passes.py::test_compiled_library_honours_concat_placement"),
        why="eliminate-concat places the operands at each other's channel offsets",
    ),
    Mutant(
        name="concat-view-offset",
        path="sqzc/memory.py",
        old="off = parent.offset + start * parent.strides[op.into.axis]",
        new="off = parent.offset + start * parent.strides[op.into.axis] // 2",
        tests=("tests/passes/test_passes.py::test_concat_elimination_places_fire_expands",
               "tests/passes/test_passes.py::test_concat_operand_used_elsewhere_is_still_placed",
               "tests/passes/test_passes.py::test_operand_of_two_concats_is_placed_once",
               "tests/passes/test_passes.py::test_compiled_library_honours_concat_placement"),
        why="a placed concat operand's view starts halfway to its slice (IR text unchanged)",
    ),
    Mutant(
        name="qconv-input-zero-point-fold",
        path="sqzc/ops/layout.py",
        old="return x_zp + (128 if x_dtype == \"int8\" else 0)",
        new="return x_zp + (127 if x_dtype == \"int8\" else 0)",
        tests=("tests/ops/test_quant_ops.py::test_qlinear_conv",),
        why="the int8-activation +128 shift is folded into the bias off by one",
    ),
    Mutant(
        name="winograd-f4-input-transform",
        path="sqzc/winograd.py",
        old="[0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0]",
        new="[0, -2, -1, 2, 1, 0], [0, 2, 1, -2, 1, 0]",
        tests=("tests/ops/test_conv_winograd.py::test_sizes_and_partial_tiles",),
        why="one coefficient of F(4x4,3x3)'s B^T has the wrong sign",
    ),
    Mutant(
        name="winograd-f2-filter-transform",
        path="sqzc/winograd.py",
        old="g = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]",
        new="g = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0, 0, 1]]",
        tests=("tests/ops/test_conv_winograd.py::test_sizes_and_partial_tiles",),
        why="one coefficient of F(2x2,3x3)'s G has the wrong sign",
    ),
    Mutant(
        name="arena-overlap-at-boundary",
        path="sqzc/memory.py",
        old="if not (h2 < lo or hi < l2))",
        new="if not (h2 <= lo or hi < l2))",
        tests=("tests/passes/test_passes.py::"
               "test_arena_reuses_memory_and_never_overlaps_live_buffers",),
        why="plan-memory lets a buffer share memory with one whose last reader writes it",
    ),
    # --- rounding half away from zero (llvm.round, or the same in numpy) instead of half to even at
    # every requantization site; each caught by the exact-tie tests of the ops using the site
    # (tests/ops/test_requant_ties.py, compile-time roundings in test_requant_ties_folded.py).
    Mutant(
        name="qconv-blocked-round-half-away",
        path="backends/llvm/emit/conv/qconv_blocked.py",
        old='f"llvm.rint.v{blk}f32"',
        new='f"llvm.round.v{blk}f32"',
        tests=("tests/ops/test_requant_ties.py::test_qlinear_conv_ties[vnni-u8]",
               "tests/ops/test_requant_ties.py::test_qlinear_conv_ties[vnni-s8]",
               "tests/ops/test_requant_ties.py::test_qlinear_conv_ties[pairs-avx2-u8]",
               "tests/ops/test_requant_ties.py::test_qlinear_conv_ties[pairs-sse2-s8]",
               "tests/ops/test_requant_ties.py::test_qdq_conv_ties[integer]"),
        why="the blocked int8 conv's epilogue (VNNI and pmaddwd kernels, both roundings) "
            "rounds half away from zero",
    ),
    Mutant(
        name="qconv-blocked-requant-round-half-away",
        path="backends/llvm/emit/conv/qconv_blocked.py",
        old="yi = b.fptosi(b.fadd(b.call(rint, [v2]), zp2v), vi)",
        new="yi = b.fptosi(b.fadd(b.call(declare_intrinsic(ctx.module, "
            "f\"llvm.round.v{blk}f32\", vf, [vf]), [v2]), zp2v), vi)",
        tests=("tests/ops/test_requant_ties.py::test_qlinear_conv_ties[vnni-u8]",
               "tests/ops/test_requant_ties.py::test_qlinear_conv_ties[vnni-s8]",
               "tests/ops/test_requant_ties.py::test_qlinear_conv_ties[pairs-avx2-u8]",
               "tests/ops/test_requant_ties.py::test_qlinear_conv_ties[pairs-sse2-s8]"),
        why="only the blocked conv's second rounding (a DQ -> Q consumer's requantization "
            "folded into the epilogue) rounds half away from zero",
    ),
    Mutant(
        name="saturate-round-half-away",
        path="backends/llvm/emit/common/qmath.py",
        old='"llvm.rint.f32"',
        new='"llvm.round.f32"',
        tests=("tests/ops/test_requant_ties.py::test_quantize_linear_ties",
               "tests/ops/test_requant_ties.py::test_qlinear_conv_ties[plain-grouped-u8]",
               "tests/ops/test_requant_ties.py::test_qlinear_conv_ties[plain-weight-zp-s8]",
               "tests/ops/test_requant_ties.py::test_qlinear_global_average_pool_ties",
               "tests/ops/test_requant_ties.py::test_qlinear_matmul_ties",
               "tests/ops/test_requant_ties.py::test_qlinear_concat_requantize_ties",
               "tests/ops/test_requant_ties.py::test_qdq_conv_ties[float]"),
        why="saturate_round (QuantizeLinear, plain conv and its requantization, global "
            "average pool, QLinearMatMul, requantize, the MLAS-order conv's row kernel) "
            "rounds half away from zero",
    ),
    Mutant(
        name="quantize-vector-round-half-away",
        path="backends/llvm/emit/common/qmath.py",
        old='f"llvm.rint.v{lanes}f32"',
        new='f"llvm.round.v{lanes}f32"',
        tests=("tests/ops/test_requant_ties.py::test_qdq_conv_ties[float]",),
        why="the MLAS-order float conv's tiled kernel quantizes its fused QuantizeLinear "
            "half away from zero",
    ),
    Mutant(
        name="cvt-saturate-round-half-away",
        path="backends/llvm/emit/common/cvt.py",
        old='rint = declare_intrinsic(b.module, "llvm.rint.f32", F32, [F32])',
        new='rint = declare_intrinsic(b.module, "llvm.round.f32", F32, [F32])',
        tests=("tests/ops/test_requant_ties.py::test_qlinear_add_mul_ties",
               "tests/ops/test_requant_ties.py::test_qlinear_average_pool_ties"),
        why="cvt_saturate (QLinearAdd, QLinearMul, QLinearAveragePool) rounds half away "
            "from zero",
    ),
    Mutant(
        name="qsoftmax-round-half-away",
        path="backends/llvm/emit/softmax/quant.py",
        old='rint = declare_intrinsic(ctx.module, "llvm.rint.f32", F32, [F32])',
        new='rint = declare_intrinsic(ctx.module, "llvm.round.f32", F32, [F32])',
        tests=("tests/ops/test_requant_ties.py::test_qlinear_softmax_ties",
               "tests/ops/test_qlinear_softmax.py::test_near_ties_within_one_step"),
        why="the QLinearSoftmax kernel rounds half away from zero",
    ),
    Mutant(
        name="reference-cvtps-round-half-away",
        path="sqzc/ort/oracles/mlas.py",
        old="r = np.rint(np.where(ok, v, _F32(0))).astype(np.int64)",
        new="r = np.where(ok, v, _F32(0))\n    r = (lambda t: np.where("
            "np.abs(t - np.trunc(t)) == 0.5, np.trunc(t) + np.sign(t), np.rint(t)))"
            "(r).astype(np.int64)",
        tests=("tests/ops/test_requant_ties_folded.py::test_lookup_table_ties",
               "tests/ops/test_requant_ties_folded.py::test_folded_ties[quantize]",
               "tests/ops/test_requant_ties_folded.py::test_float_weight_conv_ties",
               "tests/ops/test_requant_ties_folded.py::test_folded_ties[qlinear_conv]",
               "tests/ops/test_requant_ties_folded.py::test_folded_ties"
               "[qlinear_global_average_pool]",
               "tests/ops/test_requant_ties_folded.py::test_folded_ties[qlinear_add]",
               "tests/ops/test_requant_ties_folded.py::test_folded_ties[qlinear_matmul]",
               "tests/ops/test_requant_ties_folded.py::test_folded_ties[qlinear_average_pool]"),
        why="the numpy cvtps2dq (every compile-time rounding that follows onnxruntime: "
            "folded QuantizeLinear, quantized float weights, requantization of folded "
            "QLinearConv / QLinearGlobalAveragePool, lookup tables, folded QLinearAdd / "
            "QLinearMatMul / QLinearAveragePool) rounds half away from zero",
    ),
    Mutant(
        name="fold-qsoftmax-round-half-away",
        path="sqzc/ort/oracles/contrib_ops.py",
        old="y = np.clip(np.rint(v) + np.float32(",
        new="y = np.clip((lambda t: np.where(np.abs(t - np.trunc(t)) == 0.5, np.trunc"
            "(t) + np.sign(t), np.rint(t)))(v) + np.float32(",
        tests=("tests/ops/test_requant_ties_folded.py::test_folded_ties[qlinear_softmax]",),
        why="the numpy QLinearSoftmax of folded constants rounds half away from zero",
    ),
    Mutant(
        name="weight-zero-point-round-half-away",
        path="sqzc/ort/passes/quantize_conv_weights.py",
        old="zp = int(np.rint(np.clip(initial, np.float32(-128.0), np.float32(127.0))))",
        new="zp = int((lambda t: np.where(np.abs(t - np.trunc(t)) == 0.5, "
            "np.trunc(t) + np.sign(t), np.rint(t)))"
            "(np.clip(initial, np.float32(-128.0), np.float32(127.0))))",
        tests=("tests/ops/test_requant_ties_folded.py::test_float_weight_conv_ties",),
        why="quantize-conv-weights rounds a float weight's zero point half away from zero",
    ),
    Mutant(
        name="bias-quantization-round-half-away",
        path="sqzc/ort/passes/quantize_conv_weights.py",
        old="bq = np.rint((b / scales).astype(np.float32)).astype(np.int32)",
        new="bq = (lambda t: np.where(np.abs(t - np.trunc(t)) == 0.5, np.trunc"
            "(t) + np.sign(t), np.rint(t)))((b / scales).astype(np.float32)).astype(np.int32)",
        tests=("tests/ops/test_requant_ties_folded.py::test_float_weight_conv_ties",),
        why="quantize-conv-weights rounds a float bias half away from zero",
    ),
    Mutant(
        name="maxpool-vector-starts-at-lowest",
        path="backends/llvm/emit/pool/mlas.py",
        old="start = b.select(left, edge, f32(-math.inf))",
        new="start = edge",
        tests=("tests/hardening/test_hardening_limits.py::"
               "test_maxpool_of_neg_inf_matches_onnxruntime",),
        why="the plain max pool starts windows at -FLT_MAX where MLAS's vector kernel "
            "starts from the first value (a window of -inf gives -FLT_MAX)",
    ),
    Mutant(
        name="maxpool-blocked-vector-starts-at-lowest",
        path="backends/llvm/emit/pool/blocked.py",
        old="_pool_windows(ctx, vconst(-math.inf, blk), mlas_vector_max",
        new="_pool_windows(ctx, vconst(LOWEST_F32, blk), mlas_vector_max",
        tests=("tests/hardening/test_hardening_limits.py::"
               "test_maxpool_special_values_match_onnxruntime",),
        why="the blocked max pool starts windows at -FLT_MAX in MLAS's vector order",
    ),
    Mutant(
        name="maxpool-scalar-columns-as-vector",
        path="backends/llvm/emit/pool/mlas.py",
        old="return b.select(in_vector, mlas_vector_max(b, v, cur), std_max(b, v, cur))",
        new="return mlas_vector_max(b, v, cur)",
        tests=("tests/hardening/test_hardening_limits.py::"
               "test_maxpool_special_values_match_onnxruntime",),
        why="the last w % 4 columns take MLAS's vector max instead of std::max (NaN kept "
            "where onnxruntime drops it)",
    ),
)
