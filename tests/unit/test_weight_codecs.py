"""Tests for ``sqzc.weights``: bit I/O, canonical Huffman, ZRice, the tensor codecs, the
container and its reference decoder, and the zero-order bound on the paper's model.

Every round trip compares bit patterns, not values: -0.0, NaN payloads and denormals must
come back exactly.
"""

from __future__ import annotations

import heapq
import time
from pathlib import Path

import numpy as np
import pytest

from sqzc.weights import container
from sqzc.weights.codecs import (
    FLAG_MARKS_ZEROS, FLAG_POS_SHIFT, MAX_ALPHABET, PAD_BYTES, RECORD_BYTES, RICE_QMAX,
    Codec, PosCode, canonical_codes, code_lengths, decode_table, encode_tensor,
    from_key, pack_fields, to_keys, zrice_fields)
from sqzc.weights.analysis import zero_order_bound
from sqzc.weights.reference_decoder import BitReader, decode, decode_tensor

ROOT = Path(__file__).resolve().parents[2]
DEEPCOMP = [c / "models" / "deepcomp" / "squeezenet1.0-deepcompression.onnx"
            for c in (ROOT.parent / "shared", ROOT / "shared")]


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(np.dtype(f"u{a.dtype.itemsize}")) if a.dtype.itemsize in (1, 2, 4, 8) else a


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=") \
        and np.array_equal(_bits(a.astype(a.dtype.newbyteorder("="))), _bits(b))


def _pos_code(flags: int) -> PosCode:
    return PosCode((flags >> FLAG_POS_SHIFT) & 3)


# ----------------------------------------------------------------------------- bit I/O

def _pack_reference(fields: list[tuple[int, int]]) -> bytes:
    """The bit order spelled out: field i's bit j is stream bit (offset_i + j), and stream
    bit b is bit b % 8 of byte b // 8; then 8 zero bytes."""
    acc = offset = 0
    for value, n in fields:
        acc |= value << offset
        offset += n
    return acc.to_bytes((offset + 7) // 8, "little") + bytes(PAD_BYTES) if offset else b""


def test_bit_order_is_lsb_first_and_padded() -> None:
    fields = [(1, 1), (0, 1), (0b11, 2), (0xABC, 12)]
    # bits 0..3 = 1,0,1,1 -> 0b1101; then 0xABC from bit 4: byte0 = 0xC<<4 | 0xD
    assert pack_fields(*zip(*fields)) == bytes([0xCD, 0xAB]) + bytes(PAD_BYTES)
    assert pack_fields([], []) == b"" and pack_fields([0], [0]) == b""


def test_pack_fields_equals_the_bit_order_and_reads_back() -> None:
    rng = np.random.default_rng(1)
    lengths = rng.integers(0, 58, 3000)
    values = np.array([int(rng.integers(0, 1 << 62)) & ((1 << int(n)) - 1) for n in lengths],
                      np.uint64)
    packed = pack_fields(values, lengths)
    assert packed == _pack_reference(list(zip(values.tolist(), lengths.tolist())))
    assert packed[-PAD_BYTES:] == bytes(PAD_BYTES)
    r = BitReader(packed, 0, len(packed))
    assert [r.read(n) for n in lengths.tolist()] == values.tolist()
    with pytest.raises(ValueError):
        pack_fields([4], [2])
    with pytest.raises(ValueError):
        pack_fields([1], [58])


def test_reader_refuses_to_leave_the_stream() -> None:
    r = BitReader(bytes(10), 0, 10)
    r.pos = 24
    with pytest.raises(ValueError):
        r.peek()


# ----------------------------------------------------------------------------- Huffman

def _huffman_cost(counts: list[int]) -> int:
    """Plain (unlimited) Huffman cost: the sum of the merged weights."""
    heap = [c for c in counts if c]
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        cost += merged
        heapq.heappush(heap, merged)
    return cost


def _kraft(lengths: np.ndarray) -> float:
    return float(sum(2.0 ** -int(n) for n in lengths if n))


@pytest.mark.parametrize("counts", [
    [5, 3], [1, 1, 1], [7] * 256, [1] * 4096, [0, 9, 0, 0, 2, 1],
    list(np.random.default_rng(2).integers(1, 1000, 255)),
    list(np.random.default_rng(3).geometric(0.05, 300)),
])
def test_package_merge_is_optimal_when_the_limit_does_not_bind(counts: list[int]) -> None:
    lengths = code_lengths(counts)
    assert _kraft(lengths) == 1.0 and lengths.max() <= 12
    assert all((n == 0) == (c == 0) for n, c in zip(lengths, counts))
    if _huffman_cost(counts) and max(lengths) < 12:
        assert int((np.asarray(counts) * lengths).sum()) == _huffman_cost(counts)


def test_package_merge_limits_deep_codes_to_12_bits() -> None:
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])   # plain Huffman depth 29
    lengths = code_lengths(fib)
    assert lengths.max() == 12 and _kraft(lengths) == 1.0
    cost = int((np.asarray(fib) * lengths).sum())
    assert cost >= _huffman_cost(fib)
    # no single length change keeps Kraft <= 1 and lowers the cost
    for s in range(len(fib)):
        if lengths[s] > 1:
            shorter = lengths.copy()
            shorter[s] -= 1
            assert _kraft(shorter) > 1.0


