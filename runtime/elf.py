"""Reading an ELF64 shared library's headers with ``struct``: what the runtime needs to
know of a file it may not be able to load.

A library cross-compiled for another architecture (``--target aarch64-linux-gnu``)
cannot be ``dlopen``'ed here, yet ``sqzc info`` describes it and ``sqzc run`` hands it to
an emulator: its machine comes from the ELF header and its metadata from the
``.sqz_metadata`` section, both read from the file. ``sqzc.tools.elf`` builds the size
report on the same section table. Standard library only (the runtime's rule).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from sqzc.errors import LibraryError

__all__ = ["METADATA_SECTION", "Section", "elf_machine", "read_sections", "section_bytes"]

#: The section holding a library's metadata JSON (NUL-terminated), ``sqz_metadata()``'s
#: string: named, so that it is found without symbols (``--optimize size`` strips them).
METADATA_SECTION = ".sqz_metadata"
#: ELF ``e_machine`` values -> the architecture names of target triples.
MACHINES = {62: "x86_64", 183: "aarch64"}

_SHF_ALLOC = 0x2
_SHF_EXECINSTR = 0x4
_SHT_NOBITS = 8


@dataclass(frozen=True)
class Section:
    """One section: its name, size in bytes, and whether it is loaded / executable /
    occupies file bytes (``.bss`` does not); ``offset`` is where its bytes start in the
    file, ``address`` where they are mapped (relative to the load base)."""

    name: str
    size: int
    alloc: bool
    exec: bool
    in_file: bool
    offset: int = 0
    address: int = 0


def _header(data: bytes, path: str | Path) -> str:
    """The struct byte-order prefix of an ELF64 file, or a LibraryError."""
    if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] != 2:
        raise LibraryError(f"{path} is not a 64-bit ELF file")
    return "<" if data[5] == 1 else ">"


def elf_machine(path: str | Path) -> str:
    """The architecture an ELF64 file is for (``x86_64``, ``aarch64``, or ``e_machine N``)."""
    with open(path, "rb") as f:
        head = f.read(64)
    order = _header(head, path)
    machine, = struct.unpack_from(order + "H", head, 18)
    return MACHINES.get(machine, f"e_machine {machine}")


def read_sections(path: str | Path) -> list[Section]:
    """The sections of the ELF64 file at ``path``; a LibraryError names what is wrong."""
    data = Path(path).read_bytes()
    order = _header(data, path)
    shoff, = struct.unpack_from(order + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x3A)
    if shentsize < 64 or shoff + shnum * shentsize > len(data) or shstrndx >= max(shnum, 1):
        raise LibraryError(f"{path}: its ELF section header table is damaged")
    raw = []
    for i in range(shnum):
        name, kind, flags, addr, offset, size = struct.unpack_from(
            order + "IIQQQQ", data, shoff + i * shentsize)
        raw.append((name, kind, flags, addr, offset, size))
    _, _, _, _, str_off, str_size = raw[shstrndx]
    strtab = data[str_off:str_off + str_size]
    sections = []
    for name, kind, flags, addr, offset, size in raw[1:]:
        end = strtab.find(b"\0", name)
        sections.append(Section(strtab[name:end].decode("ascii", "replace"), size,
                                bool(flags & _SHF_ALLOC), bool(flags & _SHF_EXECINSTR),
                                kind != _SHT_NOBITS, offset, addr))
    return sections


def section_bytes(path: str | Path, name: str) -> bytes:
    """The file bytes of section ``name``; a LibraryError when it is missing."""
    for s in read_sections(path):
        if s.name == name and s.in_file:
            with open(path, "rb") as f:
                f.seek(s.offset)
                data = f.read(s.size)
            if len(data) == s.size:
                return data
            break
    raise LibraryError(f"{path} has no {name} section: not a sqzc library of this ABI")
