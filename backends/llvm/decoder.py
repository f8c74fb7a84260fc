"""The native weight decoder (issue 21, plan §4.3): one LLVM IR function that rebuilds the
decoded weight image from the container, bit for bit as ``sqzc.weights.reference_decoder``.

``emit_decoder(module)`` adds

    i32 sqz_decode_weights(ptr container, i64 container_bytes,
                           ptr image, i64 image_bytes, ptr scratch)

The caller passes an all-zero ``image`` of ``image_bytes`` (the library's ``.bss``) and
``DECODER_SCRATCH_BYTES`` of ``scratch`` (any contents, 16-byte aligned is plenty; 4 is
enough). The function writes each record's tensor at its ``dst_offset`` and only there:
every record's source and destination ranges are checked against the two buffer sizes
before anything is read or written, and every stream read is checked against the end of
its stream, so corrupt data cannot make it read outside ``container[0:container_bytes]``,
write outside ``image[0:image_bytes]`` or ``scratch``, or loop longer than the image is
big. It returns ``DECODE_OK`` (0) or one of:

* ``ERR_HEADER`` (1): container shorter than its header, wrong magic, version or record
  size, ``image_size`` different from ``image_bytes``, or records past the container's end;
* ``ERR_RECORD`` (2): a record's payload or tensor out of bounds, an unknown codec or dtype,
  ``nnz > n``, ``alphabet > 4096`` (or > 0 for SPARSE_RAW), ``k > 31`` or unknown flags;
* ``ERR_STREAM`` (3): a bitstream read past its end or into its padding, code lengths over
  12 or over-subscribed, an invalid Huffman code, a codebook key out of range, a position
  past the tensor's end, a value with an empty codebook or runs without a run code;
* ``ERR_CHECKSUM`` (4): the image's checksum differs from the header's.

On an error the image holds a partial decode (nothing outside it was touched); the caller
must not use it. The reference decoder raises ValueError in exactly the cases where this
returns nonzero (tests/unit/test_native_decoder.py checks every byte flip of a container).

Shape of the code (no per-tensor code; 2.4 KB of x86-64 at -O3, 1.9 KB of AArch64): a
loop over records; per codebook record a loop reading the codebook into ``scratch``, one
loop that builds either 4096-entry Huffman table (run twice: values, then runs), and one
walk over the elements.
The walk is a loop over *marks* (run-coded elements) each followed by a *fill* of values:
marking nonzeros fills the one element after each run, marking zeros fills the ``run``
elements before each zero and then the rest, and DENSE_CB is "no marks, then the rest".
A value is a Huffman symbol's codebook entry, or for SPARSE_RAW the next ``width`` bits.
Every field costs one unaligned little-endian 8-byte load (the container's bit order,
``sqzc.weights.codecs``); a Huffman symbol costs one u16 lookup. Table entries are
``symbol | length << 12`` with 0xFFFF marking an unused code; a one-entry codebook uses a
table of zeros (symbol 0, no bits), so values need no special case. Integer code only: no
floating-point instruction, no target intrinsic; the only calls LLVM may emit are
``memset``/``memcpy`` (raw records, the table fill).

Scratch layout (bytes): codebook u32[4096] at 0, value table u16[4096] at 16384, run table
u16[4096] at 24576, code-length counts / next codes u32[16] at 32768.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from sqzc.weights.codecs import (
    FLAG_MARKS_ZEROS, FLAG_POS_SHIFT, FLAG_RAW_CODEBOOK, ITEMSIZE, LENGTH_BITS, MAX_ALPHABET,
    MAX_CODE_LEN, MAX_K, PAD_BYTES, RICE_ESCAPE_BITS, RICE_QMAX, RUN_ALPHABET, RUN_ESCAPE,
    TABLE_BITS, TABLE_SIZE, Codec, PosCode)
from sqzc.weights.codecs import CODEBOOK_CODES, FLOAT_CODES, SIGNED_CODES
from sqzc.weights.container import (
    CHECKSUM_LANES, CHECKSUM_MUL, HEADER_BYTES, MAGIC, RECORD_BYTES, VERSION)

DECODE_OK = 0
ERR_HEADER = 1
ERR_RECORD = 2
ERR_STREAM = 3
ERR_CHECKSUM = 4

_CODEBOOK = 0
_VALUE_TABLE = 4 * MAX_ALPHABET
_RUN_TABLE = _VALUE_TABLE + 2 * TABLE_SIZE
_COUNTS = _RUN_TABLE + 2 * TABLE_SIZE
#: bytes of caller-provided scratch memory the decoder needs
DECODER_SCRATCH_BYTES = _COUNTS + 4 * 16
_INVALID = 0xFFFF               #: table entry of an unused code (length field 15 > 12)

I1, I8, I16, I32, I64 = (ir.IntType(w) for w in (1, 8, 16, 32, 64))
PTR = ir.PointerType()

# dtype facts as bit masks indexed by the ONNX element type (all codes < 16)
_VALID = sum(1 << c for c in CODEBOOK_CODES)
_FLOATS = sum(1 << c for c in FLOAT_CODES)
_SIGNED = sum(1 << c for c in SIGNED_CODES)
_LOG2 = sum({1: 0, 2: 1, 4: 2}[ITEMSIZE[c]] << 2 * c for c in CODEBOOK_CODES)
assert max(CODEBOOK_CODES) < 16 and MAX_CODE_LEN == TABLE_BITS == 12
assert MAGIC == b"SQZW" and CHECKSUM_LANES == 4


def _c(v: int, t: ir.IntType = I64) -> ir.Constant:
    return ir.Constant(t, v)


@dataclass
class _Loop:
    i: ir.Value             #: the induction variable (a phi in ``head``)
    head: ir.Block
    done: ir.Block


class _Emitter:
    """The builder plus the function's state. Mutable scalars live in entry-block allocas
    that LLVM's mem2reg turns into registers."""

    def __init__(self, module: ir.Module, fn: ir.Function) -> None:
        self.module, self.fn = module, fn
        self.cont, self.clen, self.img, self.ilen, self.scr = fn.args
        entry = fn.append_basic_block("entry")
        self.b = ir.IRBuilder(entry)
        self.errors = {}
        for code in (ERR_HEADER, ERR_RECORD, ERR_STREAM, ERR_CHECKSUM):
            blk = fn.append_basic_block(f"error{code}")
            ir.IRBuilder(blk).ret(_c(code, I32))
            self.errors[code] = blk
        self.cttz = self._intrinsic("llvm.cttz.i64", I64, [I64, I1])
        self.bitrev = self._intrinsic("llvm.bitreverse.i32", I32, [I32])
        self.memset = self._intrinsic("llvm.memset.p0.i64", ir.VoidType(), [PTR, I8, I64, I1])
        self.memcpy = self._intrinsic("llvm.memcpy.p0.p0.i64", ir.VoidType(),
                                      [PTR, PTR, I64, I1])
        self.src = self.lim = None      # the current stream (set per record)

    def _intrinsic(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        if name in self.module.globals:
            return self.module.globals[name]
        return ir.Function(self.module, ir.FunctionType(ret, args), name)

    # ------------------------------------------------------------------ plumbing
    def var(self, name: str, init: ir.Value | int | None = None) -> ir.Value:
        b = self.b
        entry = self.fn.entry_basic_block
        with b.goto_block(entry):
            b.position_before(entry.instructions[0])
            slot = b.alloca(I64, name=name)
        if init is not None:
            b.store(_c(init) if isinstance(init, int) else init, slot)
        return slot

    def get(self, slot: ir.Value) -> ir.Value:
        return self.b.load(slot, typ=I64)

    def set(self, slot: ir.Value, v: ir.Value | int) -> None:
        self.b.store(_c(v) if isinstance(v, int) else v, slot)

    def block(self, name: str) -> ir.Block:
        return self.fn.append_basic_block(name)

    def fail_if(self, cond: ir.Value, code: int) -> None:
        ok = self.block("ok")
        self.b.cbranch(cond, self.errors[code], ok).set_weights([1, 1 << 20])
        self.b.position_at_end(ok)

    def addr(self, base: ir.Value, off: ir.Value) -> ir.Value:
        return self.b.gep(base, [off], source_etype=I8)

    def load(self, base: ir.Value, off: ir.Value | int, ty: ir.IntType, align: int = 1,
             ext: bool = True) -> ir.Value:
        v = self.b.load(self.addr(base, _c(off) if isinstance(off, int) else off), typ=ty,
                        align=align)
        return self.b.zext(v, I64) if ext and ty is not I64 else v

    def loop(self, name: str, start: ir.Value | int, stop: ir.Value) -> _Loop:
        """``for (i = start; i < stop; i += step)`` (unsigned compare), with the builder
        left in the body; ``end_loop`` closes it (the step is given there)."""
        b = self.b
        pre, head, body, done = b.block, self.block(f"{name}.head"), self.block(name), \
            self.block(f"{name}.end")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64, name=name)
        i.add_incoming(_c(start) if isinstance(start, int) else start, pre)
        b.cbranch(b.icmp_unsigned("<", i, stop), body, done)
        b.position_at_end(body)
        return _Loop(i, head, done)

    def end_loop(self, loop: _Loop, step: ir.Value | int = 1) -> None:
        loop.i.add_incoming(self.b.add(loop.i, _c(step) if isinstance(step, int) else step),
                            self.b.block)
        self.b.branch(loop.head)
        self.b.position_at_end(loop.done)

    # ------------------------------------------------------------------ bit reader
    def peek(self, pos: ir.Value) -> ir.Value:
        """At least 57 stream bits from bit ``pos``: one unaligned 8-byte load, checked to
        end inside the stream."""
        b = self.b
        p = b.add(self.src, b.lshr(pos, _c(3)))
        self.fail_if(b.icmp_signed(">", p, self.lim), ERR_STREAM)
        return b.lshr(self.load(self.cont, p, I64), b.and_(pos, _c(7)))

    def read(self, bitpos: ir.Value, nbits: ir.Value | int) -> ir.Value:
        b = self.b
        nbits = _c(nbits) if isinstance(nbits, int) else nbits
        pos = self.get(bitpos)
        v = b.and_(self.peek(pos), b.sub(b.shl(_c(1), nbits), _c(1)))
        self.set(bitpos, b.add(pos, nbits))
        return v

    def zrice(self, bitpos: ir.Value, k: ir.Value) -> ir.Value:
        """ZRice(k): trailing zeros of ``window | 1 << 24``; 24 of them escape to 32 bits."""
        b = self.b
        pos = self.get(bitpos)
        w = self.peek(pos)
        z = b.call(self.cttz, [b.or_(w, _c(1 << RICE_QMAX)), ir.Constant(I1, 0)])
        esc = b.icmp_unsigned("==", z, _c(RICE_QMAX))
        z1 = b.add(z, _c(1))
        plain = b.or_(b.shl(z, k), b.and_(b.lshr(w, z1), b.sub(b.shl(_c(1), k), _c(1))))
        escaped = b.and_(b.lshr(w, _c(RICE_QMAX)), _c((1 << RICE_ESCAPE_BITS) - 1))
        self.set(bitpos, b.add(pos, b.select(esc, _c(RICE_QMAX + RICE_ESCAPE_BITS),
                                             b.add(z1, k))))
        return b.select(esc, escaped, plain)

    def huffman(self, bitpos: ir.Value, table: ir.Value) -> ir.Value:
        """One symbol: a lookup by the next 12 bits; 0xFFFF is an invalid code."""
        b = self.b
        pos = self.get(bitpos)
        w = self.peek(pos)
        idx = b.and_(w, _c(TABLE_SIZE - 1))
        entry = self.load(table, b.shl(idx, _c(1)), I16, align=2)
        self.fail_if(b.icmp_unsigned("==", entry, _c(_INVALID)), ERR_STREAM)
        self.set(bitpos, b.add(pos, b.lshr(entry, _c(TABLE_BITS))))
        return b.and_(entry, _c(MAX_ALPHABET - 1))


