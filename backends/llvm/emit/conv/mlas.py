"""Float convolution summed in onnxruntime's MLAS order (``ConvAttrs.ort_order``).

For the QDQ convs onnxruntime runs in float (``sqzc.ort.rules``) sqzc must produce its
float sums bit for bit: MLAS's im2col + sgemm adds, for every output element, the taps
in K order ``(ic, kh, kw)`` with fused multiply-adds into an accumulator that restarts
from zero every ``stride_k`` taps, each slice's sum being added to the output; bias
follows, then the activation. Padding taps multiply zeros, which leaves a sum unchanged
(the accumulators never hold -0): the row kernel skips them, the tiled one loads zeros.
The multiply-adds are fused where the target has FMA, as MLAS's AVX2/AVX-512 sgemm
kernels (``vfmadd231ps``), and a multiply then an add on baseline x86-64, as its SSE
kernel on such a CPU.

Layout: plain NCHW in and out, weights as given ([OC, IC, KH, KW], dequantized from
int8 at run time by the graph). Two kernels:

* unit stride and dilation (every SqueezeNet conv after the first): ``_emit_tiled``
  keeps up to 24 vectors of 16 output columns in registers through a K slice (4 vectors
  from one row, from 2-4 narrow rows, or from a 1x1 conv's flattened plane, times up to
  8 output channels), with masked loads supplying the padding zeros; at the machine's
  FMA peak, as onnxruntime's sgemm is (about 100 GFLOP/s on one core of the Xeon and the
  Zen 4 this was measured on);
* anything else: ``_emit_rows``, per output row and tap one ``fma`` pass over the row,
  later K slices summed in a stack row and added to the output row.

The tiled kernel splits a slice's taps into runs of whole input channels (a runtime
loop) and the channels a slice boundary cuts (unrolled). Both keep the running sums out
of the output and end with an epilogue: bias, activation and, when fuse-conv-quantize
gave the conv its QuantizeLinear (``ConvAttrs.quantize``), the quantization, storing
8-bit values. The registry finds this emitter by the conv's float input and its
``mlas`` variant (``sqzc.ops.variant_of``), so one registration serves float and 8-bit
results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from llvmlite import ir
from sqzc.backends.llvm.cg import (
    F32,
    I1,
    I32,
    PTR,
    declare_intrinsic,
    entry_alloca,
    f32,
    for_range,
    i64,
    linear_index,
    opaque_ptr,
)
from sqzc.backends.llvm.emit.common.qmath import quantize_vector, saturate_round
from sqzc.backends.llvm.emit.common.vec import MulAdd, mul_add, splat, vconst
from sqzc.backends.llvm.emit.common.vecops import apply_activation, vec_ops
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext, Operand

from sqzc.ops import ConvAttrs, OpKind


def slice_segments(channels: int, taps: int, stride_k: int
                   ) -> Iterator[list[tuple[int | None, int, int, int]]]:
    """The K slices of a conv with ``channels`` x ``taps`` im2col rows, each as segments
    ``(channel, first_tap, stop_tap, count)``: ``channel`` None means a loop over
    ``count`` whole channels starting at ``first_tap`` (a channel index then), otherwise
    taps ``[first_tap, stop_tap)`` of that one channel."""
    k_total = channels * taps
    for k0 in range(0, k_total, stride_k):
        k1 = min(k_total, k0 + stride_k)
        segs: list[tuple[int | None, int, int, int]] = []
        k = k0
        while k < k1:
            c, t = divmod(k, taps)
            if t == 0 and k + taps <= k1:
                whole = (k1 - k) // taps
                segs.append((None, c, c + whole, whole))
                k += whole * taps
            else:
                stop = min(taps, t + (k1 - k))
                segs.append((c, t, stop, stop - t))
                k += stop - t
        yield segs


@emits(OpKind.CONV, "float", variant="mlas")
def emit_conv_mlas_order(ctx: KernelContext) -> None:
    """Direct convolution with MLAS's float summation order, bias and activation: the
    register-tiled kernel for ungrouped unit-stride convs over unit-stride rows (unless
    its unrolled taps would be too many), else the row loop."""
    a = ctx.op.attrs
    assert isinstance(a, ConvAttrs) and a.ort_order is not None and a.ort_order.stride_k > 0
    x, y = ctx.ins[0], ctx.out
    if a.group == 1 and a.strides == (1, 1) and a.dilations == (1, 1) \
            and x.strides[-1] == 1 and y.strides[-1] == 1 \
            and unrolled_taps(x.shape[1], a.kernel[0] * a.kernel[1],
                              a.ort_order.stride_k) <= MAX_UNROLLED_TAPS:
        _emit_tiled(ctx)
    else:
        _emit_rows(ctx)


def unrolled_taps(channels: int, taps: int, stride_k: int) -> int:
    """Tap bodies the tiled kernel emits: per K slice, the cut channels' taps plus one
    channel loop's taps."""
    return sum(sum(stop - first if chan is not None else taps
                   for chan, first, stop, _ in segs)
               for segs in slice_segments(channels, taps, stride_k))


