"""Target description: which CPU the generated code is for, as plain data, and the facts
the emitters derive from it.

Emitters branch on ``Target`` fields and facts in one place (vector width, FMA, VNNI,
register tiles, channel block), never on llvmlite host queries or feature strings, so a
cross-target build (``--target-cpu generic``) is as testable as a host build. What a
feature string means is architecture knowledge and lives in ``x86_64`` (the only
architecture today); this module resolves CPU names and exposes the facts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import llvmlite.binding as llvm

from sqzc.backends.llvm.target import x86_64
from sqzc.backends.llvm.target.tiles import TileShape
from sqzc.errors import UsageError

__all__ = ["KNOWN_CPUS", "Target", "TileShape", "host_target", "init_llvm", "resolve_target"]

KNOWN_CPUS = x86_64.KNOWN_CPUS


@functools.cache
def init_llvm() -> None:
    """Initialize LLVM's native target once per process."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()  # module asm (.incbin of the weights) needs it


@dataclass(frozen=True)
class Target:
    """A code-generation target: LLVM triple, CPU name, feature string and derived facts."""

    triple: str
    cpu: str
    features: str
    vector_width: int  # float32 lanes of the widest vector unit the code may use
    has_vnni: bool

    @property
    def has_fma(self) -> bool:
        """True if fused multiply-add is an instruction (without it ``llvm.fma`` becomes a
        call to the C library's exact, slow ``fmaf``)."""
        return x86_64.has_fma(self.features)

    @property
    def is_generic(self) -> bool:
        """True for the baseline x86-64 target (no ISA extensions assumed)."""
        return self.cpu in x86_64.GENERIC_CPUS

    @property
    def channel_block(self) -> int:
        """Channels per block of the NCHW[b]c layouts the layout pass assigns."""
        return x86_64.channel_block(self.vector_width)

    @property
    def vnni_blocks(self) -> bool:
        """True if integer convs on blocked tensors use VNNI's 4-byte groups (AVX512-VNNI
        and 16-channel blocks); else int16 pairs (``pmaddwd``)."""
        return self.has_vnni and self.channel_block == 16

    def conv_tile(self, block: int) -> TileShape:
        """Register tile of the direct blocked float convolution on ``block``-channel
        blocks."""
        return x86_64.conv_tile(self.vector_width, block)

    def winograd_tile(self, block: int) -> TileShape:
        """Register tile of the Winograd convolution's transformed-domain product."""
        return x86_64.winograd_tile(self.vector_width, block)

    def qconv_tile(self, block: int, group: int) -> TileShape:
        """Register tile of the blocked integer convolution: VNNI's when input channels
        come in 4-byte groups (``vpdpbusd``), else (int16 pairs) the float kernel's, which
        fits the target's vector registers (16 ymm on AVX2)."""
        return x86_64.VNNI_TILE if group == 4 else self.conv_tile(block)

    @property
    def ort_nchwc_block(self) -> int:
        """The channel block of onnxruntime's NCHWc transformer on this CPU (0: none),
        which decides its pooling summation order (``sqzc.ort.orders``)."""
        return x86_64.mlas_nchwc_block(self.features)

    @property
    def cpuid_requirements(self) -> tuple[dict[tuple[int, int, int], int], int]:
        """What the library checks at run time before its first kernel: the cpuid bits of
        its features ({(leaf, subleaf, register): mask}) and the XCR0 state the OS must
        have enabled (``backends/llvm/cpu_check.py``)."""
        return x86_64.cpuid_requirements(self.features)

    def pair_dot(self, lanes: int) -> tuple[int, str]:
        """(width in 32-bit lanes, LLVM intrinsic) of the ``pmaddwd`` the pair kernel
        uses for ``lanes``-lane vectors."""
        return x86_64.pair_dot(self.features, lanes)

    def to_json(self) -> dict[str, object]:
        """The target as recorded in a library's metadata."""
        return {"triple": self.triple, "cpu": self.cpu, "features": self.features,
                "vector_width": self.vector_width, "vnni": self.has_vnni}

    def machine(self, opt_level: int) -> llvm.TargetMachine:
        """An LLVM target machine for PIC shared-library code."""
        init_llvm()
        t = llvm.Target.from_triple(self.triple)
        return t.create_target_machine(cpu=self.cpu, features=self.features, opt=opt_level,
                                       reloc="pic", codemodel="default")


def _target(triple: str, cpu: str, features: str) -> Target:
    return Target(triple, cpu, features, x86_64.vector_width(features),
                  x86_64.has_vnni(features))


def host_target() -> Target:
    """The CPU this process runs on, with all its features."""
    init_llvm()
    feats = llvm.get_host_cpu_features().flatten()
    return _target(llvm.get_process_triple(), llvm.get_host_cpu_name(), feats)


def resolve_target(cpu: str) -> Target:
    """``host``, ``generic`` (baseline x86-64) or an LLVM CPU name such as ``znver4``."""
    init_llvm()
    if cpu == "host":
        return host_target()
    triple = llvm.get_process_triple()
    if cpu in x86_64.GENERIC_CPUS:
        return Target(triple, "x86-64", "", 4, False)
    if cpu not in KNOWN_CPUS:
        raise UsageError(f"unknown target CPU '{cpu}'; choose host, generic or one of "
                         f"{', '.join(sorted(KNOWN_CPUS))}")
    return _target(triple, cpu, KNOWN_CPUS[cpu])