def emit_decoder(module: ir.Module, name: str = "sqz_decode_weights") -> ir.Function:
    """Add the decoder to ``module`` and return it (see the module docstring)."""
    fn = ir.Function(module, ir.FunctionType(I32, [PTR, I64, PTR, I64, PTR]), name)
    fn.attributes.add("nounwind")
    fn.attributes.add("optsize")    # -700 B at -O3 (no loop unswitching), same speed
    for arg, n in zip(fn.args, ("container", "container_bytes", "image", "image_bytes",
                                "scratch")):
        arg.name = n
    e = _Emitter(module, fn)
    b = e.b
    u = b.icmp_unsigned

    # ---------------------------------------------------------------- header
    e.fail_if(u("<", e.clen, _c(HEADER_BYTES)), ERR_HEADER)
    magic = e.load(e.cont, 0, I32)
    version = e.load(e.cont, 4, I16)
    rbytes = e.load(e.cont, 6, I16)
    bad = b.or_(u("!=", magic, _c(int.from_bytes(MAGIC, "little"))),
                b.or_(u("!=", version, _c(VERSION)), u("!=", rbytes, _c(RECORD_BYTES))))
    e.fail_if(bad, ERR_HEADER)
    e.fail_if(u("!=", e.load(e.cont, 16, I64), e.ilen), ERR_HEADER)
    count = e.load(e.cont, 8, I32)
    e.fail_if(u(">", b.add(b.mul(count, _c(RECORD_BYTES)), _c(HEADER_BYTES)), e.clen),
              ERR_HEADER)

    codebook = e.addr(e.scr, _c(_CODEBOOK))
    counts = e.addr(e.scr, _c(_COUNTS))
    bitpos = e.var("bitpos")
    key = e.var("key")
    kraft = e.var("kraft")
    mark_pos = e.var("pos")
    marks_left = e.var("marks")

    # ---------------------------------------------------------------- records
    rec_loop = e.loop("record", 0, count)
    rec = b.add(b.mul(rec_loop.i, _c(RECORD_BYTES)), _c(HEADER_BYTES))

    def field(off: int, ty: ir.IntType) -> ir.Value:
        return e.load(e.cont, b.add(rec, _c(off)), ty)

    codec, dtype, flags = field(0, I8), field(1, I8), field(2, I8)
    k_pos, k_cb = field(4, I8), field(5, I8)
    dst, src, nbytes = field(8, I64), field(16, I64), field(24, I32)
    n, nnz, alphabet = field(28, I32), field(32, I32), field(36, I32)
    e.fail_if(b.or_(u(">", src, e.clen), u(">", nbytes, b.sub(e.clen, src))), ERR_RECORD)
    room = b.sub(e.ilen, dst)
    e.fail_if(u(">", dst, e.ilen), ERR_RECORD)
    next_record = e.block("record.next")
    is_raw = u("==", codec, _c(Codec.RAW))
    with b.if_then(is_raw):
        e.fail_if(u(">", nbytes, room), ERR_RECORD)
        b.call(e.memcpy, [e.addr(e.img, dst), e.addr(e.cont, src), nbytes, ir.Constant(I1, 0)])
        b.branch(next_record)

    # codebook records: check the fields
    dsmall = b.and_(dtype, _c(15))
    bit = b.lshr(_c(_VALID), dsmall)
    bad_kind = b.or_(u("<", codec, _c(Codec.DENSE_CB)), u(">", codec, _c(Codec.SPARSE_RAW)))
    bad_kind = b.or_(bad_kind, b.or_(u(">", dtype, _c(15)),
                                     u("==", b.and_(bit, _c(1)), _c(0))))
    e.fail_if(bad_kind, ERR_RECORD)
    log2 = b.and_(b.lshr(_c(_LOG2), b.shl(dtype, _c(1))), _c(3))
    is_float = b.trunc(b.lshr(_c(_FLOATS), dtype), I1)
    is_signed = b.trunc(b.lshr(_c(_SIGNED), dtype), I1)
    bad = b.or_(u(">", b.shl(n, log2), room), u(">", nnz, n))
    bad = b.or_(bad, u(">", alphabet, _c(MAX_ALPHABET)))
    bad = b.or_(bad, u(">", b.or_(k_pos, k_cb), _c(MAX_K)))
    bad = b.or_(bad, u(">", flags, _c(15)))
    raw_values = u("==", codec, _c(Codec.SPARSE_RAW))   # values in full, no codebook
    bad = b.or_(bad, b.and_(raw_values, u("!=", alphabet, _c(0))))
    e.fail_if(bad, ERR_RECORD)

    e.src = src
    e.lim = b.sub(b.add(src, nbytes), _c(PAD_BYTES))     # last valid load offset (signed)
    e.set(bitpos, 0)
    width = b.shl(_c(8), log2)
    sign = b.shl(_c(1), b.sub(width, _c(1)))
    mask = b.sub(b.shl(_c(1), width), _c(1))

    # ---------------------------------------------------------------- codebook
    raw_cb = u("!=", b.and_(flags, _c(FLAG_RAW_CODEBOOK)), _c(0))
    e.set(key, 0)
    cb_loop = e.loop("codebook", 0, alphabet)
    full = b.or_(raw_cb, u("==", cb_loop.i, _c(0)))
    with b.if_else(full) as (then, otherwise):
        with then:
            e.set(key, e.read(bitpos, width))
        with otherwise:
            e.set(key, b.add(b.add(e.get(key), e.zrice(bitpos, k_cb)), _c(1)))
    k = e.get(key)
    flip = b.select(is_float, b.select(u("!=", b.and_(k, sign), _c(0)), sign, mask),
                    b.select(is_signed, sign, _c(0)))
    b.store(b.trunc(b.xor(k, flip), I32), e.addr(codebook, b.shl(cb_loop.i, _c(2))), align=4)
    e.end_loop(cb_loop)
    e.fail_if(u("!=", b.lshr(e.get(key), width), _c(0)), ERR_STREAM)

    # ---------------------------------------------------------------- Huffman tables
    pos_code = b.and_(b.lshr(flags, _c(FLAG_POS_SHIFT)), _c(3))
    run_huffman = u("==", pos_code, _c(PosCode.HUFFMAN))
    tables = e.loop("table", 0, b.select(run_huffman, _c(2), _c(1)))
    is_runs = u("!=", tables.i, _c(0))
    table = b.select(is_runs, e.addr(e.scr, _c(_RUN_TABLE)), e.addr(e.scr, _c(_VALUE_TABLE)))
    nsym = b.select(is_runs, _c(RUN_ALPHABET),
                    b.select(u(">=", alphabet, _c(2)), alphabet, _c(0)))
    # pass 1: count the lengths, check them and the Kraft sum
    b.call(e.memset, [counts, ir.Constant(I8, 0), _c(64), ir.Constant(I1, 0)])
    start = e.get(bitpos)
    e.set(kraft, 0)
    sym_loop = e.loop("lengths", 0, nsym)
    length = e.read(bitpos, LENGTH_BITS)
    e.fail_if(u(">", length, _c(MAX_CODE_LEN)), ERR_STREAM)
    slot = e.addr(counts, b.shl(length, _c(2)))
    b.store(b.add(b.load(slot, typ=I32, align=4), _c(1, I32)), slot, align=4)
    e.set(kraft, b.add(e.get(kraft), b.select(u("==", length, _c(0)), _c(0),
                                              b.lshr(_c(TABLE_SIZE), length))))
    e.end_loop(sym_loop)
    total = e.get(kraft)
    e.fail_if(u(">", total, _c(TABLE_SIZE)), ERR_STREAM)
    with b.if_then(u("!=", total, _c(TABLE_SIZE))):
        # an incomplete code: unused entries are invalid; a one-entry codebook (no code at
        # all) makes every entry "symbol 0, 0 bits"
        one = b.and_(b.not_(is_runs), u("==", alphabet, _c(1)))
        b.call(e.memset, [table, b.select(one, ir.Constant(I8, 0), ir.Constant(I8, 0xFF)),
                          _c(2 * TABLE_SIZE), ir.Constant(I1, 0)])
    # next canonical code per length (RFC 1951 3.2.2), in place of the counts
    code, prev = e.var("code", 0), e.var("prev", 0)
    len_loop = e.loop("nextcode", 1, _c(MAX_CODE_LEN + 1))
    slot = e.addr(counts, b.shl(len_loop.i, _c(2)))
    cnt = b.zext(b.load(slot, typ=I32, align=4), I64)
    c = b.shl(b.add(e.get(code), e.get(prev)), _c(1))
    e.set(code, c)
    e.set(prev, cnt)
    b.store(b.trunc(c, I32), slot, align=4)
    e.end_loop(len_loop)
    # pass 2: read the lengths again and fill the table
    e.set(bitpos, start)
    sym_loop = e.loop("fill", 0, nsym)
    length = e.read(bitpos, LENGTH_BITS)
    with b.if_then(u("!=", length, _c(0))):
        slot = e.addr(counts, b.shl(length, _c(2)))
        c32 = b.load(slot, typ=I32, align=4)
        b.store(b.add(c32, _c(1, I32)), slot, align=4)
        rev = b.lshr(b.zext(b.call(e.bitrev, [c32]), I64), b.sub(_c(32), length))
        entry = b.trunc(b.or_(sym_loop.i, b.shl(length, _c(TABLE_BITS))), I16)
        j_loop = e.loop("entry", rev, _c(TABLE_SIZE))     # every index whose low bits spell it
        b.store(entry, e.addr(table, b.shl(j_loop.i, _c(1))), align=2)
        e.end_loop(j_loop, b.shl(_c(1), length))
    e.end_loop(sym_loop)
    e.end_loop(tables)

    # ---------------------------------------------------------------- elements
    vtable = e.addr(e.scr, _c(_VALUE_TABLE))
    rtable = e.addr(e.scr, _c(_RUN_TABLE))
    dense = u("==", codec, _c(Codec.DENSE_CB))
    marks_zeros = u("!=", b.and_(flags, _c(FLAG_MARKS_ZEROS)), _c(0))
    fill_rest = b.or_(dense, marks_zeros)   # after the marks, values up to n
    e.set(mark_pos, 0)
    e.set(marks_left, b.select(dense, _c(0), b.select(marks_zeros, b.sub(n, nnz), nnz)))
    base = e.addr(e.img, dst)
    marks_head, fill_head, tail = e.block("marks"), e.block("fill"), e.block("tail")
    lo_slot, hi_slot, last_slot = e.var("lo"), e.var("hi"), e.var("last")
    value_slot = e.var("value")
    b.branch(marks_head)

    # one mark: a run, then the values it implies
    b.position_at_end(marks_head)
    left = e.get(marks_left)
    run_block = e.block("run")
    b.cbranch(u("==", left, _c(0)), tail, run_block)
    b.position_at_end(run_block)
    e.set(marks_left, b.sub(left, _c(1)))
    rice, huff, got_run = e.block("run.rice"), e.block("run.huffman"), e.block("run.done")
    esc = e.block("run.escape")
    sw = b.switch(pos_code, e.errors[ERR_STREAM])
    sw.add_case(_c(PosCode.RICE), rice)
    sw.add_case(_c(PosCode.HUFFMAN), huff)
    b.position_at_end(huff)
    sym = e.huffman(bitpos, rtable)
    hblock = b.block
    b.cbranch(u("==", sym, _c(RUN_ESCAPE)), esc, got_run)
    b.position_at_end(esc)
    b.branch(rice)
    b.position_at_end(rice)
    add = b.phi(I64, "run.base")
    add.add_incoming(_c(0), run_block)
    add.add_incoming(_c(RUN_ESCAPE), esc)
    r_rice = b.add(add, e.zrice(bitpos, k_pos))
    rblock = b.block
    b.branch(got_run)
    b.position_at_end(got_run)
    run = b.phi(I64, "run")
    run.add_incoming(sym, hblock)
    run.add_incoming(r_rice, rblock)
    pos = e.get(mark_pos)
    stop = b.add(pos, run)
    e.fail_if(u(">=", stop, n), ERR_STREAM)
    e.set(mark_pos, b.add(stop, _c(1)))
    # marking zeros: values [pos, stop); marking nonzeros: the value at stop
    e.set(lo_slot, b.select(marks_zeros, pos, stop))
    e.set(hi_slot, b.select(marks_zeros, stop, b.add(stop, _c(1))))
    e.set(last_slot, 0)
    b.branch(fill_head)

    # after the last mark: the rest of the values, when the marks are the zeros
    b.position_at_end(tail)
    tail_fill, done = e.block("tail.fill"), e.block("elements.done")
    b.cbranch(fill_rest, tail_fill, done)
    b.position_at_end(tail_fill)
    e.set(lo_slot, e.get(mark_pos))
    e.set(hi_slot, n)
    e.set(last_slot, 1)
    b.branch(fill_head)

    # fill values [lo, hi)
    b.position_at_end(fill_head)
    lo = e.get(lo_slot)
    body, after = e.block("fill.value"), e.block("fill.end")
    b.cbranch(u("<", lo, e.get(hi_slot)), body, after)
    b.position_at_end(body)
    with b.if_else(raw_values) as (in_full, coded):
        with in_full:
            e.set(value_slot, e.read(bitpos, width))
        with coded:
            sym = e.huffman(bitpos, vtable)
            e.set(value_slot, b.zext(b.load(e.addr(codebook, b.shl(sym, _c(2))), typ=I32,
                                            align=4), I64))
    value = b.trunc(e.get(value_slot), I32)
    out = e.addr(base, b.shl(lo, log2))
    e.set(lo_slot, b.add(lo, _c(1)))
    s4, s2, s1 = e.block("store4"), e.block("store2"), e.block("store1")
    sw = b.switch(log2, s1)
    sw.add_case(_c(2), s4)
    sw.add_case(_c(1), s2)
    for blk, ty in ((s4, I32), (s2, I16), (s1, I8)):
        b.position_at_end(blk)
        b.store(value if ty is I32 else b.trunc(value, ty), out, align=1)
        b.branch(fill_head)
    b.position_at_end(after)
    b.cbranch(u("!=", e.get(last_slot), _c(0)), done, marks_head)
    b.position_at_end(done)
    # everything read must lie before the stream's padding
    e.fail_if(u(">", e.get(bitpos), b.shl(b.select(u(">", nbytes, _c(PAD_BYTES)),
                                                  b.sub(nbytes, _c(PAD_BYTES)), _c(0)), _c(3))),
              ERR_STREAM)
    b.branch(next_record)
    b.position_at_end(next_record)
    e.end_loop(rec_loop)

    # ---------------------------------------------------------------- checksum
    lanes = [e.var(f"h{j}", 0) for j in range(CHECKSUM_LANES)]
    blocks = b.lshr(e.ilen, _c(5))
    rest = b.and_(e.ilen, _c(31))
    # the last partial block, zero-padded, goes through the same loop from scratch
    tail_buf = e.addr(e.scr, _c(0))
    b.call(e.memset, [tail_buf, ir.Constant(I8, 0), _c(32), ir.Constant(I1, 0)])
    t_loop = e.loop("tailbyte", 0, rest)
    src_off = b.add(b.shl(blocks, _c(5)), t_loop.i)
    b.store(b.load(e.addr(e.img, src_off), typ=I8), e.addr(tail_buf, t_loop.i))
    e.end_loop(t_loop)
    part_loop = e.loop("part", 0, _c(2))
    second = u("!=", part_loop.i, _c(0))
    where = b.select(second, tail_buf, e.img)
    nblk = b.select(second, b.select(u("!=", rest, _c(0)), _c(1), _c(0)), blocks)
    blk_loop = e.loop("block", 0, nblk)
    off = b.shl(blk_loop.i, _c(5))
    for j, lane in enumerate(lanes):
        w = e.load(where, b.add(off, _c(8 * j)), I64)
        e.set(lane, b.add(b.mul(e.get(lane), _c(CHECKSUM_MUL)), w))
    e.end_loop(blk_loop)
    e.end_loop(part_loop)
    h = _c(0)
    for lane in lanes:
        h = b.add(b.mul(h, _c(CHECKSUM_MUL)), e.get(lane))
    h = b.add(b.mul(h, _c(CHECKSUM_MUL)), e.ilen)
    e.fail_if(u("!=", h, e.load(e.cont, 24, I64)), ERR_CHECKSUM)
    b.ret(_c(DECODE_OK, I32))
    return fn
