"""The weight container: a header, fixed-size records and payloads, and its encoder.

A library embeds one container (plan §4.2). At load time the decoder rebuilds the *decoded
image*, the weight bytes the kernels address. The image starts all zero (the library
keeps it in ``.bss``), and each record writes one tensor at its ``dst_offset``. Bytes that
no record covers stay zero. ``encode`` covers every nonzero byte of the image: the listed
tensors get their chosen codecs, and the other nonzero bytes get records of their own
(``uint8`` spans), so decoding always gives the image back exactly.

Layout, all little-endian, no padding between fields:

* header, ``HEADER_BYTES`` = 32: ``magic`` b"SQZW", ``u16 version`` (1), ``u16 record_bytes``
  (56), ``u32 record_count``, ``u32 reserved`` (0), ``u64 image_size``, ``u64 checksum`` (of
  the decoded image, see ``checksum``);
* ``record_count`` records of 56 bytes, in increasing ``dst_offset``: ``u8 codec``,
  ``u8 dtype`` (the ONNX element type; 0 for none), ``u8 flags``, ``u8 ndim``, ``u8 k_pos``,
  ``u8 k_cb``, ``u16 reserved`` (0), ``u64 dst_offset``, ``u64 src_offset`` (from the start
  of the container), ``u32 src_bytes``, ``u32 n``, ``u32 nnz``, ``u32 alphabet``, and
  ``u32 shape[4]`` (unused dims 0; with more than 4 dims, ``shape[0]`` is the product of the
  leading ones);
* the payloads, in record order and byte-aligned. A raw payload is the tensor's bytes. A
  codebook payload is one bitstream (``sqzc.weights.codecs``), with its 8-byte zero pad.

The checksum lets the decoder detect its own bugs and flash bit rot: a mismatch makes
``sqz_init`` fail instead of computing with wrong weights.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sqzc.weights.codecs import RECORD_BYTES, Codec, EncodedTensor, encode_tensor

MAGIC = b"SQZW"
VERSION = 1
HEADER = struct.Struct("<4sHHIIQQ")
RECORD = struct.Struct("<BBBBBBHQQIIII4I")
HEADER_BYTES = HEADER.size
CHECKSUM_MUL = 0x9E3779B97F4A7C15
CHECKSUM_LANES = 4
_MASK64 = (1 << 64) - 1
assert RECORD.size == RECORD_BYTES and HEADER_BYTES == 32


def checksum(image: bytes) -> int:
    """The 64-bit checksum of a decoded image (multiply-add, 4 lanes, all mod 2**64).

    1. Append zero bytes to the image up to a multiple of 32 bytes. Read it as
       little-endian u64 words ``w[0..N)``.
    2. ``h[0..4) = 0``. For ``i`` in order: ``h[i % 4] = h[i % 4] * P + w[i]``, where
       ``P = CHECKSUM_MUL`` = 0x9E3779B97F4A7C15.
    3. The result is ``(((h[0] * P + h[1]) * P + h[2]) * P + h[3]) * P + len(image)``.

    ``P`` is odd, so a change in any single word changes the result. The four lanes are
    independent chains, so native code runs them in parallel (about 1 ms for 11.6 MB).
    Here the same sum is computed in closed form: ``h[j] = sum_t w[4t+j] * P**(M-1-t)``.
    """
    words = _words(image)
    m = words.shape[0]
    powers = np.ones(m, np.uint64)
    if m > 1:
        powers[1:] = np.multiply.accumulate(np.full(m - 1, CHECKSUM_MUL, np.uint64))
    lanes = (words * powers[::-1, None]).sum(axis=0, dtype=np.uint64)
    result = 0
    for h in lanes.tolist():
        result = (result * CHECKSUM_MUL + h) & _MASK64
    return (result * CHECKSUM_MUL + len(image)) & _MASK64


def checksum_loop(image: bytes) -> int:
    """``checksum`` as the native loop computes it (slow: for tests on small images)."""
    words = _words(image).reshape(-1).tolist()
    h = [0] * CHECKSUM_LANES
    for i, w in enumerate(words):
        h[i % CHECKSUM_LANES] = (h[i % CHECKSUM_LANES] * CHECKSUM_MUL + w) & _MASK64
    result = 0
    for lane in h:
        result = (result * CHECKSUM_MUL + lane) & _MASK64
    return (result * CHECKSUM_MUL + len(image)) & _MASK64


def _words(image: bytes) -> np.ndarray:
    block = 8 * CHECKSUM_LANES
    data = bytes(image) + bytes(-len(image) % block)
    return np.frombuffer(data, "<u8").astype(np.uint64).reshape(-1, CHECKSUM_LANES)


@dataclass(frozen=True)
class Placed:
    """One record of a container: where its tensor goes, and how it is stored."""

    dst_offset: int
    encoded: EncodedTensor
    listed: bool            #: one of the caller's tensors (else an uncovered image span)


def record_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The record's 4 shape fields: the dims, zero-filled; leading dims merged beyond 4."""
    if len(shape) > 4:
        shape = (int(np.prod(shape[:-3])), *shape[-3:])
    return tuple(shape) + (0,) * (4 - len(shape))  # type: ignore[return-value]