def test_code_length_edge_cases() -> None:
    assert code_lengths([0, 4, 0]).tolist() == [0, 1, 0]
    assert code_lengths([0, 0]).tolist() == [0, 0]
    assert code_lengths([1, 10**9]).tolist() == [1, 1]
    assert set(code_lengths([3] * 4096).tolist()) == {12}
    with pytest.raises(ValueError):
        code_lengths([1] * 4097)


def test_decode_table_matches_canonical_codes() -> None:
    counts = np.random.default_rng(4).geometric(0.02, 200)
    lengths = code_lengths(counts)
    codes = canonical_codes(lengths)
    table = decode_table(lengths)
    rng = np.random.default_rng(5)
    for s, (n, c) in enumerate(zip(lengths.tolist(), codes.tolist())):
        high = int(rng.integers(0, 1 << (12 - n)))
        assert table[c | high << n] == s | n << 12
    with pytest.raises(ValueError):
        decode_table([1, 1, 1])
    one = decode_table([0, 1])      # one symbol: code "0", the other half is invalid
    assert one[0] == 1 | 1 << 12 and one[1] == 0


# ----------------------------------------------------------------------------- ZRice, keys

@pytest.mark.parametrize("k", [0, 1, 5, 17, 31])
def test_zrice_round_trip_with_escapes(k: int) -> None:
    rng = np.random.default_rng(k)
    longest_plain = min((RICE_QMAX << k) - 1, 2**32 - 2)      # 23 zeros, a one, k bits
    shortest_escape = min(RICE_QMAX << k, 2**32 - 1)
    x = np.concatenate([rng.integers(0, 1 << min(k + 2, 32), 500),
                        [0, longest_plain, shortest_escape, 2**32 - 1]]).astype(np.uint64)
    values, lengths = zrice_fields(x, k)
    assert lengths.max() <= 56
    data = pack_fields(values, lengths)
    r = BitReader(data, 0, len(data))
    assert [r.zrice(k) for _ in x] == x.tolist()
    with pytest.raises(ValueError):
        zrice_fields(np.array([2**32], np.uint64), k)


@pytest.mark.parametrize("dtype, code", [("<f4", 1), ("<f2", 10), ("i1", 3), ("u1", 2),
                                         ("<i2", 5), ("<u2", 4), ("<i4", 6), ("<u4", 12)])
