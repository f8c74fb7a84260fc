"""What each weight tensor of a compiled graph costs, and what it would cost compressed.

``sqzc compile --stats`` prints this table so a user can see where a library's bytes go:
per tensor the bytes the library stores today (the kernel's layout: packed, padded,
Winograd-transformed), the tensor it derives from (its recipe's source, after folding),
that source's density and alphabet, its zero-order bound and the size the best codec of
``sqzc.weights.codecs`` reaches, in bits per weight. Compile side only (numpy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sqzc.ir import Graph
from sqzc.memory import schedule
from sqzc.ops import ConstAttrs
from sqzc.weights.codecs import bit_patterns, encode_tensor


@dataclass(frozen=True)
class TensorBound:
    """The per-tensor zero-order bound of docs/plans/compression.md §1.2, in bytes.

    ``values`` = nnz * H(empirical distribution of the nonzero values) / 8,
    ``positions`` = n * H_b(nnz / n) / 8, and ``codebook`` = itemsize bytes (4 for float32,
    2 for float16, 1 for int8) per distinct value, zero included when the tensor has one.
    "Zero" is the all-zero bit pattern, as in the codecs (so -0.0 is a nonzero value).
    """

    n: int
    nnz: int
    distinct_nonzero: int
    values: float
    positions: float
    codebook: int

    @property
    def total(self) -> float:
        return self.values + self.positions + self.codebook


def zero_order_bound(a: np.ndarray) -> TensorBound:
    """The bound of one tensor (float32, float16, int8 or any other 1/2/4/8-byte dtype)."""
    a = np.asarray(a)
    bits = bit_patterns(a)
    n = bits.size
    counts = np.unique(bits[bits != 0], return_counts=True)[1].astype(np.float64)
    nnz = int(counts.sum())
    values = (nnz * math.log2(nnz) - float((counts * np.log2(counts)).sum())) if nnz else 0.0
    d = nnz / n if n else 0.0
    h_b = 0.0 if d in (0.0, 1.0) else -d * math.log2(d) - (1 - d) * math.log2(1 - d)
    distinct = counts.size + (nnz < n)
    return TensorBound(n, nnz, counts.size, values / 8, n * h_b / 8,
                       a.dtype.itemsize * distinct)


@dataclass(frozen=True)
class TensorReport:
    """One weight tensor: its library bytes and its source's statistics."""

    name: str
    library_bytes: int      #: what the library stores now (the kernel's layout)
    recipe: str             #: how the kernel's tensor derives from the source
    n: int                  #: elements of the source
    nnz: int
    alphabet: int           #: distinct values of the source, zero included
    bound_bytes: float      #: zero-order bound of the source (docs/plans/compression.md)
    compressed_bytes: int   #: best codec's stored bytes, record included
    codec: str

    @property
    def density(self) -> float:
        return self.nnz / self.n if self.n else 0.0

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.compressed_bytes / self.n if self.n else 0.0


def kernel_constants(graph: Graph) -> list[str]:
    """The constants kernels read, in schedule order (the library's weight order)."""
    used: list[str] = []
    for n in schedule(graph):
        for src in graph.op(n).inputs:
            if graph.is_const(src) and src not in used:
                used.append(src)
    return used


def weight_report(graph: Graph) -> list[TensorReport]:
    """One row per kernel constant."""
    rows = []
    for nid in kernel_constants(graph):
        attrs = graph.op(nid).attrs
        assert isinstance(attrs, ConstAttrs)
        source = attrs.recipe.source if attrs.recipe is not None else attrs.value
        bound = zero_order_bound(source)
        enc = encode_tensor(np.asarray(source))
        rows.append(TensorReport(
            nid, int(np.asarray(attrs.value).nbytes),
            attrs.recipe.describe() if attrs.recipe is not None else "stored as is",
            bound.n, bound.nnz, bound.distinct_nonzero + (bound.nnz < bound.n),
            bound.total, enc.size.total, enc.codec.name.lower()))
    return rows


def format_report(rows: list[TensorReport], limit: int = 40) -> str:
    """The ``--stats`` table (the ``limit`` largest tensors by library bytes) and totals."""
    lines = [f"{'tensor':<40} {'library B':>11} {'source n':>9} {'density':>7} "
             f"{'alphabet':>8} {'bound B':>10} {'coded B':>10} {'bits/w':>6}  codec, recipe"]
    for r in sorted(rows, key=lambda r: -r.library_bytes)[:limit]:
        lines.append(f"{r.name[:40]:<40} {r.library_bytes:>11,} {r.n:>9,} {r.density:>7.3f} "
                     f"{r.alphabet:>8,} {r.bound_bytes:>10,.0f} {r.compressed_bytes:>10,} "
                     f"{r.bits_per_weight:>6.2f}  {r.codec}, {r.recipe}")
    if len(rows) > limit:
        lines.append(f"... and {len(rows) - limit} smaller tensors")
    lib = sum(r.library_bytes for r in rows)
    bound = sum(r.bound_bytes for r in rows)
    coded = sum(r.compressed_bytes for r in rows)
    lines.append(f"{'total (' + str(len(rows)) + ' tensors)':<40} {lib:>11,} "
                 f"{sum(r.n for r in rows):>9,} {'':>7} {'':>8} {bound:>10,.0f} {coded:>10,}")
    return "\n".join(lines)
