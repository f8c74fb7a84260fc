"""Lossless codecs for weight tensors, the per-tensor codec choice, and the zero-order bound.

Pruned and weight-shared models (the paper's Deep Compression SqueezeNet) have two kinds of
redundancy: most weights are zero, and the nonzero ones take a small number of distinct
values. A tensor is stored in one of three ways (``Codec``). The encoder picks whichever
needs the fewest bytes:

* ``RAW``: the little-endian bytes, copied as they are;
* ``DENSE_CB``: a codebook of the distinct values plus a canonical Huffman code of every
  element's codebook index;
* ``SPARSE_CB``: the same, for the nonzero elements only, plus their positions as run
  lengths. "Zero" means the all-zero bit pattern, so -0.0 is an ordinary codebook value and
  every tensor round-trips bit for bit (NaN payloads and denormals too);
* ``SPARSE_RAW``: the positions as in ``SPARSE_CB``, and each nonzero element's bit
  pattern in full (no codebook): a pruned tensor whose values are all distinct (pruned,
  not weight-shared), where a codebook would cost more than the values.

Bit order (the native decoder depends on it; ``pack_fields`` writes, and
``reference_decoder.BitReader`` reads). Every bitstream is LSB-first: a field of
``n`` bits takes the next ``n`` bits of the stream, its least significant bit first, and bit
``i`` of the stream is bit ``i % 8`` of byte ``i // 8``. A reader at bit ``p`` refills with
one unaligned little-endian 8-byte load from byte ``p >> 3`` shifted right by ``p & 7``.
That gives at least 57 valid bits (``WINDOW_BITS``), and no field is longer than 56 bits,
so each field needs one refill. Every nonempty bitstream ends with 8 zero bytes
(``PAD_BYTES``), so the load never leaves the stream.

Huffman codes are canonical (the deflate assignment: shorter codes first, then symbol
order). The length limit is ``MAX_CODE_LEN`` = 12, enforced by package-merge. That limit
lets the decoder make one lookup per symbol in a 4096-entry table indexed by the next 12
stream bits. The table is built from the code lengths alone (``decode_table``), and the
encoder writes each code bit-reversed so that the lookup works on LSB-first bits. For
the same reason an alphabet may have at most 4096 symbols. A tensor with more distinct
values cannot use a codebook codec, and the choice falls back to ``RAW``.

Integers that are usually small but unbounded (run lengths, codebook key gaps, run escape
remainders) use a limited Rice code, ``ZRice(k)``. Let ``q = x >> k``. If ``q < 24``, the
code is ``q`` zero bits, a one bit, then the low ``k`` bits of ``x``. Otherwise it is 24
zero bits and then ``x`` in 32 bits. The decoder counts trailing zeros of
``window | 1 << 24`` and never loops over long unary runs. Codes take at most 56 bits.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import IntEnum
from operator import itemgetter

import numpy as np

MAX_CODE_LEN = 12
TABLE_BITS = 12                 #: Huffman decode table index bits (= MAX_CODE_LEN)
TABLE_SIZE = 1 << TABLE_BITS
MAX_ALPHABET = 1 << MAX_CODE_LEN
LENGTH_BITS = 4                 #: one code length per symbol, 0 = unused
RUN_ALPHABET = 64               #: run symbols 0..62 are literal runs, 63 escapes
RUN_ESCAPE = 63
RICE_QMAX = 24                  #: a ZRice quotient >= this is escaped
RICE_ESCAPE_BITS = 32
MAX_K = 31
WINDOW_BITS = 57                #: valid bits after one refill
PAD_BYTES = 8
RECORD_BYTES = 56               #: the container's fixed record, counted in each tensor's size


class Codec(IntEnum):
    RAW = 0
    DENSE_CB = 1
    SPARSE_CB = 2
    SPARSE_RAW = 3


class PosCode(IntEnum):
    NONE = 0        #: no marked element (every element is a value, or none is)
    HUFFMAN = 1     #: Huffman over runs capped at 63, then an escape ZRice(k_pos) of run - 63
    RICE = 2        #: ZRice(k_pos) of every run


FLAG_MARKS_ZEROS = 1            #: the runs locate the zero elements (else the nonzero ones)
FLAG_POS_SHIFT = 1              #: bits 1-2: PosCode
FLAG_RAW_CODEBOOK = 8           #: codebook keys stored in full instead of Rice deltas

#: ONNX TensorProto element type of every dtype the container records (0 = opaque bytes).
DTYPE_CODES: dict[np.dtype, int] = {
    np.dtype("<f4"): 1, np.dtype("u1"): 2, np.dtype("i1"): 3, np.dtype("<u2"): 4,
    np.dtype("<i2"): 5, np.dtype("<i4"): 6, np.dtype("<i8"): 7, np.dtype("?"): 9,
    np.dtype("<f2"): 10, np.dtype("<f8"): 11, np.dtype("<u4"): 12, np.dtype("<u8"): 13}
ITEMSIZE = {code: dt.itemsize for dt, code in DTYPE_CODES.items()} | {0: 1}
FLOAT_CODES = frozenset({1, 10})
SIGNED_CODES = frozenset({3, 5, 6})
#: dtypes whose bit patterns are at most 32 bits: the ones a codebook codec can hold
CODEBOOK_CODES = FLOAT_CODES | SIGNED_CODES | {2, 4, 12}


# ----------------------------------------------------------------------------- keys

def to_keys(bits: np.ndarray, code: int) -> np.ndarray:
    """Bit patterns (uint64) -> integer keys whose order is the values' numeric order.

    Floats: a positive pattern gets the sign bit set, a negative one is complemented (the
    sign-flip trick), so -0.0 sorts just below +0.0 and NaNs sort past the infinities.
    Signed ints flip the sign bit; unsigned ints are their own keys. Sorted keys have small
    gaps, which the codebook stores as Rice-coded deltas.
    """
    width = 8 * ITEMSIZE[code]
    sign, mask = np.uint64(1 << (width - 1)), np.uint64((1 << width) - 1)
    if code in FLOAT_CODES:
        return np.where(bits & sign, ~bits & mask, bits | sign)
    if code in SIGNED_CODES:
        return bits ^ sign
    return bits.copy()


def from_key(key: int, code: int) -> int:
    """The inverse of ``to_keys`` for one key, as the decoder computes it."""
    width = 8 * ITEMSIZE[code]
    sign, mask = 1 << (width - 1), (1 << width) - 1
    if code in FLOAT_CODES:
        return key ^ sign if key & sign else ~key & mask
    if code in SIGNED_CODES:
        return key ^ sign
    return key


def bit_patterns(a: np.ndarray) -> np.ndarray:
    """The elements of ``a`` (C order) as uint64 bit patterns."""
    a = np.ascontiguousarray(a).reshape(-1)
    return a.view(np.dtype(f"u{a.dtype.itemsize}")).astype(np.uint64)


# ----------------------------------------------------------------------------- bit I/O

def pack_fields(values: np.ndarray, lengths: np.ndarray) -> bytes:
    """The bit writer: fields ``values[i]`` of ``lengths[i]`` (<= 57) bits, in order, LSB-first,
    the last byte zero-filled, then ``PAD_BYTES`` zeros (no fields: b"").

    It is vectorized because the paper's model has about a million fields. Fields never
    overlap, so each one is added into the (at most two) 64-bit words it touches without
    carries.
    """
    values = np.asarray(values, np.uint64)
    lengths = np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    if not total:
        return b""
    if (lengths > WINDOW_BITS).any() or (values >> lengths.astype(np.uint64)).any():
        raise ValueError("a field does not fit its length")
    offsets = np.cumsum(lengths) - lengths
    word, shift = offsets >> 6, (offsets & 63).astype(np.uint64)
    words = np.zeros(int(word[-1]) + 2, np.uint64)
    np.add.at(words, word, values << shift)
    np.add.at(words, word + 1, (values >> np.uint64(1)) >> (np.uint64(63) - shift))
    return words.astype("<u8").tobytes()[: (total + 7) // 8] + bytes(PAD_BYTES)


# ----------------------------------------------------------------------------- Huffman

def code_lengths(counts: np.ndarray, max_len: int = MAX_CODE_LEN) -> np.ndarray:
    """Optimal code lengths of at most ``max_len`` bits (package-merge), 0 for count 0.

    Package-merge is the exact length-limited Huffman algorithm: where plain Huffman
    would go deeper than 12 bits (the paper's model reaches 17), it finds the cheapest
    code that fits the table. A single used symbol gets length 1. More than
    ``2**max_len`` used symbols cannot fit and raise ValueError.
    """
    counts = np.asarray(counts, np.int64)
    lengths = np.zeros(counts.size, np.int64)
    used = np.flatnonzero(counts > 0)
    if used.size > 1 << max_len:
        raise ValueError(f"{used.size} symbols do not fit {max_len}-bit codes")
    if used.size <= 1:
        lengths[used] = 1
        return lengths
    leaves = sorted(((int(counts[s]), int(s)) for s in used), key=itemgetter(0))
    items: list[tuple[int, object]] = list(leaves)
    for _ in range(max_len - 1):
        packages = [(items[i][0] + items[i + 1][0], (items[i], items[i + 1]))
                    for i in range(0, len(items) - 1, 2)]
        items = sorted(leaves + packages, key=itemgetter(0))   # stable: leaves first
    stack = [node for _, node in items[: 2 * used.size - 2]]
    while stack:
        node = stack.pop()
        if isinstance(node, int):
            lengths[node] += 1
        else:
            stack.extend(child for _, child in node)
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical codes (deflate order), bit-reversed for the LSB-first stream."""
    lengths = np.asarray(lengths, np.int64)
    next_code = _first_codes(lengths)
    codes = np.zeros(lengths.size, np.uint64)
    for s, n in enumerate(lengths.tolist()):
        if n:
            codes[s] = _reverse(next_code[n], n)
            next_code[n] += 1
    return codes


def decode_table(lengths: list[int] | np.ndarray) -> list[int]:
    """The decoder's 4096-entry table, from the code lengths alone (as native code builds it).

    Entry ``i`` holds ``symbol | length << 12`` for the code that the low ``length`` bits
    of ``i`` spell in stream order, or 0 where no code matches (only possible for a
    one-symbol code). Over-subscribed lengths raise ValueError.
    """
    lengths = [int(n) for n in lengths]
    if len(lengths) > MAX_ALPHABET or any(not 0 <= n <= MAX_CODE_LEN for n in lengths):
        raise ValueError("bad Huffman code lengths")
    if sum(TABLE_SIZE >> n for n in lengths if n) > TABLE_SIZE:
        raise ValueError("over-subscribed Huffman code lengths")
    next_code = _first_codes(np.asarray(lengths, np.int64))
    table = [0] * TABLE_SIZE
    for s, n in enumerate(lengths):
        if n:
            r = _reverse(next_code[n], n)
            next_code[n] += 1
            table[r::1 << n] = [s | n << TABLE_BITS] * (TABLE_SIZE >> n)
    return table


def _first_codes(lengths: np.ndarray) -> list[int]:
    """First canonical code of each length (RFC 1951, 3.2.2)."""
    bl_count = np.bincount(lengths, minlength=MAX_CODE_LEN + 1).tolist()
    bl_count[0] = 0
    next_code, code = [0] * (len(bl_count) + 1), 0
    for bits in range(1, len(bl_count)):
        code = (code + bl_count[bits - 1]) << 1
        next_code[bits] = code
    return next_code


def _reverse(code: int, n: int) -> int:
    return int(f"{code:0{n}b}"[::-1], 2)


# ----------------------------------------------------------------------------- ZRice

def zrice_fields(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """ZRice(k) codes of ``x`` (each < 2**32) as (field values, field lengths)."""
    x = np.asarray(x, np.uint64)
    if x.size and int(x.max()) >> RICE_ESCAPE_BITS:
        raise ValueError("ZRice values must be below 2**32")
    q = (x >> np.uint64(k)).astype(np.int64)
    escape = q >= RICE_QMAX
    qc = np.minimum(q, RICE_QMAX - 1).astype(np.uint64)
    plain = (np.uint64(1) << qc) | ((x & np.uint64((1 << k) - 1)) << (qc + np.uint64(1)))
    values = np.where(escape, x << np.uint64(RICE_QMAX), plain)
    return values, np.where(escape, RICE_QMAX + RICE_ESCAPE_BITS, q + 1 + k)


def best_zrice(x: np.ndarray) -> tuple[int, int]:
    """(k, bits) of the cheapest ZRice parameter for ``x``; ties take the smaller k."""
    q = np.asarray(x, np.uint64).astype(np.int64)
    costs = [int(np.where(q >> k >= RICE_QMAX, RICE_QMAX + RICE_ESCAPE_BITS, (q >> k) + 1 + k)
                 .sum()) for k in range(MAX_K + 1)]
    k = int(np.argmin(costs))
    return k, costs[k]


# ----------------------------------------------------------------------------- tensors

@dataclass(frozen=True)
class StoredSize:
    """Bytes a tensor takes in the container (``total``, record included), and their split.

    Values, positions and codebook are exact bit counts. Huffman length tables count with
    what they code (plan §1.3 counts them the same way). ``header`` is the rest: the
    record, the last partial byte and the stream padding.
    """

    total: int
    values_bits: int = 0
    positions_bits: int = 0
    codebook_bits: int = 0

    @property
    def values(self) -> float:
        return self.values_bits / 8

    @property
    def positions(self) -> float:
        return self.positions_bits / 8

    @property
    def codebook(self) -> float:
        return self.codebook_bits / 8

    @property
    def header(self) -> float:
        return self.total - (self.values_bits + self.positions_bits + self.codebook_bits) / 8


@dataclass(frozen=True)
class EncodedTensor:
    """One tensor's record fields and payload (the container adds the offsets)."""

    codec: Codec
    dtype: int
    shape: tuple[int, ...]
    n: int
    nnz: int                #: elements whose bit pattern is not all zero
    size: StoredSize
    payload: bytes
    alphabet: int = 0       #: codebook entries
    flags: int = 0
    k_pos: int = 0          #: ZRice parameter of the runs (Rice) or of the run escapes (Huffman)
    k_cb: int = 0           #: ZRice parameter of the codebook key deltas


class _Stream:
    """The fields of one codebook stream: a prefix in order, then data in key order."""

    def __init__(self) -> None:
        self.head: list[tuple[np.ndarray, np.ndarray]] = []
        self.data = [(np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.int64))]
        self.bits = {"values": 0, "positions": 0, "codebook": 0}

    def add_head(self, part: str, values: np.ndarray, lengths: np.ndarray) -> None:
        self.add_data(part, None, values, lengths)

    def add_data(self, part: str, keys: np.ndarray | None, values: np.ndarray,
                 lengths: np.ndarray) -> None:
        values = np.asarray(values, np.uint64)
        lengths = np.broadcast_to(np.asarray(lengths, np.int64), values.shape)
        if keys is None:
            self.head.append((values, lengths))
        else:
            self.data.append((np.asarray(keys, np.int64), values, lengths))
        self.bits[part] += int(lengths.sum())

    def size(self) -> StoredSize:
        total = sum(self.bits.values())
        return StoredSize(RECORD_BYTES + ((total + 7) // 8 + PAD_BYTES if total else 0),
                          self.bits["values"], self.bits["positions"], self.bits["codebook"])

    def pack(self) -> bytes:
        keys, values, lengths = (np.concatenate(column) for column in zip(*self.data))
        order = np.argsort(keys, kind="stable")
        return pack_fields(np.concatenate([v for v, _ in self.head] + [values[order]]),
                           np.concatenate([n for _, n in self.head] + [lengths[order]]))


def _add_codebook(stream: _Stream, keys: np.ndarray, code: int) -> tuple[int, int]:
    """Sorted distinct keys: the first in full and Rice-coded gaps, or all in full when that
    is smaller. Returns (flags, k_cb)."""
    width = 8 * ITEMSIZE[code]
    if not keys.size:
        return 0, 0
    gaps = np.diff(keys) - np.uint64(1)
    k, gap_bits = best_zrice(gaps)
    if width + gap_bits < width * keys.size:
        values, lengths = zrice_fields(gaps, k)
        stream.add_head("codebook", np.concatenate([keys[:1], values]),
                        np.concatenate([[width], lengths]))
        return 0, k
    stream.add_head("codebook", keys, np.full(keys.size, width))
    return FLAG_RAW_CODEBOOK, 0


def _add_values(stream: _Stream, positions: np.ndarray, index: np.ndarray,
                alphabet: int) -> None:
    """Length table (4 bits per symbol) and one Huffman code per value, keyed 4*pos + 2.
    A one-entry codebook needs neither."""
    if alphabet < 2:
        return
    lengths = code_lengths(np.bincount(index, minlength=alphabet))
    stream.add_head("values", lengths, np.full(alphabet, LENGTH_BITS))
    stream.add_data("values", 4 * positions + 2, canonical_codes(lengths)[index],
                    lengths[index])


def _positions_cost(marked: np.ndarray) -> tuple[int, PosCode, int]:
    """(bits, code, k) of the cheaper run coding of the marked positions."""
    if not marked.size:
        return 0, PosCode.NONE, 0
    runs = np.diff(marked, prepend=-1) - 1
    k_rice, rice = best_zrice(runs)
    counts = np.bincount(np.minimum(runs, RUN_ESCAPE), minlength=RUN_ALPHABET)
    k_esc, esc = best_zrice(runs[runs >= RUN_ESCAPE] - RUN_ESCAPE)
    huff = RUN_ALPHABET * LENGTH_BITS + int((counts * code_lengths(counts)).sum()) + esc
    return (huff, PosCode.HUFFMAN, k_esc) if huff < rice else (rice, PosCode.RICE, k_rice)


def _add_positions(stream: _Stream, marked: np.ndarray, code: PosCode, k: int) -> None:
    """Runs before each marked element, keyed 4 * (start of the run) (+1 for an escape)."""
    if code is PosCode.NONE:
        return
    runs = np.diff(marked, prepend=-1) - 1
    keys = 4 * (marked - runs)
    if code is PosCode.RICE:
        stream.add_data("positions", keys, *zrice_fields(runs, k))
        return
    symbols = np.minimum(runs, RUN_ESCAPE)
    lengths = code_lengths(np.bincount(symbols, minlength=RUN_ALPHABET))
    stream.add_head("positions", lengths, np.full(RUN_ALPHABET, LENGTH_BITS))
    stream.add_data("positions", keys, canonical_codes(lengths)[symbols], lengths[symbols])
    escaped = runs >= RUN_ESCAPE
    stream.add_data("positions", keys[escaped] + 1, *zrice_fields(runs[escaped] - RUN_ESCAPE, k))


def _codebook_encoding(codec: Codec, keys: np.ndarray, code: int, shape: tuple[int, ...],
                       nnz: int, beat_bits: float = math.inf
                       ) -> tuple[EncodedTensor, _Stream] | None:
    """DENSE_CB or SPARSE_CB for the element keys, None if the alphabet is over 4096 or
    its size cannot be under ``beat_bits`` (the best option's so far): with the codebook coded,
    the record, padding and values at their entropy already reach it. No prefix code beats the entropy,
    so that test (numpy) spares the code-length search (Python) on dense float tensors,
    whose codebooks never win: it was 2 of the 2.3 s a dense SqueezeNet spent here."""
    nonzero = keys != to_keys(np.zeros(1, np.uint64), code)[0]
    coded = np.arange(keys.size) if codec is Codec.DENSE_CB else np.flatnonzero(nonzero)
    uniq, index = np.unique(keys[coded], return_inverse=True)
    if uniq.size > MAX_ALPHABET:
        return None
    stream = _Stream()
    flags, k_cb = _add_codebook(stream, uniq, code)
    counts = np.bincount(index.reshape(-1), minlength=uniq.size).astype(np.float64)
    total = float(counts.sum())
    entropy = total * math.log2(total) - float((counts * np.log2(counts)).sum()) if total \
        else 0.0
    if 8 * (RECORD_BYTES + PAD_BYTES) + sum(stream.bits.values()) + entropy >= beat_bits:
        return None
    _add_values(stream, coded, index.reshape(-1), uniq.size)
    k_pos = 0
    if codec is Codec.SPARSE_CB:
        marks, k_pos = _add_sparse_positions(stream, nonzero)
        flags |= marks
    enc = EncodedTensor(codec, code, shape, keys.size, nnz, stream.size(), b"", uniq.size,
                        flags, k_pos, k_cb)
    return enc, stream


def _add_sparse_positions(stream: _Stream, nonzero: np.ndarray) -> tuple[int, int]:
    """Mark the nonzeros or the zeros, whichever is cheaper; returns (flags, k_pos)."""
    polarities = [(0, np.flatnonzero(nonzero)), (FLAG_MARKS_ZEROS, np.flatnonzero(~nonzero))]
    (_, pos, k_pos), marks, marked = min(((_positions_cost(m), f, m) for f, m in polarities),
                                         key=lambda o: o[0][0])
    _add_positions(stream, marked, pos, k_pos)
    return marks | pos << FLAG_POS_SHIFT, k_pos


def _sparse_raw_encoding(bits: np.ndarray, code: int, shape: tuple[int, ...], nnz: int
                         ) -> tuple[EncodedTensor, _Stream]:
    """SPARSE_RAW: run-coded positions and the nonzero bit patterns in full."""
    nonzero = bits != 0
    coded = np.flatnonzero(nonzero)
    stream = _Stream()
    stream.add_data("values", 4 * coded + 2, bits[coded], 8 * ITEMSIZE[code])
    flags, k_pos = _add_sparse_positions(stream, nonzero)
    return EncodedTensor(Codec.SPARSE_RAW, code, shape, bits.size, nnz, stream.size(), b"", 0,
                         flags, k_pos, 0), stream


def encode_tensor(a: np.ndarray, codec: Codec | None = None) -> EncodedTensor:
    """The smallest encoding of ``a`` (ties go to the simpler codec), or the given codec.

    Codebook codecs need a dtype of at most 32 bits (``CODEBOOK_CODES``), 1 <= n < 2**32,
    and at most 4096 codebook entries; SPARSE_RAW the same dtypes and sizes. Otherwise
    the tensor is stored raw, and asking for another codec raises ValueError.
    """
    a = np.asarray(a)
    if a.dtype.hasobject or a.dtype.fields is not None:
        raise ValueError(f"cannot store dtype {a.dtype}")
    shape = tuple(int(d) for d in a.shape)
    a = np.ascontiguousarray(a, a.dtype.newbyteorder("<") if a.dtype.byteorder == ">"
                             else a.dtype)
    code = DTYPE_CODES.get(a.dtype, 0)      # a is little-endian now
    rows = a.reshape(-1).view(np.uint8).reshape(a.size, a.dtype.itemsize)
    nnz = int(np.count_nonzero(rows.any(axis=1))) if a.size else 0
    options: list[tuple[EncodedTensor, _Stream | None]] = [(EncodedTensor(
        Codec.RAW, code, shape, a.size, nnz, StoredSize(RECORD_BYTES + a.nbytes, 8 * a.nbytes),
        a.tobytes()), None)]
    if code in CODEBOOK_CODES and 0 < a.size < 1 << 32:
        keys = to_keys(bit_patterns(a), code)
        for kind in (Codec.DENSE_CB, Codec.SPARSE_CB):
            if codec is None and kind is Codec.SPARSE_CB and nnz == a.size:
                continue  # no zeros: the sparse coding is the dense one plus flags
            best = min(o[0].size.total for o in options)
            option = _codebook_encoding(kind, keys, code, shape, nnz,
                                        math.inf if codec is not None else 8 * best)
            if option is not None:
                options.append(option)
        if codec is Codec.SPARSE_RAW or codec is None and nnz < a.size:
            options.append(_sparse_raw_encoding(bit_patterns(a), code, shape, nnz))
    if codec is not None:
        options = [o for o in options if o[0].codec is codec]
        if not options:
            raise ValueError(f"{codec.name} cannot store this {a.dtype} tensor "
                             f"(dtype, size or alphabet over {MAX_ALPHABET})")
    enc, stream = min(options, key=lambda o: o[0].size.total)
    if stream is None:
        return enc
    enc = dataclasses.replace(enc, payload=stream.pack())
    assert RECORD_BYTES + len(enc.payload) == enc.size.total
    return enc