def encode(image: bytes, tensors: Sequence[tuple[int, np.ndarray]],
           codec: Codec | None = None) -> bytes:
    """The container of ``image``: each listed tensor at its offset, the rest as spans."""
    return encode_report(image, tensors, codec)[0]


def encode_report(image: bytes, tensors: Sequence[tuple[int, np.ndarray]],
                  codec: Codec | None = None) -> tuple[bytes, list[Placed]]:
    """``encode`` and its records (for the size report).

    Each tensor's little-endian C-order bytes must equal the image at its offset, and
    tensors must not overlap (ValueError otherwise): the container stores the tensors, so
    the image they were laid out into has to agree with them. ``codec`` forces one codec
    for the listed tensors (tests); by default each gets its smallest.
    """
    image = bytes(image)
    img = np.frombuffer(image, np.uint8)
    placed: list[Placed] = []
    end = 0
    for offset, a in sorted(((int(o), np.asarray(a)) for o, a in tensors), key=lambda t: t[0]):
        data = np.ascontiguousarray(a, a.dtype.newbyteorder("<") if a.dtype.byteorder == ">"
                                    else a.dtype).tobytes()
        if offset < end or offset + len(data) > len(image):
            raise ValueError(f"tensor at {offset} ({len(data)} B) overlaps another tensor or "
                             f"leaves the {len(image)}-byte image")
        if image[offset:offset + len(data)] != data:
            raise ValueError(f"tensor at {offset} differs from the image bytes there")
        placed += _spans(img, end, offset)
        placed.append(Placed(offset, encode_tensor(a, codec), True))
        end = offset + len(data)
    placed += _spans(img, end, len(image))
    return _assemble(image, placed), placed


def _spans(img: np.ndarray, start: int, stop: int) -> list[Placed]:
    """Records for the nonzero bytes of ``img[start:stop]``. Spans closer than a record's
    size are merged, because a record costs more than that many zero bytes."""
    nz = np.flatnonzero(img[start:stop]) + start
    if not nz.size:
        return []
    cuts = np.flatnonzero(np.diff(nz) > RECORD_BYTES) + 1
    return [Placed(int(s[0]), encode_tensor(img[s[0]:s[-1] + 1].copy()), False)
            for s in np.split(nz, cuts)]


def _assemble(image: bytes, placed: list[Placed]) -> bytes:
    src = HEADER_BYTES + RECORD_BYTES * len(placed)
    records, payloads = [], []
    for p in placed:
        e = p.encoded
        if len(e.payload) >> 32 or e.n >> 32:
            raise ValueError("a record holds at most 2**32 - 1 bytes and elements")
        records.append(RECORD.pack(e.codec, e.dtype, e.flags, min(len(e.shape), 255), e.k_pos,
                                   e.k_cb, 0, p.dst_offset, src, len(e.payload), e.n, e.nnz,
                                   e.alphabet, *record_shape(e.shape)))
        payloads.append(e.payload)
        src += len(e.payload)
    header = HEADER.pack(MAGIC, VERSION, RECORD_BYTES, len(placed), 0, len(image),
                         checksum(image))
    return b"".join([header, *records, *payloads])