def test_keys_sort_like_the_values_and_invert(dtype: str, code: int) -> None:
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = np.array([-np.inf, -3.5, -1e-3, -0.0, 0.0, 1e-3, 2.0, np.inf], dt)
        a = np.concatenate([a, np.array([np.finfo(dt).smallest_subnormal,
                                         -np.finfo(dt).smallest_subnormal], dt)])
        a = np.sort(a)  # -0.0 and 0.0 compare equal: put -0.0 first explicitly
        a[(a == 0)] = np.array([-0.0, 0.0], dt)
    else:
        info = np.iinfo(dt)
        a = np.array(sorted({info.min, info.min + 1, -1 if info.min else 1, 0, 1, info.max}),
                     dt)
    bits = a.view(f"u{dt.itemsize}").astype(np.uint64)
    keys = to_keys(bits, code)
    assert (np.diff(keys.astype(np.float64)) > 0).all()
    assert [from_key(int(k), code) for k in keys] == bits.tolist()


# ----------------------------------------------------------------------------- tensors

def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(6)
    f32, f16 = np.float32, np.float16
    cb = rng.standard_normal(16).astype(f32)
    shared = np.where(rng.random((8, 4, 3, 3)) < 0.3, cb[rng.integers(0, 16, (8, 4, 3, 3))], 0)
    nan_payloads = np.array([0x7FC00000, 0x7F800001, 0xFFC12345, 0x7FFFFFFF], np.uint32)
    specials = np.concatenate([nan_payloads.view(f32), np.array(
        [-0.0, 0.0, 1e-45, -1e-45, 1.17e-38, np.inf, -np.inf, -0.0, 0.0], f32)])
    fib = np.repeat(np.arange(1, 21), [1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610,
                                       987, 1597, 2584, 4181, 6765])
    long_runs = np.zeros(300_000, f32)
    long_runs[[5, 6, 77_000, 299_999]] = [1, 2, 3, 4]
    dense_with_holes = np.where(rng.random(20_000) < 0.97, cb[rng.integers(0, 16, 20_000)], 0)
    runs = rng.choice([0, 9, 100, 5000], 3000, p=[0.6, 0.38, 0.019, 0.001])  # not geometric
    escapes = np.zeros(int(runs.sum()) + runs.size, f32)
    escapes[np.cumsum(runs + 1) - 1] = cb[rng.integers(0, 16, runs.size)]
    return {
        "random_f32": rng.standard_normal((3, 5, 7)).astype(f32),
        "shared_pruned_f32": shared.astype(f32),
        "all_zero_f32": np.zeros((4, 4), f32),
        "all_zero_i8": np.zeros(100, np.int8),
        "density_1_f32": cb[rng.integers(0, 16, 5000)],
        "one_value_sparse": np.where(rng.random(3000) < 0.1, f32(0.25), f32(0)),
        "one_value_dense": np.full((7, 3), -2.5, f32),
        "two_values": rng.choice(np.array([0.5, -0.5], f32), 1000),
        "single_element": np.array([3.0], f32),
        "scalar": np.array(-0.0, f32),
        "specials_f32": np.tile(specials, 20),
        "neg_zero_only": np.array([-0.0, 0.0, -0.0, 0.0, 0.0], f32),
        "f16_shared": np.where(rng.random(4000) < 0.4, rng.standard_normal(32)[
            rng.integers(0, 32, 4000)], 0).astype(f16),
        "f16_specials": np.concatenate([np.array([-0.0, 0.0, 6e-8, -6e-8, np.inf], f16),
                                        np.array([0x7E01, 0xFC01], np.uint16).view(f16)]),
        "i8_full_range": rng.integers(-128, 128, 5000).astype(np.int8),
        "i8_pruned": np.where(rng.random(4000) < 0.2, rng.integers(-128, 128, 4000), 0
                              ).astype(np.int8),
        "u8": rng.integers(0, 4, 999).astype(np.uint8),
        "i16": rng.integers(-5, 5, 999).astype(np.int16),
        "u16": rng.integers(60000, 60010, 999).astype(np.uint16),
        "i32": rng.integers(-2**31, 2**31, 500).astype(np.int32) // 2**28,
        "u32": np.array([0, 2**32 - 1, 5, 5, 0], np.uint32),
        "alphabet_255": np.where(rng.random(6000) < 0.5, rng.standard_normal(255).astype(f32)[
            np.arange(6000) % 255], 0),
        "alphabet_256": rng.standard_normal(256).astype(f32)[rng.integers(0, 256, 8000)],
        "alphabet_4096": np.repeat(np.arange(1, 4097, dtype=f32), 3),
        "alphabet_4096_sparse": np.concatenate([np.arange(1, 4097, dtype=f32), np.zeros(9, f32)]),
        "skewed_17_bits": rng.permutation(fib).astype(f32),
        "long_runs": long_runs,
        "dense_with_holes": dense_with_holes.astype(f32),
        "run_escapes": escapes.astype(f32),
        "big_endian": shared.astype(">f4"),
        "five_dims": shared.reshape(2, 4, 4, 3, 3).astype(f32),
    }


