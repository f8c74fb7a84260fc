"""What each weight tensor of a compiled graph costs, and what it would cost compressed.

``sqzc compile --stats`` prints this table so a user can see where a library's bytes go:
per tensor the bytes the library stores today (the kernel's layout: packed, padded,
Winograd-transformed), the tensor it derives from (its recipe's source, after folding),
that source's density and alphabet, its zero-order bound and the size the best codec of
``sqzc.weights.codecs`` reaches, in bits per weight. Compile side only (numpy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sqzc.ir import Graph
from sqzc.memory import schedule
from sqzc.ops import ConstAttrs
from sqzc.weights.codecs import encode_tensor, zero_order_bound


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
