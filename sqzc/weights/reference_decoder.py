"""A Python model of the native weight decoder: what it reads, in which order, and its checks.

The native decoder (plan §4.3, LLVM IR) is one generic loop driven by the records. This
module is the same loop in Python, on plain integers and bytes. Each field costs one refill
(an 8-byte load, ``BitReader.peek``). Each Huffman symbol costs one lookup in a
4096-entry table of ``symbol | length << 12`` entries, built from the 4-bit code lengths
(``decode_table``). There is no slow path. The encoder (``container.encode``) is tested
against this module, so the native decoder only has to match it.

Per record, a codebook stream reads, in order:

1. the codebook: ``alphabet`` keys ascending, either each in ``8 * itemsize`` bits
   (``FLAG_RAW_CODEBOOK``) or the first one in full, then ``alphabet - 1`` gaps
   ``key[i] - key[i-1] - 1`` as ZRice(``k_cb``). Keys map back to bit patterns with
   ``from_key``.
2. if ``alphabet >= 2``: ``alphabet`` value code lengths, 4 bits each;
3. if the positions use Huffman: 64 run code lengths, 4 bits each;
4. the elements, in flat (C) order:
   * ``DENSE_CB``: ``n`` values;
   * ``SPARSE_CB`` marking the nonzeros: ``nnz`` times (run, value). The run is the
     number of zeros skipped before the next nonzero;
   * ``SPARSE_CB`` marking the zeros: ``n - nnz`` times (run, then ``run`` values, then
     one zero, which is skipped), then values up to ``n``.

A value is ``codebook[huffman symbol]``, or ``codebook[0]`` with no bits when
``alphabet == 1``. A run is ZRice(``k_pos``), or a Huffman symbol ``s``, plus
ZRice(``k_pos``) when ``s == 63``. A native decoder writes only the values: the image
is already zero.

Every inconsistency raises ValueError: bad header, a record outside the container or the
image, a read past a stream's end or into its padding, an invalid Huffman code, a position
past ``n``, or a checksum mismatch. Corrupt data therefore never writes outside the byte
range its record declares, and that range is checked to lie inside the image.
"""

from __future__ import annotations

import numpy as np

from sqzc.weights.codecs import (
    CODEBOOK_CODES, DTYPE_CODES, FLAG_MARKS_ZEROS, FLAG_POS_SHIFT, FLAG_RAW_CODEBOOK, ITEMSIZE,
    LENGTH_BITS, MAX_ALPHABET, MAX_K, PAD_BYTES, RICE_ESCAPE_BITS, RICE_QMAX, RUN_ALPHABET,
    RUN_ESCAPE, TABLE_BITS, TABLE_SIZE, Codec, EncodedTensor, PosCode, decode_table, from_key)
from sqzc.weights.container import (
    HEADER, HEADER_BYTES, MAGIC, RECORD, RECORD_BYTES, VERSION, checksum, record_shape)


class BitReader:
    """The native reader: one 8-byte little-endian load per field, at any bit position.

    ``buf[start:end]`` is one padded stream. A refill that would read past ``end`` means
    the stream is corrupt (a valid one stays inside its padding), so it raises ValueError.
    """

    def __init__(self, buf: bytes, start: int, end: int) -> None:
        self.buf, self.start, self.end, self.pos = buf, start, end, 0

    def peek(self) -> int:
        """At least ``WINDOW_BITS`` valid stream bits from the current position."""
        p = self.start + (self.pos >> 3)
        if p + 8 > self.end:
            raise ValueError("bitstream read past its end")
        return int.from_bytes(self.buf[p:p + 8], "little") >> (self.pos & 7)

    def read(self, nbits: int) -> int:
        value = self.peek() & ((1 << nbits) - 1)
        self.pos += nbits
        return value

    def huffman(self, table: list[int]) -> int:
        """One symbol: entry = symbol | length << 12; length 0 marks an unused code."""
        entry = table[self.peek() & (TABLE_SIZE - 1)]
        if not entry >> TABLE_BITS:
            raise ValueError("invalid Huffman code")
        self.pos += entry >> TABLE_BITS
        return entry & (MAX_ALPHABET - 1)

    def zrice(self, k: int) -> int:
        """One ZRice(k) integer: count trailing zeros of ``window | 1 << 24`` (cttz)."""
        window = self.peek()
        zeros = ((window | 1 << RICE_QMAX) & -(window | 1 << RICE_QMAX)).bit_length() - 1
        if zeros == RICE_QMAX:
            self.pos += RICE_QMAX + RICE_ESCAPE_BITS
            return (window >> RICE_QMAX) & ((1 << RICE_ESCAPE_BITS) - 1)
        self.pos += zeros + 1 + k
        return zeros << k | (window >> (zeros + 1)) & ((1 << k) - 1)