TENSORS = _tensors()


@pytest.mark.parametrize("name", sorted(TENSORS))
@pytest.mark.parametrize("codec", [None, Codec.RAW, Codec.DENSE_CB, Codec.SPARSE_CB,
                                   Codec.SPARSE_RAW])
def test_tensor_round_trip(name: str, codec: Codec | None) -> None:
    a = TENSORS[name]
    if (name, codec) == ("alphabet_4096_sparse", Codec.DENSE_CB):   # 4097 with the zero
        with pytest.raises(ValueError):
            encode_tensor(a, codec)
        return
    enc = encode_tensor(a, codec)
    assert codec is None or enc.codec is codec
    assert enc.size.total == RECORD_BYTES + len(enc.payload)
    assert enc.nnz == int(np.count_nonzero(_bits(a.astype(a.dtype.newbyteorder("=")))))
    if enc.payload and enc.codec is not Codec.RAW:
        assert enc.payload.endswith(bytes(PAD_BYTES))
    assert _same(a, decode_tensor(enc))


def test_codec_choice() -> None:
    t = TENSORS
    best = {name: encode_tensor(a) for name, a in t.items()}
    assert best["random_f32"].codec is Codec.RAW
    assert best["all_zero_f32"].codec is Codec.SPARSE_CB and best["all_zero_f32"].payload == b""
    assert best["one_value_dense"].codec is Codec.DENSE_CB and best["one_value_dense"].alphabet == 1
    assert best["shared_pruned_f32"].codec is Codec.SPARSE_CB
    # pruned, not shared: every value distinct, so positions plus the values in full
    rng = np.random.default_rng(4)
    pruned = np.where(rng.random(20000) < 0.3, rng.standard_normal(20000), 0).astype(np.float32)
    enc = encode_tensor(pruned)
    assert enc.codec is Codec.SPARSE_RAW and enc.alphabet == 0
    d = enc.nnz / enc.n      # values in full, positions within 2% of their entropy
    entropy = -enc.n * (d * np.log2(d) + (1 - d) * np.log2(1 - d)) / 8
    assert enc.size.values == 4 * enc.nnz and enc.size.positions <= 1.02 * entropy
    assert _same(pruned, decode_tensor(enc))
    assert best["alphabet_4096"].codec is not Codec.RAW
    assert best["alphabet_4096_sparse"].alphabet == 4096
    over = np.arange(1, MAX_ALPHABET + 2, dtype=np.float32)      # 4097 distinct nonzeros
    assert encode_tensor(np.concatenate([over, over])).codec is Codec.RAW
    for codec in (Codec.DENSE_CB, Codec.SPARSE_CB):
        with pytest.raises(ValueError):
            encode_tensor(over, codec)
    for a in (np.zeros(3, bool), np.arange(4, dtype=np.int64), np.ones(2), np.zeros(0, np.float32)):
        assert encode_tensor(a).codec is Codec.RAW
    # both run codes, both polarities and the run escapes are exercised by the fixtures
    assert _pos_code(best["long_runs"].flags) is PosCode.RICE
    assert _pos_code(best["run_escapes"].flags) is PosCode.HUFFMAN
    assert best["dense_with_holes"].flags & FLAG_MARKS_ZEROS
    assert not best["shared_pruned_f32"].flags & FLAG_MARKS_ZEROS
    enc = best["skewed_17_bits"]
    assert enc.codec is Codec.DENSE_CB and enc.alphabet == 20


