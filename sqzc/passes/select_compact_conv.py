"""select-compact-conv: under ``--optimize size``, float convs share one run-time-geometry kernel."""

from __future__ import annotations

import dataclasses

from sqzc.ir import Graph
from sqzc.ops import ConvAttrs, OpKind
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext


def select_compact_conv(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Under --optimize size, packed float convs share one kernel with run-time geometry.

    The speed kernels are specialized per layer (unrolled taps, padding resolved at compile
    time: 15-28 KB of code for one 3x3 layer); a compact conv takes its geometry at run
    time, so every layer with the same activation and input layout runs one function
    (``backends/llvm/emit/conv/compact.py``). The summation order is the direct kernel's,
    so the outputs are those of a ``--no-winograd`` build. Winograd and onnxruntime-order
    (MLAS) convs keep their kernels; select-winograd does not run under size.
    """
    if not ctx.optimize_size:
        return False
    changed = False
    for nid in list(g.nodes()):
        op = g.op(nid)
        a = op.attrs
        if op.kind is not OpKind.CONV or not isinstance(a, ConvAttrs) or not a.packed \
                or a.winograd or a.ort_order is not None or a.compact or a.group != 1 \
                or op.out.dtype != "float32":
            continue
        g.set_op(nid, dataclasses.replace(op, attrs=dataclasses.replace(a, compact=True)))
        changed = True
    return changed