def decode(container: bytes, expected_size: int | None = None) -> bytes:
    """The decoded image of ``container``, checksum verified.

    ``expected_size`` is the image size the library was compiled for (the native decoder
    checks the header against it before it writes to its ``.bss`` image).
    """
    buf = bytes(container)
    if len(buf) < HEADER_BYTES:
        raise ValueError("container shorter than its header")
    magic, version, record_bytes, count, _, size, check = HEADER.unpack_from(buf)
    if magic != MAGIC or version != VERSION or record_bytes != RECORD_BYTES:
        raise ValueError(f"not a version-{VERSION} weight container")
    if expected_size is not None and size != expected_size:
        raise ValueError(f"image size {size} is not the expected {expected_size}")
    if HEADER_BYTES + count * RECORD_BYTES > len(buf):
        raise ValueError("records run past the end of the container")
    image = bytearray(size)
    for i in range(count):
        decode_record(buf, RECORD.unpack_from(buf, HEADER_BYTES + i * RECORD_BYTES), image)
    if checksum(image) != check:
        raise ValueError("weight checksum mismatch: the container is corrupt")
    return bytes(image)


def decode_tensor(enc: EncodedTensor) -> np.ndarray:
    """One encoded tensor decoded on its own (unit tests of the codecs)."""
    dtype = next((dt for dt, c in DTYPE_CODES.items() if c == enc.dtype), np.dtype("u1"))
    image = bytearray(len(enc.payload) if enc.codec is Codec.RAW else enc.n * dtype.itemsize)
    decode_record(enc.payload, (enc.codec, enc.dtype, enc.flags, len(enc.shape), enc.k_pos,
                                enc.k_cb, 0, 0, 0, len(enc.payload), enc.n, enc.nnz,
                                enc.alphabet, *record_shape(enc.shape)), image)
    return np.frombuffer(bytes(image), dtype).reshape(enc.shape)


def decode_record(buf: bytes, record: tuple[int, ...], image: bytearray) -> None:
    """Write one record's tensor into ``image`` (the fields in ``RECORD`` order)."""
    codec, dtype, flags, _, k_pos, k_cb, _, dst, src, nbytes, n, nnz, alphabet = record[:13]
    if src + nbytes > len(buf):
        raise ValueError("payload outside the container")
    if codec == Codec.RAW:
        if dst + nbytes > len(image):
            raise ValueError("raw record outside the image")
        image[dst:dst + nbytes] = buf[src:src + nbytes]
        return
    if codec not in (Codec.DENSE_CB, Codec.SPARSE_CB, Codec.SPARSE_RAW) \
            or dtype not in CODEBOOK_CODES:
        raise ValueError(f"unknown codec {codec} or dtype {dtype}")
    size = ITEMSIZE[dtype]
    raw_values = codec == Codec.SPARSE_RAW
    if (dst + n * size > len(image) or nnz > n or alphabet > MAX_ALPHABET
            or max(k_pos, k_cb) > MAX_K or flags >> 4 or raw_values and alphabet):
        raise ValueError("record fields out of range")
    reader = BitReader(buf, src, src + nbytes)
    codebook = _read_codebook(reader, dtype, alphabet, k_cb, flags & FLAG_RAW_CODEBOOK)
    values = decode_table([reader.read(LENGTH_BITS) for _ in range(alphabet)]) \
        if alphabet >= 2 else None
    pos_code = (flags >> FLAG_POS_SHIFT) & 3
    runs = decode_table([reader.read(LENGTH_BITS) for _ in range(RUN_ALPHABET)]) \
        if pos_code == PosCode.HUFFMAN else None

    def value() -> bytes:
        if raw_values:
            return reader.read(8 * size).to_bytes(size, "little")
        if values is None:
            if not alphabet:
                raise ValueError("a value with an empty codebook")
            return codebook[0]
        symbol = reader.huffman(values)
        if symbol >= alphabet:
            raise ValueError("codebook index out of range")
        return codebook[symbol]

    def run() -> int:
        if pos_code == PosCode.RICE:
            return reader.zrice(k_pos)
        if pos_code == PosCode.HUFFMAN:
            symbol = reader.huffman(runs)
            return symbol + reader.zrice(k_pos) if symbol == RUN_ESCAPE else symbol
        raise ValueError("runs without a run code")

    if codec == Codec.DENSE_CB:
        for pos in range(dst, dst + n * size, size):
            image[pos:pos + size] = value()
    elif not flags & FLAG_MARKS_ZEROS:
        pos = -1
        for _ in range(nnz):
            pos += run() + 1
            if pos >= n:
                raise ValueError("position past the end of the tensor")
            image[dst + pos * size:dst + (pos + 1) * size] = value()
    else:
        pos = 0
        for _ in range(n - nnz):
            stop = pos + run()
            if stop >= n:
                raise ValueError("position past the end of the tensor")
            for p in range(dst + pos * size, dst + stop * size, size):
                image[p:p + size] = value()
            pos = stop + 1
        for p in range(dst + pos * size, dst + n * size, size):
            image[p:p + size] = value()
    if reader.pos > 8 * max(nbytes - PAD_BYTES, 0):
        raise ValueError("stream read into its padding")


def _read_codebook(reader: BitReader, dtype: int, alphabet: int, k: int,
                   raw: int) -> list[bytes]:
    """The codebook's bit patterns as little-endian bytes, ready to copy."""
    size = ITEMSIZE[dtype]
    width = 8 * size
    keys: list[int] = []
    for i in range(alphabet):
        if raw or not i:
            keys.append(reader.read(width))
        else:
            keys.append(keys[-1] + reader.zrice(k) + 1)
    if keys and keys[-1] >> width:
        raise ValueError("codebook key out of range")
    return [from_key(key, dtype).to_bytes(size, "little") for key in keys]