def test_sizes_split_and_never_beat_by_raw() -> None:
    for a in TENSORS.values():
        enc = encode_tensor(a)
        s = enc.size
        assert s.total <= RECORD_BYTES + a.nbytes
        assert s.header >= 0
        assert s.values + s.positions + s.codebook + s.header == pytest.approx(s.total)


# ----------------------------------------------------------------------------- container

def _image(tensors: list[np.ndarray],
           extra: bool = True) -> tuple[bytes, list[tuple[int, np.ndarray]]]:
    """An image holding the tensors, with zero gaps between them; with ``extra``, the gaps and
    the end also hold a few nonzero bytes that no tensor covers."""
    parts, placed, off = [], [], 0
    for a in tensors:
        gap = bytes(13) + (b"\x07\x00\x09" if extra else b"") + bytes(64)
        parts.append(gap)
        off += len(gap)
        data = np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes()
        placed.append((off, a))
        parts.append(data)
        off += len(data)
    parts.append(b"\x01tail" if extra else b"")
    return b"".join(parts), placed


def test_container_round_trip() -> None:
    tensors = [TENSORS[k] for k in ("shared_pruned_f32", "specials_f32", "i8_pruned", "f16_shared",
                                     "all_zero_f32", "random_f32", "big_endian", "scalar")]
    image, placed = _image(tensors)
    data, records = container.encode_report(image, placed)
    assert data[:4] == b"SQZW"
    assert [r.dst_offset for r in records] == sorted(r.dst_offset for r in records)
    assert sum(not r.listed for r in records) == len(tensors) + 1   # the gaps and the tail
    assert decode(data) == image
    assert decode(data, expected_size=len(image)) == image
    with pytest.raises(ValueError):
        decode(data, expected_size=len(image) + 1)
    raw = container.encode(image, placed, Codec.RAW)
    assert decode(raw) == image and len(raw) > len(data)


def test_checksum_matches_the_native_loop() -> None:
    rng = np.random.default_rng(7)
    for size in (0, 1, 7, 8, 31, 32, 33, 1000):
        image = rng.integers(0, 256, size).astype(np.uint8).tobytes()
        assert container.checksum(image) == container.checksum_loop(image)
    assert container.checksum(bytes(64)) == 64
    assert container.checksum(b"\x01") != container.checksum(b"\x01\x00")


def test_container_detects_every_corruption() -> None:
    """A flipped byte either leaves the decoded image as it was (padding, shape, reserved
    fields, unread bits) or raises ValueError: never a wrong image or another error."""
    tensors = [TENSORS["shared_pruned_f32"][:2], TENSORS["f16_specials"],
               TENSORS["two_values"][:40]]
    image, placed = _image(tensors)
    data = container.encode(image, placed)
    size_field = range(16, 24)
    detected = 0
    for i in range(len(data)):
        if i in size_field:
            continue
        bad = bytearray(data)
        bad[i] ^= 0x5A
        try:
            out = decode(bytes(bad))
        except ValueError:
            detected += 1
            continue
        assert out == image, f"byte {i}: wrong image without an error"
    assert detected > 0.4 * len(data)
    bad = bytearray(data)
    bad[16] ^= 0x08                      # image size: caught by the checksum (it covers the size)
    with pytest.raises(ValueError):
        decode(bytes(bad))
    for cut in (10, 40, len(data) - 1):
        with pytest.raises(ValueError):
            decode(data[:cut])


def test_encode_checks_the_image() -> None:
    a = TENSORS["two_values"]
    image, placed = _image([a], extra=False)
    with pytest.raises(ValueError):
        container.encode(image[:-1] + b"\x01", placed)          # image differs from the tensor
    with pytest.raises(ValueError):
        container.encode(image, placed + [(placed[0][0] + 4, a[:2])])   # overlap
    with pytest.raises(ValueError):
        container.encode(image, [(len(image) - 4, a)])           # outside the image
    assert decode(container.encode(bytes(100), [])) == bytes(100)


