"""Compressed weights in a library (issue 21): the stored container, the decoded image in
``.bss`` and ``sqz_init``, which fills it once per process.

A compressed build keeps every kernel exactly as in a raw build: kernels address
``@sqz_weights`` at the same offsets. Only where those bytes come from changes. Instead
of the weight image in ``.rodata``, the library stores a container
(``sqzc.weights.container``) of each weight constant's *source*: the tensor before
its layout steps (``ConstAttrs.recipe``: the OIHW filter before packing or the Winograd
transform), which is what compresses (sparse, few distinct values). ``@sqz_weights`` is a
zero-filled ``.bss`` array of the image's size, and ``sqz_init`` decodes the container
into a ``.bss`` staging area (``backends/llvm/decoder.py``) and then runs each constant's
layout steps into the image (``backends/llvm/recipes.py``), one straight-line call per
constant. A source of integer codes (a weight-only QDQ model's folded weights: recipe
``Dequantize`` first) is dequantized first, straight into the image or, when a packing
or Winograd step follows, into a ``.bss`` float buffer that step reads. The result is the raw build's image byte for byte (tests compare outputs).

``sqz_init`` is exported by every build (a raw build's returns 0). It runs once per
process, thread-safely: a state word (0 new, 1 decoding, 2 ready, 3 failed) taken by
compare-and-swap; the winner decodes with the floating-point environment pinned (round to
nearest, no flush-to-zero: ``fpenv.py``, so the Winograd transform rounds as at compile
time whatever the host set) and wakes the others, who wait on the word (spin,
then futex). ``sqz_run`` and ``sqz_run_pool`` call it first and return its error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from sqzc.backends.llvm.cg import I8, I32, I64, PTR, declare_intrinsic, i64
from sqzc.backends.llvm.decoder import DECODER_SCRATCH_BYTES, emit_decoder
from sqzc.backends.llvm.fpenv import pin_default_fp_environment
from sqzc.backends.llvm.recipes import (
    emit_dequantize,
    emit_dequantize_blocked,
    emit_pack_conv,
    emit_pack_qconv,
    emit_winograd,
)
from sqzc.backends.llvm.target import Target
from sqzc.backends.llvm.threads import FUTEX_WAKE_PRIVATE, futex, wait_for_change
from sqzc.ir import Graph
from sqzc.memory import align_up
from sqzc.ops import ConstAttrs
from sqzc.ops.recipes import Dequantize, PackConv, PackQConv, PadTo, Winograd, recipe_matches
from sqzc.weights import container

#: ``sqz_init``'s (and the run functions') error when the weights fail to decode.
ERR_WEIGHTS = 5
_STATE_NEW, _STATE_BUSY, _STATE_READY, _STATE_FAILED = 0, 1, 2, 3


@dataclass(frozen=True)
class Step:
    """One constant's load-time work: ``kind`` (copy, pack_conv, pack_qconv, winograd)
    from staging offset ``src`` (``nbytes`` of source) to image offset ``dst``."""

    kind: str
    src: int
    dst: int
    nbytes: int
    sizes: tuple[int, ...] = ()
    block: int = 0
    group: int = 0
    m: int = 0
    #: a Dequantize first (the source holds codes): (scales, zero points, outer, axis
    #: length, inner, signed, block); the step then reads the float32 tensor it makes
    dq: tuple[tuple[float, ...], tuple[int, ...], int, int, int, bool, int] | None = None


@dataclass(frozen=True)
class WeightPlan:
    """The container, the staging area it decodes into, and the steps to the image."""

    container: bytes
    staging_bytes: int
    scratch_bytes: int
    steps: tuple[Step, ...]
    dq_bytes: int = 0  #: the float buffer a Dequantize feeds a further step through

    @property
    def stored_bytes(self) -> int:
        """The container plus the Dequantize steps' scale and zero-point tables (read-only
        data beside it): what the weights cost in the library."""
        return len(self.container) + sum(
            4 * len(st.dq[0]) + (1 if st.dq[6] else 4) * len(st.dq[1])
            for st in self.steps if st.dq is not None)


def plan_compressed(graph: Graph, const_offsets: dict[str, int]) -> WeightPlan:
    """Sources into a staging image, coded as a container, plus the layout steps."""
    staging = bytearray()
    placed: list[tuple[int, np.ndarray]] = []
    steps: list[Step] = []
    scratch = dq_bytes = 0
    for nid, dst in const_offsets.items():
        attrs = graph.op(nid).attrs
        assert isinstance(attrs, ConstAttrs)
        recipe = attrs.recipe
        value = np.ascontiguousarray(attrs.value)
        chain = recipe.steps if recipe is not None else ()
        first = chain[0] if chain and isinstance(chain[0], Dequantize) else None
        rest = chain[1:] if first is not None else chain
        dq = None
        if recipe is not None and chain and len(rest) <= 1 and recipe_matches(recipe, value):
            source, step = np.ascontiguousarray(recipe.source), (rest[0] if rest else None)
            if first is not None:
                dq = _dq_args(first, source)
                if step is not None:
                    dq_bytes = max(dq_bytes, source.size * 4)
        else:  # stored as it is
            source, step = value, None
        src = align_up(len(staging))
        staging.extend(b"\0" * (src - len(staging)))
        staging.extend(source.tobytes())
        placed.append((src, source))
        shape = source.shape
        if isinstance(step, PackConv):
            steps.append(Step("pack_conv", src, dst, source.nbytes,
                              (shape[0], shape[1], shape[2] * shape[3]), step.block))
        elif isinstance(step, PackQConv):
            steps.append(Step("pack_qconv", src, dst, source.nbytes,
                              (shape[0], shape[1], shape[2] * shape[3]), step.block,
                              step.group))
        elif isinstance(step, Winograd):
            ocb = -(-shape[0] // step.block)
            scratch = max(scratch, ocb * step.block * shape[1] * 9 * 4)
            steps.append(Step("winograd", src, dst, source.nbytes, (shape[0], shape[1], ocb),
                              step.block, m=step.m))
        else:  # identity or PadTo: the source bytes lead the destination; padding stays 0
            assert step is None or isinstance(step, PadTo)
            steps.append(Step("copy", src, dst, source.nbytes))
        if dq is not None:
            steps[-1] = dataclasses.replace(steps[-1], dq=dq)
    staging.extend(b"\0" * (align_up(max(len(staging), 1)) - len(staging)))
    return WeightPlan(container.encode(bytes(staging), placed), len(staging), scratch,
                      tuple(steps), dq_bytes)


def _dq_args(step: Dequantize, codes: np.ndarray
             ) -> tuple[tuple[float, ...], tuple[int, ...], int, int, int, bool, int]:
    """``sqz_dequantize``'s loop bounds for ``step`` on ``codes``: one scale per axis
    index (outer x axis x inner), or the whole tensor as one row; blocked: the same
    bounds, and ``step.block``."""
    shape = codes.shape
    if len(step.scale) == 1 and not step.block:
        outer, alen, inner = 1, 1, codes.size
    else:
        outer = int(np.prod(shape[:step.axis], dtype=np.int64))
        alen, inner = shape[step.axis], int(np.prod(shape[step.axis + 1:], dtype=np.int64))
    return (step.scale, step.zero_point, outer, alen, inner, codes.dtype == np.int8,
            step.block)


def _dq_tables(module: ir.Module, key: int, scales: tuple[float, ...],
               zps: tuple[int, ...], zp_type: ir.IntType
               ) -> tuple[ir.GlobalVariable, ir.GlobalVariable]:
    """One tensor's scales (float32) and zero points (``zp_type``: int32 per axis, the
    codes' byte when blocked) as constant tables."""
    out = []
    for name, ty, vals in (("s", ir.FloatType(), [float(v) for v in scales]),
                           ("z", zp_type, [int(v) - 256 if zp_type.width == 8 and v > 127
                                           else int(v) for v in zps])):
        g = ir.GlobalVariable(module, ir.ArrayType(ty, len(vals)), f"sqz_dq{name}_{key}")
        g.linkage, g.global_constant = "internal", True
        g.initializer = ir.Constant(g.value_type, vals)
        out.append(g)
    return out[0], out[1]


