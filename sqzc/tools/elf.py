"""Section sizes of an ELF shared library (for ``sqzc info`` and ``--stats``).

``sqzc info`` explains where a library's bytes go (code, weights, the rest) without
running ``size`` or ``readelf``, which a user may not have (and which would not read a
cross-compiled library's format on every host). The section table comes from
``sqzc.runtime.elf`` (ELF64, either byte order), which the runtime also reads a foreign
library's metadata with.
"""

from __future__ import annotations

from pathlib import Path

from sqzc.runtime.elf import Section, read_sections

__all__ = ["Section", "read_sections", "size_summary"]


def size_summary(path: str | Path, weights_bytes: int) -> str:
    """``code X, weights Y, other data Z, ELF overhead W`` for a library whose embedded
    weights take ``weights_bytes`` (from its metadata); the four add up to the file size."""
    sections = read_sections(path)
    total = Path(path).stat().st_size
    code = sum(s.size for s in sections if s.exec)
    data = sum(s.size for s in sections if s.alloc and not s.exec and s.in_file)
    other = data - weights_bytes
    overhead = total - code - data
    return (f"code {code:,}, weights {weights_bytes:,}, other data {other:,}, "
            f"ELF overhead {overhead:,} (symbols, headers, padding)")
