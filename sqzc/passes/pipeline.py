"""``PIPELINE``: the optimization passes in the order the pass manager runs them.

``-O0`` runs none of them (the differential baseline); ``-O1`` and up run all of them
except those with a higher ``min_level`` (the levels also set LLVM's optimization level).
``sqzc passes`` prints this list with each pass's first docstring line.
"""

from __future__ import annotations

from sqzc.passes.assign_layout import assign_layout
from sqzc.passes.canonicalize import canonicalize
from sqzc.passes.drop_activation_before_quantize import drop_activation_before_quantize
from sqzc.passes.drop_dq_q_pairs import drop_dq_q_pairs
from sqzc.passes.eliminate_concat import eliminate_concat
from sqzc.passes.fold_affine import fold_affine
from sqzc.passes.fold_constants import fold_constants
from sqzc.passes.fold_qdq import fold_qdq, fold_requantize
from sqzc.passes.fuse_activation import fuse_conv_activation
from sqzc.passes.fuse_quantize import fuse_conv_quantize
from sqzc.passes.manager import PassInfo
from sqzc.passes.plan_memory import plan_memory
from sqzc.passes.quantize_conv_weights import quantize_conv_weights
from sqzc.passes.select_winograd import select_winograd
from sqzc.passes.unsign_activations import unsign_activations

PIPELINE: tuple[PassInfo, ...] = (
    PassInfo("canonicalize", canonicalize),
    PassInfo("quantize-conv-weights", quantize_conv_weights),
    PassInfo("drop-activation-before-quantize", drop_activation_before_quantize),
    PassInfo("drop-dq-q-pairs", drop_dq_q_pairs),
    PassInfo("fold-qdq", fold_qdq),
    PassInfo("fold-requantize", fold_requantize),
    PassInfo("fold-constants", fold_constants),
    PassInfo("fold-affine", fold_affine),
    PassInfo("fuse-conv-activation", fuse_conv_activation),
    PassInfo("unsign-activations", unsign_activations, min_level=2),
    PassInfo("fuse-conv-quantize", fuse_conv_quantize),
    PassInfo("assign-layout", assign_layout, min_level=2),
    PassInfo("select-winograd", select_winograd, min_level=2),
    PassInfo("eliminate-concat", eliminate_concat),
    PassInfo("plan-memory", plan_memory),
)

__all__ = ["PIPELINE"]