def _bss(module: ir.Module, name: str, size: int) -> ir.GlobalVariable:
    g = ir.GlobalVariable(module, ir.ArrayType(I8, max(size, 1)), name)
    g.linkage = "internal"
    g.initializer = ir.Constant(g.value_type, None)  # zeroinitializer: .bss, no file bytes
    g.align = 64
    return g


def build_init(module: ir.Module, target: Target, weights: ir.GlobalVariable,
               image_bytes: int, plan: WeightPlan | None) -> ir.Function:
    """``int32_t sqz_init(void)``: decode the weights once (raw builds: nothing to do)."""
    fn = ir.Function(module, ir.FunctionType(I32, []), "sqz_init")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    if plan is None:
        b.ret(ir.Constant(I32, 0))
        return fn
    weights.initializer = ir.Constant(weights.value_type, None)  # the image: .bss
    packed = ir.GlobalVariable(module, ir.ArrayType(I8, len(plan.container)), "sqz_wpack")
    packed.linkage, packed.global_constant = "internal", True
    packed.initializer = ir.Constant(packed.value_type, bytearray(plan.container))
    packed.align = 16
    staging = _bss(module, "sqz_wstage", plan.staging_bytes)
    scratch = _bss(module, "sqz_wscratch", max(plan.scratch_bytes, DECODER_SCRATCH_BYTES))
    state = ir.GlobalVariable(module, I64, "sqz_init_state")
    state.linkage, state.initializer = "internal", ir.Constant(I64, _STATE_NEW)
    decode = emit_decoder(module, "sqz_decode_weights")
    decode.linkage = "internal"

    cur = b.load_atomic(state, "acquire", 8, typ=I64)
    ready, slow = fn.append_basic_block("ready"), fn.append_basic_block("slow")
    b.cbranch(b.icmp_unsigned("==", cur, i64(_STATE_READY)), ready, slow)
    b.position_at_end(ready)
    b.ret(ir.Constant(I32, 0))

    b.position_at_end(slow)
    claim = b.cmpxchg(state, i64(_STATE_NEW), i64(_STATE_BUSY), "acq_rel", "acquire")
    won = b.extract_value(claim, 1)
    work, wait = fn.append_basic_block("decode"), fn.append_basic_block("wait")
    b.cbranch(won, work, wait)

    b.position_at_end(wait)  # another thread decodes (or did): wait until it is done
    seen = b.extract_value(claim, 0)
    busy, settled = fn.append_basic_block("busy"), fn.append_basic_block("settled")
    b.cbranch(b.icmp_unsigned("==", seen, i64(_STATE_BUSY)), busy, settled)
    b.position_at_end(busy)
    after = wait_for_change(module, fn, b, state, i64(_STATE_BUSY), "init")
    busy_end = b.block
    b.branch(settled)
    b.position_at_end(settled)
    final = b.phi(I64)
    final.add_incoming(seen, wait)
    final.add_incoming(after, busy_end)
    b.ret(b.select(b.icmp_unsigned("==", final, i64(_STATE_READY)), ir.Constant(I32, 0),
                   ir.Constant(I32, ERR_WEIGHTS)))

    b.position_at_end(work)
    restore_fp_environment = pin_default_fp_environment(module, b)

    def at(g: ir.GlobalVariable, offset: int) -> ir.Value:
        return b.gep(g, [i64(0), i64(offset)], source_etype=g.value_type)

    rc = b.call(decode, [at(packed, 0), i64(len(plan.container)), at(staging, 0),
                         i64(plan.staging_bytes), at(scratch, 0)])
    steps_bb, finish = fn.append_basic_block("steps"), fn.append_basic_block("finish")
    decoded = b.block
    b.cbranch(b.icmp_unsigned("==", rc, ir.Constant(I32, 0)), steps_bb, finish)
    b.position_at_end(steps_bb)
    made: dict[str, ir.Function] = {}

    def get(key: str, build: Callable[[], ir.Function]) -> ir.Function:
        if key not in made:
            made[key] = build()
        return made[key]

    memcpy = declare_intrinsic(module, "llvm.memcpy.p0.p0.i64", ir.VoidType(),
                               [PTR, PTR, I64, ir.IntType(1)])
    dq_buf = _bss(module, "sqz_wdq", plan.dq_bytes) if plan.dq_bytes else None
    for s in plan.steps:
        src, dst = at(staging, s.src), at(weights, s.dst)
        if s.dq is not None:  # codes -> float32: into the image, or the buffer a step reads
            scales, zps, outer, alen, inner, signed, block = s.dq
            tables = _dq_tables(module, s.dst, scales, zps, I8 if block else I32)
            out = dst if s.kind == "copy" else at(dq_buf, 0)  # type: ignore[arg-type]
            if block:
                b.call(get(f"dqb{signed}",
                           lambda signed=signed: emit_dequantize_blocked(module, signed)),
                       [src, out, i64(outer), i64(alen), i64(inner), i64(block), *tables])
            else:
                b.call(get(f"dq{signed}",
                           lambda signed=signed: emit_dequantize(module, signed)),
                       [src, out, i64(outer), i64(alen), i64(inner), *tables])
            if s.kind == "copy":
                continue
            src = out
        if s.kind == "copy":
            b.call(memcpy, [dst, src, i64(s.nbytes), ir.Constant(ir.IntType(1), 0)])
        elif s.kind == "pack_conv":
            b.call(get(f"pc{s.block}", lambda s=s: emit_pack_conv(module, s.block)),
                   [src, dst, *map(i64, s.sizes)])
        elif s.kind == "pack_qconv":
            b.call(get(f"pq{s.block}_{s.group}",
                       lambda s=s: emit_pack_qconv(module, s.block, s.group)),
                   [src, dst, *map(i64, s.sizes)])
        else:  # winograd: pack into the scratch, then transform into the image
            oc, ic, ocb = s.sizes
            pack = get(f"pc{s.block}", lambda s=s: emit_pack_conv(module, s.block))
            transform = get(f"wg{s.m}_{s.block}", lambda s=s: emit_winograd(module, s.block, s.m))
            tmp = at(scratch, 0)
            memset = declare_intrinsic(module, "llvm.memset.p0.i64", ir.VoidType(),
                                       [PTR, I8, I64, ir.IntType(1)])
            b.call(memset, [tmp, ir.Constant(I8, 0), i64(ocb * s.block * ic * 9 * 4),
                            ir.Constant(ir.IntType(1), 0)])
            b.call(pack, [src, tmp, i64(oc), i64(ic), i64(9)])
            b.call(transform, [tmp, dst, i64(ocb), i64(ic)])
    steps_end = b.block
    b.branch(finish)
    b.position_at_end(finish)
    ok = b.phi(ir.IntType(1))
    ok.add_incoming(ir.Constant(ir.IntType(1), 0), decoded)
    ok.add_incoming(ir.Constant(ir.IntType(1), 1), steps_end)
    restore_fp_environment(b)
    b.store_atomic(b.select(ok, i64(_STATE_READY), i64(_STATE_FAILED)), state, "release", 8)
    futex(module, b, state, FUTEX_WAKE_PRIVATE, i64(0x7FFFFFFF))
    b.ret(b.select(ok, ir.Constant(I32, 0), ir.Constant(I32, ERR_WEIGHTS)))
    return fn