# ----------------------------------------------------------------------------- bound

def test_zero_order_bound_small_example() -> None:
    a = np.array([0, 0, 1.5, 1.5, 2.0, 0, -0.0, 0], np.float32)   # -0.0 is a nonzero value
    b = zero_order_bound(a)
    assert (b.n, b.nnz, b.distinct_nonzero) == (8, 4, 3)
    assert b.values == pytest.approx(4 * 1.5 / 8)                  # H(1/2, 1/4, 1/4) = 1.5
    assert b.positions == pytest.approx(8 * 1.0 / 8)
    assert b.codebook == 4 * 4
    assert zero_order_bound(a.astype(np.float16)).codebook == 2 * 4
    assert zero_order_bound(np.array([1, 1, 2], np.int8)).codebook == 2
    assert zero_order_bound(np.zeros(5, np.float32)).total == 4


def _synthetic_model(seed: int = 8) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Seeded pruned + weight-shared conv weights (densities 0.1-0.6, 4-8-bit codebooks)."""
    rng = np.random.default_rng(seed)
    shapes = [(64, 16, 3, 3), (128, 32, 1, 1), (96, 48, 3, 3), (256, 64, 1, 1), (64, 64, 3, 3)]
    weights, biases = [], []
    for i, shape in enumerate(shapes):
        density, bits = (0.1, 0.3, 0.6)[i % 3], (4, 6, 8)[i % 3]
        w = rng.standard_normal(shape).astype(np.float32)
        keep = np.abs(w) >= np.quantile(np.abs(w), 1 - density)
        levels = np.quantile(w[keep], (np.arange(2**bits - 1) + 0.5) / (2**bits - 1))
        idx = np.searchsorted(levels, w).clip(0, levels.size - 1)
        weights.append(np.where(keep, levels[idx], 0).astype(np.float32))
        biases.append(rng.standard_normal(shape[0]).astype(np.float32))
    return weights, biases


def _stored_vs_bound(weights: list[np.ndarray], biases: list[np.ndarray]) -> dict[str, float]:
    bounds = [zero_order_bound(w) for w in weights]
    image, placed = _image(weights + biases, extra=False)
    t0 = time.perf_counter()
    data, records = container.encode_report(image, placed)
    t1 = time.perf_counter()
    assert decode(data) == image
    t2 = time.perf_counter()
    assert len(records) == len(weights) + len(biases)     # no gaps: no extra records
    assert all(r.encoded.codec is Codec.RAW for r in records[len(weights):])   # biases raw
    bias = sum(b.nbytes for b in biases)
    return {"values": sum(b.values for b in bounds), "positions": sum(b.positions for b in bounds),
            "codebooks": sum(b.codebook for b in bounds), "biases": bias,
            "bound": sum(b.total for b in bounds) + bias, "stored": len(data),
            "encode_s": t1 - t0, "decode_s": t2 - t1}


def test_synthetic_pruned_shared_model_within_1_05_of_the_bound() -> None:
    r = _stored_vs_bound(*_synthetic_model())
    assert r["stored"] <= 1.05 * r["bound"], r


def test_paper_model_bound_and_stored_size() -> None:
    path = next((p for p in DEEPCOMP if p.is_file()), None)
    if path is None:
        pytest.skip(f"the paper's model is missing (looked for {DEEPCOMP[0]})")
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    r = _stored_vs_bound([inits[n.input[1]] for n in convs], [inits[n.input[2]] for n in convs])
    print({k: round(v, 3) for k, v in r.items()}, "ratio", r["stored"] / r["bound"])
    assert abs(r["bound"] - 539_141) <= 1
    assert (round(r["values"]), round(r["positions"]), r["codebooks"], r["biases"]) == \
        (378_026, 118_586, 26_624, 15_904)
    assert r["stored"] <= 1.05 * r["bound"]
