"""AArch64 (Arm64) target facts: the CPUs sqzc can name, and what a feature string means
for the kernels (NEON vector width, the dot-product extension, register tiles), plus the
few facts the generated runtime code needs (the spin-wait hint, the futex system call
number, the hardware-capability bits the library checks at load).

Same interface as ``x86_64``; ``sqzc.backends.llvm.target`` picks the module by the
triple's architecture. Numbers without Arm hardware to measure on are reasoned from the
register file (32 x 128-bit NEON registers) and stated as such.
"""

from __future__ import annotations

from sqzc.backends.llvm.target.tiles import TileShape

#: The triple of an Arm64 Linux (glibc) library.
TRIPLE = "aarch64-unknown-linux-gnu"
#: Triples ``--target`` accepts for this architecture (GNU spelling, and LLVM's).
TRIPLES = ("aarch64-linux-gnu", TRIPLE)

#: Named CPUs with the features sqzc's emitters rely on: every Armv8-A core has NEON
#: (Advanced SIMD) with fused multiply-add; the dot-product extension (SDOT/UDOT) came
#: with Armv8.2-A cores such as the Cortex-A76 (Raspberry Pi 5) and Neoverse N1
#: (AWS Graviton 2); the Cortex-A53 (Pi 3) and A72 (Pi 4) lack it.
KNOWN_CPUS = {
    "cortex-a53": "+neon,+fp-armv8",
    "cortex-a72": "+neon,+fp-armv8",
    "cortex-a76": "+neon,+fp-armv8,+dotprod,+fullfp16",
    "neoverse-n1": "+neon,+fp-armv8,+dotprod,+fullfp16",
}
#: LLVM's name of the baseline Armv8-A CPU (NEON only).
GENERIC_CPUS = ("generic",)
GENERIC_FEATURES = "+neon,+fp-armv8"

#: What a waiting worker executes between polls (x86's ``pause`` counterpart): ``yield``,
#: hint #1 (intrinsic, arguments).
SPIN_HINT: tuple[str, tuple[int, ...]] = ("llvm.aarch64.hint", (1,))
#: ``futex`` in the generic Linux system call table that arm64 uses.
SYS_FUTEX = 98
#: The floating-point control register and its default (round to nearest, no flush-to-
#: zero, no default NaN): what ``sqz_init`` pins (``backends/llvm/fpenv.py``).
FP_CONTROL = ("fpcr", 0)

#: LLVM feature -> bit of the Linux ``AT_HWCAP`` word (``getauxval``) that reports it
#: (arch/arm64/include/uapi/asm/hwcap.h): what the library checks before its first
#: kernel. Features without an entry are not checked.
HWCAP_BITS = {"fp-armv8": 0, "neon": 1, "fullfp16": 9, "dotprod": 20}


#: /proc/cpuinfo "Features" word -> LLVM feature, for the extensions the kernels use that
#: LLVM's Linux host detection leaves out (it maps only asimd, fp, crc32, atomics, sve, sve2
#: and the crypto words, so a Cortex-A76's host features lack dotprod and fullfp16).
CPUINFO_FEATURES = {"asimddp": "dotprod", "asimdhp": "fullfp16"}


def host_features(llvm_features: str) -> str:
    """LLVM's host feature string plus what the kernel reports that LLVM does not map."""
    from sqzc.runtime.cpu import host_cpu_flags

    flags = host_cpu_flags() or frozenset()
    named = {f[1:] for f in llvm_features.split(",") if f}
    extra = [f"+{llvm}" for word, llvm in CPUINFO_FEATURES.items()
             if word in flags and llvm not in named]
    return ",".join(f for f in (*llvm_features.split(","), *extra) if f)


def _flags(features: str) -> set[str]:
    return set(features.split(","))


def vector_width(features: str) -> int:
    """float32 lanes of a NEON register (128 bits)."""
    return 4


def has_fma(features: str) -> bool:
    """NEON has fused multiply-add (``fmla``) on every Armv8-A core."""
    return True


def has_vnni(features: str) -> bool:
    """x86's VNNI does not exist here (the dot-product extension is ``has_dotprod``)."""
    return False


def has_dotprod(features: str) -> bool:
    """True with the Armv8.2 dot-product extension (SDOT/UDOT)."""
    return "+dotprod" in _flags(features)


def channel_block(vector_width: int) -> int:
    """Channels per block of the NCHW[b]c layouts: 8, two NEON registers, so that a tap
    of the register tile loads two weight vectors for each input broadcast (as the
    8-wide output-channel tiles of NEON GEMM kernels do)."""
    return 8


def conv_tile(vector_width: int, block: int) -> TileShape:
    """6 pixels x 2 blocks of 8 channels: 24 accumulator registers, 4 for the weights and
    1 for the broadcast input, of NEON's 32 (not measured: no Arm hardware here)."""
    regs_per_vec = max(1, block // vector_width)
    return TileShape(6, 2) if regs_per_vec == 2 else TileShape(6, 4 // regs_per_vec or 1)


def depthwise_pixels(vector_width: int, block: int) -> int:
    """Pixels of the depthwise kernel's register tile: 6 accumulators of an 8-channel
    block are 12 NEON registers, leaving room for the weight and input vectors (not
    measured: no Arm hardware here)."""
    return 6


def winograd_tile(vector_width: int, block: int) -> TileShape:
    """The direct tile: the same register budget."""
    return conv_tile(vector_width, block)


def mlas_nchwc_block(features: str) -> int:
    """onnxruntime's NCHWc transformer is x86-only: no NCHWc block on Arm64."""
    return 0


def pair_dot(features: str, lanes: int) -> tuple[int, str]:
    """No pair-dot instruction: without the dot-product extension the integer kernels
    build it from widening multiplies (the empty intrinsic name asks for the portable
    form); with it they use SDOT on 4-byte groups (``Target.sdot_blocks``)."""
    return lanes, ""


def hwcap_requirements(features: str) -> int:
    """The ``AT_HWCAP`` bits a feature string needs."""
    mask = 0
    for name in _flags(features):
        if name.startswith("+") and name[1:] in HWCAP_BITS:
            mask |= 1 << HWCAP_BITS[name[1:]]
    return mask


def qconv_tile(vector_width: int, block: int, group: int) -> TileShape:
    """The integer kernels pair int16 products here (no VNNI groups): the float tile."""
    return conv_tile(vector_width, block)


def cpuid_requirements(features: str) -> tuple[dict[tuple[int, int, int], int], int]:
    """No CPUID on Arm: the load-time check reads ``AT_HWCAP`` (``hwcap_requirements``)."""
    return {}, 0
