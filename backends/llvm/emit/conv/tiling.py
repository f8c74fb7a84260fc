"""The loop nest around the register-tiled direct convolutions on channel-blocked tensors.

The float kernel (``conv/blocked.py``) and the integer VNNI / pair-dot kernel
(``conv/qconv_blocked.py``) keep a tile of J output-channel blocks x R pixels in vector
registers (the tile shape is a target fact: ``Target.conv_tile`` / ``qconv_tile``) and
share ``drive_conv_rows``, the parallel loop nest over (sample, channel group, row) that
calls a kernel's microkernel for each run of column tiles.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import for_range, i64
from sqzc.backends.llvm.emit.common.geometry import ColTile
from sqzc.backends.llvm.kernel import KernelContext


Microkernel = Callable[[ir.Value, ir.Value, ir.Value, ir.Value, int, int, tuple[int, ...],
                        Callable[[int, int], bool]], None]


def drive_conv_rows(ctx: KernelContext, n_batch: int, ocb_total: int, blocks: int,
                    rows: list[tuple[int, int, tuple[int, ...]]], cols: list[ColTile],
                    microkernel: Microkernel, grain: int = 0) -> None:
    """The loop nest around a direct-conv microkernel (float and VNNI int8 alike).

    ``microkernel(n, ocb, oh, ow0, jn, width, taps_h, valid)`` computes ``jn`` output-
    channel blocks x ``width`` pixels of row ``oh``. Channel blocks go ``blocks`` at a
    time (then the remainder as one narrower group); for each row group (same in-bounds
    kernel rows) the (sample, channel group, row) triples are shared among the workers
    with ``parallel_for``, rows fastest so consecutive claims reuse the same weights.
    ``grain`` (elements one row touches) makes light kernels claim several rows at once
    (``KernelContext.parallel_for``).
    """
    b = ctx.b
    full = ocb_total - ocb_total % blocks
    for jn, start, stop in ((blocks, 0, full), (ocb_total - full, full, ocb_total)):
        if jn == 0:
            continue
        groups = (stop - start) // jn
        if groups <= 0:
            continue
        for r0, r1, taps_h in rows:
            nrows = r1 - r0
            with ctx.parallel_for(n_batch * groups * nrows, name=f"rows{jn}",
                                  grain=grain) as idx:
                oh = b.add(b.srem(idx, i64(nrows)), i64(r0), name="oh")
                rest = b.sdiv(idx, i64(nrows))
                ocb = b.add(b.mul(b.srem(rest, i64(groups)), i64(jn)), i64(start), name="ocb")
                n = b.sdiv(rest, i64(groups), name="n")
                for run in cols:
                    def valid(r: int, t: int, run: ColTile = run) -> bool:
                        return (r, t) in run.valid
                    if run.count == 1:
                        microkernel(n, ocb, oh, i64(run.start), jn, run.width, taps_h, valid)
                        continue
                    with for_range(b, 0, run.count, name="tile") as q:
                        ow0 = b.add(i64(run.start), b.mul(q, i64(run.width)))
                        microkernel(n, ocb, oh, ow0, jn, run.width, taps_h, valid)
