"""Target description: which CPU the generated code is for, as plain data.

Emitters branch on ``Target`` fields in one place (vector width, VNNI), never on llvmlite
host queries, so a cross-target build (``--target-cpu generic``) is as testable as a host
build.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import llvmlite.binding as llvm

from sqzc.errors import UsageError


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
        flags = set(self.features.split(","))
        return "+fma" in flags or "+avx512f" in flags

    @property
    def is_generic(self) -> bool:
        """True for the baseline x86-64 target (no ISA extensions assumed)."""
        return self.cpu in ("generic", "x86-64")

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


def _width(features: str) -> int:
    flags = set(features.split(","))
    if "+avx512f" in flags:
        return 16
    if "+avx2" in flags or "+avx" in flags:
        return 8
    return 4


def host_target() -> Target:
    """The CPU this process runs on, with all its features."""
    init_llvm()
    feats = llvm.get_host_cpu_features().flatten()
    return Target(llvm.get_process_triple(), llvm.get_host_cpu_name(), feats, _width(feats),
                  "+avx512vnni" in feats.split(","))


def resolve_target(cpu: str) -> Target:
    """``host``, ``generic`` (baseline x86-64) or an LLVM CPU name such as ``znver4``."""
    init_llvm()
    if cpu == "host":
        return host_target()
    triple = llvm.get_process_triple()
    if cpu in ("generic", "x86-64"):
        return Target(triple, "x86-64", "", 4, False)
    if cpu not in _KNOWN:
        raise UsageError(f"unknown target CPU '{cpu}'; choose host, generic or one of "
                         f"{', '.join(sorted(_KNOWN))}")
    feats = _KNOWN[cpu]
    return Target(triple, cpu, feats, _width(feats), "+avx512vnni" in feats.split(","))


#: Named CPUs sqzc can target, with the features its emitters rely on (llvmlite cannot
#: list a CPU's default features, so the table says which ones sqzc assumes).
_KNOWN = {
    "znver4": "+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx512vnni,+avx2,+fma,+f16c",
    "znver5": "+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx512vnni,+avx2,+fma,+f16c",
    "skylake-avx512": "+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx2,+fma,+f16c",
    "icelake-server": "+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx512vnni,+avx2,+fma,+f16c",
    "haswell": "+avx2,+fma,+f16c",
    "znver3": "+avx2,+fma,+f16c",
    "znver2": "+avx2,+fma,+f16c",
}

