"""Target description: which CPU the generated code is for, as plain data, and the facts
the emitters derive from it.

Emitters branch on ``Target`` fields and facts in one place (vector width, FMA, VNNI,
register tiles, channel block), never on llvmlite host queries or feature strings, so a
cross-target build (``--target-cpu generic``, ``--target aarch64-linux-gnu``) is as
testable as a host build. What a feature string means is architecture knowledge and
lives in one module per architecture (``x86_64``, ``aarch64``: the same functions and
constants, chosen by the triple through ``ARCHES``); this module resolves target names
and exposes the facts. A new architecture is a new module here plus its entry in
``ARCHES`` (and kernels where generic vector IR is not enough).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import ModuleType

import llvmlite.binding as llvm

from sqzc.backends.llvm.target import aarch64, x86_64
from sqzc.backends.llvm.target.tiles import TileShape
from sqzc.errors import UsageError

__all__ = ["ARCHES", "KNOWN_CPUS", "Target", "TileShape", "arch_of", "host_target",
           "init_llvm", "module_arch", "resolve_target"]

#: Architecture name (a triple's first field) -> its target description module.
ARCHES: dict[str, ModuleType] = {"x86_64": x86_64, "aarch64": aarch64}
KNOWN_CPUS = x86_64.KNOWN_CPUS


def arch_of(triple: str) -> ModuleType:
    """The target description of ``triple``'s architecture."""
    arch = triple.split("-", 1)[0]
    if arch not in ARCHES:
        raise UsageError(f"unsupported target '{triple}'; choose one of "
                         f"{', '.join(t for a in ARCHES.values() for t in a.TRIPLES[:1])}")
    return ARCHES[arch]


def module_arch(module: object) -> ModuleType:
    """The target description of an ``llvmlite.ir.Module`` (its ``triple``; a module
    without one is for this machine), for runtime code built without a ``Target``."""
    triple = getattr(module, "triple", "")
    if not triple or triple.startswith("unknown"):  # llvmlite's default
        triple = llvm.get_process_triple()
    return arch_of(triple)


@functools.cache
def init_llvm() -> None:
    """Initialize LLVM's targets once per process: the native one (and its assembly
    parser: the weights' module asm ``.incbin`` needs it) and every other one, for
    cross builds."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()


@dataclass(frozen=True)
class Target:
    """A code-generation target: LLVM triple, CPU name, feature string and derived facts."""

    triple: str
    cpu: str
    features: str
    vector_width: int  # float32 lanes of the widest vector unit the code may use
    has_vnni: bool

    @property
    def arch(self) -> ModuleType:
        """This target's architecture description (``x86_64`` or ``aarch64``)."""
        return arch_of(self.triple)

    @property
    def is_native(self) -> bool:
        """True when this process's CPU architecture runs the code (no emulator)."""
        return self.arch is arch_of(llvm.get_process_triple())

    @property
    def has_fma(self) -> bool:
        """True if fused multiply-add is an instruction (without it ``llvm.fma`` becomes a
        call to the C library's exact, slow ``fmaf``)."""
        return self.arch.has_fma(self.features)

    @property
    def has_dotprod(self) -> bool:
        """True with Arm's dot-product extension (SDOT/UDOT)."""
        return self.arch.has_dotprod(self.features)

    @property
    def is_generic(self) -> bool:
        """True for an architecture's baseline target (no ISA extensions assumed)."""
        return self.cpu in self.arch.GENERIC_CPUS

    @property
    def channel_block(self) -> int:
        """Channels per block of the NCHW[b]c layouts the layout pass assigns."""
        return self.arch.channel_block(self.vector_width)

    @property
    def vnni_blocks(self) -> bool:
        """True if integer convs on blocked tensors use VNNI's 4-byte groups (AVX512-VNNI
        and 16-channel blocks); else int16 pairs (``pmaddwd``)."""
        return self.has_vnni and self.channel_block == 16

    @property
    def sdot_blocks(self) -> bool:
        """True if integer convs on blocked tensors use Arm's SDOT on 4-byte groups of
        signed bytes (the dot-product extension); else int16 pairs."""
        return self.has_dotprod

    def conv_tile(self, block: int) -> TileShape:
        """Register tile of the direct blocked float convolution on ``block``-channel
        blocks."""
        return self.arch.conv_tile(self.vector_width, block)

    def depthwise_pixels(self, block: int) -> int:
        """Output pixels the depthwise kernel keeps in vector registers (one accumulator
        of ``block`` channels each)."""
        return self.arch.depthwise_pixels(self.vector_width, block)

    def winograd_tile(self, block: int) -> TileShape:
        """Register tile of the Winograd convolution's transformed-domain product."""
        return self.arch.winograd_tile(self.vector_width, block)

    def qconv_tile(self, block: int, group: int) -> TileShape:
        """Register tile of the blocked integer convolution for input-channel groups of
        ``group`` bytes (4: VNNI, 2: int16 pairs)."""
        return self.arch.qconv_tile(self.vector_width, block, group)

    @property
    def ort_nchwc_block(self) -> int:
        """The channel block of onnxruntime's NCHWc transformer on this CPU (0: none),
        which decides its pooling summation order (``sqzc.ort.orders``)."""
        return self.arch.mlas_nchwc_block(self.features)

    @property
    def cpuid_requirements(self) -> tuple[dict[tuple[int, int, int], int], int]:
        """What an x86 library checks at run time before its first kernel: the cpuid bits
        of its features ({(leaf, subleaf, register): mask}) and the XCR0 state the OS must
        have enabled (``backends/llvm/cpu_check.py``); empty elsewhere."""
        return self.arch.cpuid_requirements(self.features)

    @property
    def hwcap_requirements(self) -> int:
        """The Linux ``AT_HWCAP`` bits an Arm64 library checks instead (0 elsewhere)."""
        return self.arch.hwcap_requirements(self.features)

    def pair_dot(self, lanes: int) -> tuple[int, str]:
        """(width in 32-bit lanes, LLVM intrinsic) of the int16-pair dot product the pair
        kernel uses for ``lanes``-lane vectors; an empty name: build it from widening
        multiplies (``qconv_blocked._pair_dot``)."""
        return self.arch.pair_dot(self.features, lanes)

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
    arch = arch_of(triple)
    return Target(triple, cpu, features, arch.vector_width(features), arch.has_vnni(features))


