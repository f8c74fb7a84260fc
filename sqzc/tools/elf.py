"""Section sizes of an ELF shared library, read with ``struct`` (for ``sqzc info``).

``sqzc info`` explains where a library's bytes go (code, weights, the rest) without
running ``size`` or ``readelf``, which a user may not have (and which would not read a
cross-compiled library's format on every host). Only the section header table is read:
ELF64, either byte order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from sqzc.errors import UsageError

_SHF_ALLOC = 0x2
_SHF_EXECINSTR = 0x4
_SHT_NOBITS = 8


@dataclass(frozen=True)
class Section:
    """One section: its name, size in bytes, and whether it is loaded / executable /
    occupies file bytes (``.bss`` does not)."""

    name: str
    size: int
    alloc: bool
    exec: bool
    in_file: bool


def read_sections(path: str | Path) -> list[Section]:
    """The sections of the ELF64 file at ``path``; a UsageError names what is wrong."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] != 2:
        raise UsageError(f"{path} is not a 64-bit ELF file")
    order = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(order + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x3A)
    if shentsize < 64 or shoff + shnum * shentsize > len(data) or shstrndx >= max(shnum, 1):
        raise UsageError(f"{path}: its ELF section header table is damaged")
    raw = []
    for i in range(shnum):
        name, kind, flags, _addr, offset, size = struct.unpack_from(
            order + "IIQQQQ", data, shoff + i * shentsize)
        raw.append((name, kind, flags, offset, size))
    _, _, _, str_off, str_size = raw[shstrndx]
    strtab = data[str_off:str_off + str_size]
    sections = []
    for name, kind, flags, _offset, size in raw[1:]:
        end = strtab.find(b"\0", name)
        sections.append(Section(strtab[name:end].decode("ascii", "replace"), size,
                                bool(flags & _SHF_ALLOC), bool(flags & _SHF_EXECINSTR),
                                kind != _SHT_NOBITS))
    return sections


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
