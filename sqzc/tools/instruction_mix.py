"""The instruction mix of a cross-built library, counted under qemu (``sqzc compile --stats``
for an Arm target, issue 24): speed evidence where no Arm hardware is at hand.

One run of the library under qemu-user with ``-d in_asm,exec,nochain`` logs every
translated block's instructions once and every execution of a block; the runner prints
where the library is loaded (``SQZ_RUNNER_BASE``), so the blocks inside it are known.
Each executed multiply-accumulate instruction is weighted by the multiply-accumulates it
does: a NEON ``fmla v.4s`` 4, an ``sdot v.4s`` 16 (four lanes of four byte products), a
widening ``smull``/``smlal`` or vector ``mul``/``mla`` its lanes, a scalar ``fmadd`` 1.
Scalar integer ``madd`` is left out: address arithmetic uses it. The report compares the
multiply-accumulates issued by vector instructions with the model's convolution MACs
(Winograd layers issue fewer than their direct MACs: that is their point) and with all
multiply-accumulates the library executed (the share done by vector instructions).
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sqzc.errors import LibraryError
from sqzc.runtime.elf import read_sections
from sqzc.tools.emulate import EmulatedModel

#: Vector floating-point fused multiply-add (lanes from the destination arrangement).
VECTOR_FMA = frozenset({"fmla", "fmls"})
#: Dot products: each lane sums four byte products.
DOT = frozenset({"sdot", "udot", "usdot", "sudot"})
#: Vector integer multiplies and multiply-accumulates (the int16-pair path).
VECTOR_INT_MAC = frozenset({"mla", "mls", "mul", "smlal", "smlal2", "umlal", "umlal2",
                            "smull", "smull2", "umull", "umull2"})
#: Scalar floating-point fused multiply-add.
SCALAR_FMA = frozenset({"fmadd", "fmsub", "fnmadd", "fnmsub"})

_INSN = re.compile(r"^0x([0-9a-f]+):\s+([0-9a-f]+)\s+(\S+)\s*(.*)$")
#: (mask, value) of the A64 dot-product encodings (vector and by-element, SDOT and UDOT),
#: matched on the instruction word: qemu 7.2's disassembler prints them as ``.byte``.
DOT_ENCODINGS = ((0x9FE0FC00, 0x0E809400), (0x9FC0F400, 0x0F80E000))
_TRACE = re.compile(r"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")
_LANES = re.compile(r"v\d+\.(\d+)[bhsd]")


@dataclass
class InstructionMix:
    """Executed instruction counts inside the library, by kind, and the MACs they issue."""

    vector_fma: int = 0
    dot: int = 0
    vector_int_mac: int = 0
    scalar_fma: int = 0
    vector_macs: int = 0  # multiply-accumulates issued by the three vector kinds
    instructions: int = 0  # every instruction executed inside the library

    @property
    def vector_mac_instructions(self) -> int:
        """Vector FMA, dot-product and vector integer multiply(-accumulate) instructions."""
        return self.vector_fma + self.dot + self.vector_int_mac

    @property
    def vector_share(self) -> float:
        """The share of the executed multiply-accumulates that vector instructions did."""
        total = self.vector_macs + self.scalar_fma
        return self.vector_macs / total if total else 0.0

    def format(self, conv_macs: int) -> str:
        """The ``--stats`` lines."""
        per_mac = self.vector_mac_instructions / conv_macs if conv_macs else 0.0
        return (f"one run under qemu, inside the library: "
                f"{self.instructions:,} instructions; vector FMA {self.vector_fma:,}, "
                f"dot product {self.dot:,}, vector integer multiply {self.vector_int_mac:,}, "
                f"scalar FMA {self.scalar_fma:,}\n"
                f"           they issue {self.vector_macs:,} multiply-accumulates = "
                f"{self.vector_macs / max(conv_macs, 1):.1%} of the {conv_macs:,} conv MACs "
                f"({per_mac:.3f} vector instructions a MAC; Winograd layers need fewer "
                f"multiplies than their MACs) and {self.vector_share:.1%} of those executed")


def _weight(word: int, mnemonic: str, operands: str) -> tuple[str, int] | None:
    """(kind, multiply-accumulates) of one instruction, or None for anything else."""
    if any(word & mask == value for mask, value in DOT_ENCODINGS):
        return "dot", (4 if word & (1 << 30) else 2) * 4  # Q: 4 lanes, else 2; 4 bytes each
    if mnemonic in SCALAR_FMA:
        return "scalar_fma", 1
    kinds = (("vector_fma", VECTOR_FMA, 1), ("dot", DOT, 4),
             ("vector_int_mac", VECTOR_INT_MAC, 1))
    for kind, names, per_lane in kinds:
        if mnemonic in names:
            lanes = _LANES.search(operands)
            if lanes is None:  # the scalar form (mul x0, ...): address arithmetic
                return None
            return kind, int(lanes.group(1)) * per_lane
    return None


def measure(lib: str | Path, seed: int = 0) -> InstructionMix:
    """Run ``lib`` (another architecture's library) once under qemu with random inputs
    and count the instructions executed inside it."""
    model = EmulatedModel(lib)
    text = [s for s in read_sections(model.path) if s.exec]
    lo = min(s.address for s in text)
    hi = max(s.address + s.size for s in text)
    rng = np.random.default_rng(seed)
    feeds = {spec.name: (rng.random(spec.concrete_shape(1)) * 255).astype(spec.dtype)
             for spec in model.input_specs}
    with tempfile.TemporaryDirectory(prefix="sqzc-mix-") as tmp:
        log = Path(tmp) / "qemu.log"
        try:
            _, stdout = model.invoke(feeds, qemu_args=["-d", "in_asm,exec,nochain", "-D",
                                                       str(log)],
                                     env={"SQZ_RUNNER_BASE": "1"})
        except LibraryError as e:
            raise LibraryError(f"{model.path}: tracing it under qemu failed: {e}") from None
        base_line = re.search(r"base (0x[0-9a-f]+)", stdout)
        if base_line is None:
            raise LibraryError(f"{model.path}: tracing it under qemu failed: the runner "
                               f"printed no load base")
        base = int(base_line.group(1), 16)
        blocks: dict[int, list[tuple[int, str, str]]] = {}
        runs: Counter[int] = Counter()
        current: list[tuple[int, str, str]] | None = None
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Trace"):
                    m = _TRACE.match(line)
                    if m:
                        runs[int(m.group(1), 16)] += 1
                    current = None
                elif line.startswith("IN:"):
                    current = []
                elif current is not None:
                    m = _INSN.match(line.strip())
                    if m is None:
                        continue
                    if not current:
                        blocks[int(m.group(1), 16)] = current
                    current.append((int(m.group(2), 16), m.group(3), m.group(4)))
    mix = InstructionMix()
    for pc, count in runs.items():
        if not lo <= pc - base < hi or pc not in blocks:
            continue
        for word, mnemonic, operands in blocks[pc]:
            mix.instructions += count
            weighted = _weight(word, mnemonic, operands)
            if weighted is None:
                continue
            kind, macs = weighted
            setattr(mix, kind, getattr(mix, kind) + count)
            if kind != "scalar_fma":
                mix.vector_macs += count * macs
    return mix