def host_target() -> Target:
    """The CPU this process runs on, with all its features."""
    init_llvm()
    triple = llvm.get_process_triple()
    feats = arch_of(triple).host_features(llvm.get_host_cpu_features().flatten())
    return _target(triple, llvm.get_host_cpu_name(), feats)


def resolve_target(cpu: str, triple: str = "host") -> Target:
    """The target of ``--target TRIPLE --target-cpu CPU``: this machine (``host``), an
    architecture's baseline (``generic``) or a named CPU of its description's table
    (``znver4``, ``cortex-a76`` ...). ``host`` as the CPU of another architecture is an
    error: there is no host CPU of it to ask."""
    init_llvm()
    native = llvm.get_process_triple()
    if triple == "host" or arch_of(triple) is arch_of(native):
        if cpu == "host":
            return host_target()
        triple = native
    arch = arch_of(triple)
    if arch is x86_64 and arch is not arch_of(native):
        # the x86 library's CPU check is inline assembly (cpuid, xgetbv): emitting it needs
        # LLVM's x86 assembly parser, which llvmlite initializes only on an x86-64 host
        # (elsewhere LLVM aborts the process: "Inline asm not supported by this streamer")
        raise UsageError(f"--target {triple}: x86-64 libraries can be built on an x86-64 "
                         f"host only")
    triple = arch.TRIPLE if triple != native else triple
    if cpu == "host":
        raise UsageError(f"--target {triple} is not this machine: name its CPU with "
                         f"--target-cpu (generic or one of "
                         f"{', '.join(sorted(arch.KNOWN_CPUS))})")
    if cpu in arch.GENERIC_CPUS:
        return _target(triple, "generic" if arch is not x86_64 else "x86-64",
                       arch.GENERIC_FEATURES)
    if cpu not in arch.KNOWN_CPUS:
        raise UsageError(f"unknown target CPU '{cpu}' for {arch.TRIPLE}; choose "
                         f"{'host, ' if arch is arch_of(native) else ''}generic or one of "
                         f"{', '.join(sorted(arch.KNOWN_CPUS))}")
    return _target(triple, cpu, arch.KNOWN_CPUS[cpu])
