"""The QDQ passes that follow onnxruntime's decisions, as two slices of the pipeline.

``ORT_QDQ_PASSES`` runs right after canonicalize: it quantizes float conv weights the way
onnxruntime's quantizer would have, drops what onnxruntime's QDQ transformers drop, and
folds the DQ -> op -> Q groups onnxruntime fuses into integer ops (``sqzc.ort.rules``),
marking the rest with onnxruntime's float summation order (``sqzc.ort.orders``).
``FUSE_CONV_QUANTIZE`` runs after unsign-activations: it fuses a float conv's trailing
QuantizeLinear into its epilogue. ``sqzc.passes.pipeline`` splices both into
``PIPELINE``, so ``sqzc passes`` lists them with the rest.
"""

from __future__ import annotations

from sqzc.ort.passes.drop_activation_before_quantize import drop_activation_before_quantize
from sqzc.ort.passes.drop_dq_q_pairs import drop_dq_q_pairs
from sqzc.ort.passes.fold_qdq import fold_qdq, fold_requantize
from sqzc.ort.passes.fuse_quantize import fuse_conv_quantize
from sqzc.ort.passes.quantize_conv_weights import quantize_conv_weights
from sqzc.passes.manager import PassInfo

ORT_QDQ_PASSES: tuple[PassInfo, ...] = (
    PassInfo("quantize-conv-weights", quantize_conv_weights),
    PassInfo("drop-activation-before-quantize", drop_activation_before_quantize),
    PassInfo("drop-dq-q-pairs", drop_dq_q_pairs),
    PassInfo("fold-qdq", fold_qdq),
    PassInfo("fold-requantize", fold_requantize),
)

FUSE_CONV_QUANTIZE: tuple[PassInfo, ...] = (
    PassInfo("fuse-conv-quantize", fuse_conv_quantize),
)

__all__ = ["FUSE_CONV_QUANTIZE", "ORT_QDQ_PASSES"]