def _scalar_mul_add(ctx: KernelContext) -> MulAdd:
    """Scalar ``a * b + c``, fused exactly where ``common.vec.mul_add`` fuses."""
    if not ctx.target.has_fma:
        return lambda b, x, y, acc: b.fadd(b.fmul(x, y), acc)
    fused = declare_intrinsic(ctx.module, "llvm.fma.f32", F32, [F32, F32, F32])
    return lambda b, x, y, acc: b.call(fused, [x, y, acc])


def _emit_rows(ctx: KernelContext) -> None:
    """Any stride, dilation or group: per output row, K slice and tap (decoded at run
    time, so the code does not grow with K), one ``fma`` pass over the tap's valid output
    columns into a stack row of sums (later slices into a second row, then added), and
    an epilogue that adds the bias, applies the activation (and the quantization)."""
    a = ctx.op.attrs
    assert isinstance(a, ConvAttrs)
    b, y = ctx.b, ctx.out
    x, w = ctx.ins[0], ctx.ins[1]
    bias = ctx.ins[2] if len(ctx.ins) > 2 else None
    _, _, h, wd = x.shape
    n_batch, oc, oh, ow = y.shape
    icg = w.shape[1]
    ocg = oc // a.group
    kh, kw = a.kernel
    taps = kh * kw
    k_total = icg * taps
    assert a.ort_order is not None
    stride_k = a.ort_order.stride_k
    (sh, sw), (dh, dw) = a.strides, a.dilations
    fma = _scalar_mul_add(ctx)
    row_view = dataclasses.replace(y.view, offset=0, strides=(1,), shape=(ow,))
    sums, scratch = (Operand(opaque_ptr(b, entry_alloca(b, F32, name, ow)), row_view, "float32")
                     for name in ("row_sums", "slice_row"))

    def tap(dst: Operand, n: ir.Value, o: ir.Value, r: ir.Value, cin: ir.Value,
            c: ir.Value, t: ir.Value) -> None:
        i, j = b.sdiv(t, i64(kw)), b.srem(t, i64(kw))
        ih = b.add(b.mul(r, i64(sh)), b.sub(b.mul(i, i64(dh)), i64(a.pads[0])), name="ih")
        off = b.sub(b.mul(j, i64(dw)), i64(a.pads[1]), name="off")
        inside = b.and_(b.icmp_signed(">=", ih, i64(0)), b.icmp_signed("<", ih, i64(h)))
        with b.if_then(inside):
            # valid columns q: 0 <= q*sw + off < wd, i.e. ceil(-off/sw) <= q <= (wd-1-off)/sw
            need = b.sub(i64(0), off)
            lo = b.select(b.icmp_signed(">", need, i64(0)),
                          b.sdiv(b.add(need, i64(sw - 1)), i64(sw)), i64(0))
            room = b.sub(i64(wd - 1), off)
            hi = b.select(b.icmp_signed(">=", room, i64(0)),
                          b.add(b.sdiv(room, i64(sw)), i64(1)), i64(0))
            hi = b.select(b.icmp_signed(">", hi, i64(ow)), i64(ow), hi)
            wv = w.load(b, [o, c, i, j])
            with for_range(b, lo, hi, name="q") as q:
                iw = b.add(b.mul(q, i64(sw)), off, name="iw")
                acc = dst.load(b, [q])
                dst.store(b, [q], fma(b, wv, x.load(b, [n, cin, ih, iw]), acc))

    def slice_taps(dst: Operand, n: ir.Value, o: ir.Value, r: ir.Value, base: ir.Value,
                   k0: ir.Value) -> None:
        k1 = b.add(k0, i64(stride_k))
        k1 = b.select(b.icmp_signed(">", k1, i64(k_total)), i64(k_total), k1)
        with for_range(b, k0, k1, name="k") as k:
            c = b.sdiv(k, i64(taps), name="c")
            tap(dst, n, o, r, b.add(base, c), c, b.srem(k, i64(taps)))

    slices = -(-k_total // stride_k)
    with ctx.parallel_for(n_batch * oc, name="plane") as plane:
        n = b.sdiv(plane, i64(oc), name="n")
        o = b.srem(plane, i64(oc), name="o")
        base = b.mul(b.sdiv(o, i64(ocg)), i64(icg), name="cin0")
        with for_range(b, 0, oh, name="r") as r:
            with for_range(b, 0, ow, name="zero") as q:
                sums.store(b, [q], f32(0.0))
            slice_taps(sums, n, o, r, base, i64(0))
            with for_range(b, 1, slices, name="slice") as s:
                with for_range(b, 0, ow, name="zero_row") as q:
                    scratch.store(b, [q], f32(0.0))
                slice_taps(scratch, n, o, r, base, b.mul(s, i64(stride_k)))
                with for_range(b, 0, ow, name="add") as q:
                    sums.store(b, [q], b.fadd(sums.load(b, [q]), scratch.load(b, [q])))
            with for_range(b, 0, ow, name="epilogue") as q:
                v = sums.load(b, [q])
                if bias is not None:
                    v = b.fadd(v, bias.load(b, [o]))
                v = apply_activation(vec_ops(ctx, 1), v, a.act)
                if a.quantize is not None:
                    qa = a.quantize
                    v = saturate_round(b, b.fdiv(v, f32(qa.scale[0])), qa.zero_point[0],
                                       qa.dtype, qa.bits)
                y.store(b, [n, o, r, q], v)


#: Lanes of the tiled kernel (output columns per vector) and its accumulator budget.
LANES = 16
#: Above this many unrolled tap bodies the tiled kernel's code would take long to compile
#: (5x5 convs over hundreds of channels): the row kernel runs those.
MAX_UNROLLED_TAPS = 400
MAX_ACCUMULATORS = 24
MAX_CHANNELS = 8
#: Vectors (of ``LANES`` output columns) per register tile.
TILES_PER_UNIT = 4


def store_one_byte_lane(b: ir.IRBuilder, q: ir.Value, at: ir.Value, lane: int) -> None:
    """Store lane ``lane`` of the byte vector ``q`` at ``at + lane`` with a scalar store.

    Not a masked store with one active lane: LLVM 22 (llvmlite 0.50, x86-64 AVX-512)
    lowers ``masked.store.v16i8`` of a ``trunc(fptosi <16 x float>)`` with a one-lane
    constant mask to a 4-byte ``vmovss``/``vextractps``, overwriting the next three bytes
    (checked with a 5-line module; two or more lanes give a correct ``vpmovdb {k}``)."""
    byte = b.extract_element(q, ir.Constant(I32, lane))
    b.store(byte, b.gep(at, [i64(lane)], source_etype=ir.IntType(8)))


def _lane_mask(flags: list[bool]) -> ir.Constant:
    return ir.Constant(ir.VectorType(I1, len(flags)), [ir.Constant(I1, int(f)) for f in flags])


def _flat_1x1(ctx: KernelContext) -> bool:
    """An unpadded 1x1 conv over contiguous planes: each output plane is the same
    positions of the input planes, so the kernel may treat a plane as one long row (no
    lanes lost at row ends, full tiles)."""
    a = ctx.op.attrs
    x, y = ctx.ins[0], ctx.out
    return a.kernel == (1, 1) and a.pads == (0, 0, 0, 0) \
        and x.strides[-2] == x.shape[-1] and y.strides[-2] == y.shape[-1]


TileKind = tuple[list[tuple[int, int]], int, int, int, int]


def _tile_kinds(oh: int, ow: int, flat: bool) -> list[TileKind]:
    """How the output is cut into register tiles: ``(tiles, units, row_first, row_step,
    col_step)`` per kind, ``tiles`` the ``(row offset, first column)`` of each vector of
    a unit, and unit ``u`` of the kind at row ``row_first + u * row_step``, column
    ``u * col_step`` (a moving column only for full units of a flattened plane, whose
    lanes are all inside). A unit holds up to ``TILES_PER_UNIT`` vectors: narrow rows (13
    or 27 columns in SqueezeNet) stack several rows, so each weight broadcast per tap
    feeds as many multiply-adds as a wide row's."""
    if flat:  # one row of oh * ow columns: full units in a loop, then a masked tail unit
        cols, span = oh * ow, TILES_PER_UNIT * LANES
        kinds: list[TileKind] = []
        if cols // span:
            kinds.append(([(0, q) for q in range(0, span, LANES)], cols // span, 0, 0, span))
        if cols % span:
            kinds.append(([(0, q) for q in range(cols - cols % span, cols, LANES)], 1, 0, 0, 0))
        return kinds
    tiles = list(range(0, ow, LANES))
    if len(tiles) >= TILES_PER_UNIT:  # wide rows: a unit is a run of tiles of one row
        return [([(0, q) for q in tiles[i:i + TILES_PER_UNIT]], oh, 0, 1, 0)
                for i in range(0, len(tiles), TILES_PER_UNIT)]
    rows = TILES_PER_UNIT // len(tiles)
    kinds = [([(dr, q) for dr in range(rows) for q in tiles], oh // rows, 0, rows, 0)]
    if oh % rows:
        kinds.append(([(dr, q) for dr in range(oh % rows) for q in tiles], 1,
                      oh - oh % rows, 0, 0))
    return [k for k in kinds if k[1]]


def _emit_tiled(ctx: KernelContext) -> None:
    """Unit-stride convs: the output is cut into ``LANES``-column vectors, and a unit of
    up to ``TILES_PER_UNIT`` vectors (from one row, several narrow rows, or a flattened
    1x1 plane) x up to ``MAX_CHANNELS`` output channels keeps its accumulators in
    registers through a whole K slice. Each tap loads one input vector per tile (masked:
    padding columns and rows read as zeros, exactly im2col's zeros) and adds ``w * x``
    per channel with one vector multiply-add (``common.vec.mul_add``). The summation order
    of every output element is MLAS's whatever the tiling."""
    a = ctx.op.attrs
    assert isinstance(a, ConvAttrs)
    b, y, x, w = ctx.b, ctx.out, ctx.ins[0], ctx.ins[1]
    bias = ctx.ins[2] if len(ctx.ins) > 2 else None
    _, ic, h, wd = x.shape
    n_batch, oc, oh, ow = y.shape
    flat = _flat_1x1(ctx)
    if flat:  # planes as single rows
        h, wd, oh, ow = 1, h * wd, 1, oh * ow
    kh, kw = a.kernel
    pt, pl = a.pads[0], a.pads[1]
    vt = ir.VectorType(F32, LANES)
    mt = ir.VectorType(I1, LANES)
    fma = mul_add(ctx.module, ctx.target, LANES)
    mload = declare_intrinsic(ctx.module, f"llvm.masked.load.v{LANES}f32.p0", vt,
                              [PTR, I32, mt, vt])
    mstore = declare_intrinsic(ctx.module, f"llvm.masked.store.v{LANES}f32.p0",
                               ir.VoidType(), [vt, PTR, I32, mt])
    qt = ir.VectorType(ir.IntType(8), LANES)
    qstore = declare_intrinsic(ctx.module, f"llvm.masked.store.v{LANES}i8.p0",
                               ir.VoidType(), [qt, PTR, I32, mt])
    align = ir.Constant(I32, 4)
    zero = vconst(0.0, LANES)
    all_lanes = _lane_mask([True] * LANES)
    slices = list(slice_segments(ic, kh * kw, a.ort_order.stride_k))

    def lanes_valid(q0: int | None, j: int) -> ir.Constant:
        if q0 is None:  # a column that moves at run time: only full flat units have one
            return all_lanes
        return _lane_mask([0 <= q0 + lane + j - pl < wd and q0 + lane < ow
                           for lane in range(LANES)])

    zero_row = None
    if kh > 1 or pt or a.pads[2]:  # rows can fall outside the input
        zeros = ir.GlobalVariable(ctx.module, ir.ArrayType(F32, wd),
                                  name=ctx.module.get_unique_name("mlas_zero_row"))
        zeros.global_constant = True
        zeros.linkage = "internal"
        zeros.initializer = ir.Constant(ir.ArrayType(F32, wd), None)
        zero_row = b.bitcast(zeros, PTR)

    def y_index(n: ir.Value, o: ir.Value, row: ir.Value, col: ir.Value) -> ir.Value:
        return b.add(linear_index(b, [n, o, row, i64(0)], y.strides), col)

    def unit_block(n: ir.Value, o0: ir.Value, channels: int, r: ir.Value, qb: ir.Value,
                   static: bool, tiles: list[tuple[int, int]],
                   accs: list[list[ir.Value]], parts: list[list[ir.Value]]) -> None:
        rows: dict[tuple[int, int], ir.Value] = {}
        oks: dict[tuple[int, int], ir.Value] = {}
        for dr in sorted({d for d, _ in tiles}):
            for i in range(kh):
                ih = b.add(r, i64(dr + i - pt), name=f"ih{dr}_{i}")
                oks[dr, i] = b.and_(b.icmp_signed(">=", ih, i64(0)),
                                    b.icmp_signed("<", ih, i64(h)))
                rows[dr, i] = b.select(oks[dr, i], ih, i64(0))
        # Column masks are constants; a row outside the input reads the zero row instead
        # (a runtime mask per row and tap would not fit the mask registers).
        masks = [[lanes_valid(q0 if static else None, j) for j in range(kw)]
                 for _, q0 in tiles]
        cols = [b.add(qb, i64(q0)) for _, q0 in tiles]

        def taps(c: ir.Value, first: int, stop: int) -> None:
            plane = b.gep(x.ptr, [linear_index(b, [n, c, i64(0), i64(0)], x.strides)],
                          source_etype=F32)
            row_ptr: dict[tuple[int, int], ir.Value] = {}
            for key, ih in rows.items():
                at = b.gep(plane, [b.mul(ih, i64(x.strides[2]))], source_etype=F32)
                row_ptr[key] = b.select(oks[key], at, zero_row) if zero_row is not None else at
            for t in range(first, stop):
                i, j = divmod(t, kw)
                xs = [b.call(mload, [b.gep(row_ptr[dr, i], [b.add(cols[g], i64(j - pl))],
                                           source_etype=F32),
                                     align, masks[g][j], zero])
                      for g, (dr, _) in enumerate(tiles)]
                for u in range(channels):
                    wv = splat(b, w.load(b, [b.add(o0, i64(u)), c, i64(i), i64(j)]), LANES)
                    for g in range(len(tiles)):
                        b.store(fma(b, wv, xs[g], b.load(accs[u][g])), accs[u][g])

        for s, segs in enumerate(slices):
            for row_accs in accs:
                for acc in row_accs:
                    b.store(zero, acc)
            for chan, first, stop, count in segs:
                if chan is None:
                    with for_range(b, first, stop, name=f"ic{s}") as c:
                        taps(c, 0, kh * kw)
                else:
                    taps(i64(chan), first, stop)
            last = s == len(slices) - 1
            for u in range(channels):
                o = b.add(o0, i64(u))
                for g, (dr, q0) in enumerate(tiles):
                    v = b.load(accs[u][g])
                    if s:  # the output so far plus this slice's sums, as MLAS adds them
                        v = b.fadd(b.load(parts[u][g]), v)
                    if not last:
                        b.store(v, parts[u][g])
                        continue
                    if bias is not None:
                        v = b.fadd(v, splat(b, bias.load(b, [o]), LANES))
                    v = apply_activation(vec_ops(ctx, LANES), v, a.act)
                    lin = y_index(n, o, b.add(r, i64(dr)), cols[g])
                    flags = [q0 + lane < ow for lane in range(LANES)] if static \
                        else [True] * LANES
                    if a.quantize is None:
                        at = b.gep(y.ptr, [lin], source_etype=F32)
                        b.call(mstore, [v, at, align, _lane_mask(flags)])
                    else:
                        at = b.gep(y.ptr, [lin], source_etype=ir.IntType(8))
                        q = quantize_vector(b, v, a.quantize, LANES)
                        if sum(flags) == 1:  # see store_one_byte_lane
                            store_one_byte_lane(b, q, at, flags.index(True))
                        else:
                            b.call(qstore, [q, at, ir.Constant(I32, 1), _lane_mask(flags)])

    for tiles, units, row_first, row_step, col_step in _tile_kinds(oh, ow, flat):
        block = max(1, min(MAX_CHANNELS, MAX_ACCUMULATORS // len(tiles), oc))
        full, tail = divmod(oc, block)
        for count, channels, first in ((full, block, 0), (1 if tail else 0, tail, full * block)):
            if not count:
                continue
            accs = [[entry_alloca(b, vt, f"acc{channels}_{u}_{g}") for g in range(len(tiles))]
                    for u in range(channels)]
            parts = [[entry_alloca(b, vt, f"part{channels}_{u}_{g}")
                      for g in range(len(tiles))] for u in range(channels)]
            with ctx.parallel_for(n_batch * count * units, name=f"tiles{channels}") as unit:
                n = b.sdiv(unit, i64(count * units), name="n")
                rest = b.srem(unit, i64(count * units))
                o0 = b.add(b.mul(b.sdiv(rest, i64(units)), i64(channels)), i64(first),
                           name="o0")
                pos = b.srem(rest, i64(units), name="pos")
                r = b.add(b.mul(pos, i64(row_step)), i64(row_first), name="r")
                qb = b.mul(pos, i64(col_step), name="qb")
                unit_block(n, o0, channels, r, qb, col_step == 0, tiles, accs, parts)
