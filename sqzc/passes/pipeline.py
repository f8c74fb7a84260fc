"""``PIPELINE``: the optimization passes in the order the pass manager runs them.

``-O0`` runs none of them (the differential baseline); ``-O1`` and up run all of them
except those with a higher ``min_level`` (the levels also set LLVM's optimization level).
``sqzc passes`` prints this list with each pass's first docstring line. The passes that
follow onnxruntime's QDQ decisions come from ``sqzc.ort.passes`` as two slices.
"""

from __future__ import annotations

from sqzc.ort.passes import FUSE_CONV_QUANTIZE, ORT_QDQ_PASSES
from sqzc.passes.assign_layout import assign_layout
from sqzc.passes.canonicalize import canonicalize
from sqzc.passes.eliminate_concat import eliminate_concat
from sqzc.passes.fold_affine import fold_affine
from sqzc.passes.fold_constants import fold_constants
from sqzc.passes.fuse_activation import fuse_conv_activation
from sqzc.passes.manager import PassInfo
from sqzc.passes.plan_memory import plan_memory
from sqzc.passes.select_compact_conv import select_compact_conv
from sqzc.passes.select_winograd import select_winograd
from sqzc.passes.unsign_activations import unsign_activations

PIPELINE: tuple[PassInfo, ...] = (
    PassInfo("canonicalize", canonicalize),
    *ORT_QDQ_PASSES,
    PassInfo("fold-constants", fold_constants),
    PassInfo("fold-affine", fold_affine),
    PassInfo("fuse-conv-activation", fuse_conv_activation),
    PassInfo("unsign-activations", unsign_activations, min_level=2),
    *FUSE_CONV_QUANTIZE,
    PassInfo("assign-layout", assign_layout, min_level=2),
    PassInfo("select-winograd", select_winograd, min_level=2),
    PassInfo("select-compact-conv", select_compact_conv, min_level=2),
    PassInfo("eliminate-concat", eliminate_concat),
    PassInfo("plan-memory", plan_memory),
)

__all__ = ["PIPELINE"]
