"""Compile-time geometry of sliding windows (convolutions and pools), shared by emitters.

Every windowed kernel unrolls its taps at compile time and needs, per tap, the output
positions whose input index is in bounds, so that padding costs no run-time branches:
``valid_range`` (one tap, plain kernels), ``row_groups`` / ``col_tiles`` (all taps, the
register-tiled blocked kernels) and ``window_counts`` (average-pool divisors). Pure
Python on ints: no IR is built here, which is why float, integer, plain and blocked
emitters of every family can share it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


def valid_range(out_len: int, in_len: int, stride: int, offset: int) -> tuple[int, int]:
    """Output positions o in [lo, hi) with 0 <= o*stride + offset < in_len."""
    lo = max(0, -(offset // stride) if offset < 0 else 0)
    while lo < out_len and lo * stride + offset < 0:
        lo += 1
    hi = out_len
    while hi > lo and (hi - 1) * stride + offset >= in_len:
        hi -= 1
    return lo, hi


def row_groups(out_len: int, in_len: int, k: int, s: int, d: int, pad: int
               ) -> list[tuple[int, int, tuple[int, ...]]]:
    """Consecutive output positions grouped by their tuple of in-bounds taps."""
    groups: list[tuple[int, int, tuple[int, ...]]] = []
    for o in range(out_len):
        taps = tuple(t for t in range(k) if 0 <= o * s + t * d - pad < in_len)
        if groups and groups[-1][2] == taps and groups[-1][1] == o:
            groups[-1] = (groups[-1][0], o + 1, taps)
        else:
            groups.append((o, o + 1, taps))
    return groups


@dataclass(frozen=True)
class ColTile:
    """A run of column tiles: ``count`` tiles of ``width`` pixels from ``start``, with the
    in-bounds (pixel, tap) pairs ``valid`` (identical for every tile of the run)."""

    start: int
    count: int
    width: int
    valid: frozenset[tuple[int, int]]


def col_tiles(out_len: int, in_len: int, k: int, s: int, d: int, pad: int, r: int
              ) -> list[ColTile]:
    """Tiles of up to ``r`` pixels; interior tiles with the same validity form one run."""
    runs: list[ColTile] = []
    o = 0
    while o < out_len:
        width = min(r, out_len - o)
        valid = frozenset((p, t) for p in range(width) for t in range(k)
                          if 0 <= (o + p) * s + t * d - pad < in_len)
        last = runs[-1] if runs else None
        full = len(valid) == width * k
        if last and full and last.width == width and last.valid == valid and \
                last.start + last.count * width == o:
            runs[-1] = ColTile(last.start, last.count + 1, width, valid)
        else:
            runs.append(ColTile(o, 1, width, valid))
        o += width
    return runs


def window_counts(out_len: int, in_len: int, k: int, s: int, d: int, p0: int, p1: int,
                  include_pad: bool) -> list[int]:
    """Divisor per output position along one axis (onnxruntime's rule)."""
    counts = []
    for o in range(out_len):
        start = o * s - p0
        if include_pad:
            end = min(start + (k - 1) * d + 1, in_len + p1)
            counts.append(len(range(start, end, d)))
        else:
            counts.append(sum(1 for t in range(k) if 0 <= start + t * d < in_len))
    return counts
