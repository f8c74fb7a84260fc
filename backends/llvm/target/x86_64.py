"""x86-64 target facts: the CPUs sqzc can name, and what a feature string means for the
kernels (vector width, FMA, VNNI, register tiles, the ``pmaddwd`` width).

This is the only module that parses LLVM feature strings or turns a vector width into a
kernel shape; ``Target`` exposes the results as facts, so emitters never parse features
and a new CPU or ISA extension changes this file, not the kernels. (onnxruntime's own
NCHWc block size is read here too, ``mlas_nchwc_block``; what onnxruntime does with it
is in ``sqzc.ort.orders``.)
"""

from __future__ import annotations

from sqzc.backends.llvm.target.tiles import TileShape

#: Named CPUs sqzc can target, with the features its emitters rely on (llvmlite cannot
#: list a CPU's default features, so the table says which ones sqzc assumes).
KNOWN_CPUS = {
    "znver4": "+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx512vnni,+avx2,+fma,+f16c",
    "znver5": "+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx512vnni,+avx2,+fma,+f16c",
    "skylake-avx512": "+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx2,+fma,+f16c",
    "icelake-server": "+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx512vnni,+avx2,+fma,+f16c",
    "haswell": "+avx2,+fma,+f16c",
    "znver3": "+avx2,+fma,+f16c",
    "znver2": "+avx2,+fma,+f16c",
}

#: LLVM's names of baseline x86-64 (no ISA extension assumed).
GENERIC_CPUS = ("generic", "x86-64")
GENERIC_FEATURES = ""
#: The triple of an x86-64 Linux (glibc) library.
TRIPLE = "x86_64-unknown-linux-gnu"
#: Triples ``--target`` accepts for this architecture.
TRIPLES = ("x86_64-linux-gnu", TRIPLE)

#: What a waiting worker executes between polls: ``pause`` (intrinsic, arguments).
SPIN_HINT: tuple[str, tuple[int, ...]] = ("llvm.x86.sse2.pause", ())
#: ``futex`` in the x86-64 Linux system call table.
SYS_FUTEX = 202
#: The floating-point control register and its default (round to nearest, every
#: exception masked, no flush-to-zero): what ``sqz_init`` pins (``backends/llvm/fpenv.py``).
FP_CONTROL = ("mxcsr", 0x1F80)


def host_features(llvm_features: str) -> str:
    """LLVM's host feature string is complete here (cpuid)."""
    return llvm_features


def _flags(features: str) -> set[str]:
    return set(features.split(","))


def vector_width(features: str) -> int:
    """float32 lanes of the widest vector unit ``features`` allow (AVX-512: 16, AVX: 8,
    SSE: 4)."""
    flags = _flags(features)
    if "+avx512f" in flags:
        return 16
    if "+avx2" in flags or "+avx" in flags:
        return 8
    return 4


def mlas_nchwc_block(features: str) -> int:
    """The channel block onnxruntime's NCHWc transformer uses on a CPU with ``features``
    (MLAS's ``MlasNchwcGetBlockSize``: 16 with AVX-512F, 8 with AVX2, 0 = no NCHWc
    otherwise). onnxruntime's summation order for pools depends on it
    (``sqzc.ort.orders``), so it is a fact of the target like the others here."""
    flags = _flags(features)
    if "+avx512f" in flags:
        return 16
    return 8 if "+avx2" in flags else 0


def has_fma(features: str) -> bool:
    """True if fused multiply-add is an instruction (without it ``llvm.fma`` becomes a
    call to the C library's exact, slow ``fmaf``)."""
    flags = _flags(features)
    return "+fma" in flags or "+avx512f" in flags


def has_vnni(features: str) -> bool:
    """True with AVX512-VNNI (``vpdpbusd``)."""
    return "+avx512vnni" in _flags(features)


def has_dotprod(features: str) -> bool:
    """Arm's dot-product extension does not exist here (x86's is ``has_vnni``)."""
    return False


def hwcap_requirements(features: str) -> int:
    """x86 checks CPUID (``cpuid_requirements``), not ``AT_HWCAP``."""
    return 0


def channel_block(vector_width: int) -> int:
    """Channels per block of the NCHW[b]c layouts: one 16-float vector on AVX-512, else 8
    (one AVX2 vector, two SSE ones)."""
    return 16 if vector_width >= 16 else 8


def conv_tile(vector_width: int, block: int) -> TileShape:
    """Register tile for a target. AVX-512: 3 channel blocks x 7 pixels = 21 accumulators;
    measured on SqueezeNet 1.0 against 2 x 14, 3 x 8, 4 x 6, 4 x 7, 5 x 5 and 6 x 4 it is
    the fastest (the 7x7 first layer 1.5x, the whole model 1.15x over 2 x 14), since
    each input broadcast now feeds three FMAs."""
    regs_per_vec = max(1, block // vector_width)
    if vector_width >= 16:
        return TileShape(7, 3)
    if vector_width >= 8:
        return TileShape(6 // regs_per_vec or 3, 2) if regs_per_vec == 1 else TileShape(3, 2)
    return TileShape(3, 1)


def depthwise_pixels(vector_width: int, block: int) -> int:
    """Pixels of the depthwise kernel's register tile: 8 accumulators of one block, each
    input vector loaded once per tap (16 registers on AVX2 leave room for the weight and
    the loads; more pixels only lengthen the ragged tail on 7x7 and 14x14 maps)."""
    return 8


def winograd_tile(vector_width: int, block: int) -> TileShape:
    """Tiles x channel blocks of the transformed-domain product. AVX-512: 12 x 2 (24
    accumulators): measured on SqueezeNet 1.0/1.1 against 7 x 3, 8 x 3, 9 x 3, 8 x 2,
    10 x 2, 6 x 4 and 4 x 6, it is the fastest; here the K loop is short (the input
    channels) and the accumulators go to memory per position, so long tiles pay off."""
    if vector_width >= 16:
        return TileShape(12, 2)
    return conv_tile(vector_width, block)


#: Register tile of the VNNI integer conv: 7 pixels x 3 channel blocks = 21 accumulators
#: (measured on the int8 SqueezeNet 1.1 against 14 x 2, 12 x 2, 10 x 2, 9 x 3 and 8 x 3:
#: 1.1x faster than 14 x 2, since each input broadcast feeds three vpdpbusd).
VNNI_TILE = TileShape(7, 3)


def qconv_tile(vector_width: int, block: int, group: int) -> TileShape:
    """Register tile of the blocked integer convolution: VNNI's when input channels come
    in 4-byte groups (``vpdpbusd``), else (int16 pairs) the float kernel's, which fits
    the target's vector registers (16 ymm on AVX2)."""
    return VNNI_TILE if group == 4 else conv_tile(vector_width, block)


def pair_dot(features: str, lanes: int) -> tuple[int, str]:
    """The ``pmaddwd`` for ``lanes`` 32-bit lanes of int16 pairs: (its width in 32-bit
    lanes, the LLVM intrinsic). AVX-512BW does 16 at once, AVX2 8, baseline x86-64 (SSE2)
    4; a kernel wider than the instruction splits its vectors."""
    flags = _flags(features)
    if lanes == 16 and "+avx512bw" in flags:
        return 16, "llvm.x86.avx512.pmaddw.d.512"
    if lanes >= 8 and "+avx2" in flags:
        return 8, "llvm.x86.avx2.pmadd.wd"
    return 4, "llvm.x86.sse2.pmadd.wd"


#: LLVM feature -> (cpuid leaf, subleaf, register 0-3 = eax/ebx/ecx/edx, bit) that reports
#: it (Intel SDM vol. 2A, CPUID; AMD APM vol. 3): what the library checks at run time
#: before its first kernel (``backends/llvm/cpu_check.py``). Features without an entry
#: (tuning hints, system features) are not checked.
CPUID_BITS: dict[str, tuple[int, int, int, int]] = {
    "sse3": (1, 0, 2, 0), "ssse3": (1, 0, 2, 9), "fma": (1, 0, 2, 12), "cx16": (1, 0, 2, 13),
    "sse4.1": (1, 0, 2, 19), "sse4.2": (1, 0, 2, 20), "crc32": (1, 0, 2, 20),
    "movbe": (1, 0, 2, 22), "popcnt": (1, 0, 2, 23), "aes": (1, 0, 2, 25),
    "xsave": (1, 0, 2, 26), "avx": (1, 0, 2, 28), "f16c": (1, 0, 2, 29),
    "rdrnd": (1, 0, 2, 30), "pclmul": (1, 0, 2, 1),
    "cx8": (1, 0, 3, 8), "cmov": (1, 0, 3, 15), "mmx": (1, 0, 3, 23), "fxsr": (1, 0, 3, 24),
    "sse": (1, 0, 3, 25), "sse2": (1, 0, 3, 26),
    "fsgsbase": (7, 0, 1, 0), "bmi": (7, 0, 1, 3), "avx2": (7, 0, 1, 5), "bmi2": (7, 0, 1, 8),
    "avx512f": (7, 0, 1, 16), "evex512": (7, 0, 1, 16), "avx512dq": (7, 0, 1, 17),
    "rdseed": (7, 0, 1, 18), "adx": (7, 0, 1, 19), "avx512ifma": (7, 0, 1, 21),
    "clflushopt": (7, 0, 1, 23), "clwb": (7, 0, 1, 24), "avx512cd": (7, 0, 1, 28),
    "sha": (7, 0, 1, 29), "avx512bw": (7, 0, 1, 30), "avx512vl": (7, 0, 1, 31),
    "avx512vbmi": (7, 0, 2, 1), "avx512vbmi2": (7, 0, 2, 6), "gfni": (7, 0, 2, 8),
    "vaes": (7, 0, 2, 9), "vpclmulqdq": (7, 0, 2, 10), "avx512vnni": (7, 0, 2, 11),
    "avx512bitalg": (7, 0, 2, 12), "avx512vpopcntdq": (7, 0, 2, 14), "rdpid": (7, 0, 2, 22),
    "movdiri": (7, 0, 2, 27), "movdir64b": (7, 0, 2, 28),
    "avx512vp2intersect": (7, 0, 3, 8), "serialize": (7, 0, 3, 14),
    "amx-bf16": (7, 0, 3, 22), "avx512fp16": (7, 0, 3, 23), "amx-tile": (7, 0, 3, 24),
    "amx-int8": (7, 0, 3, 25),
    "avxvnni": (7, 1, 0, 4), "avx512bf16": (7, 1, 0, 5), "avxifma": (7, 1, 0, 23),
    "avxvnniint8": (7, 1, 3, 4), "avxneconvert": (7, 1, 3, 5),
    "sahf": (0x80000001, 0, 2, 0), "lzcnt": (0x80000001, 0, 2, 5),
    "sse4a": (0x80000001, 0, 2, 6), "prfchw": (0x80000001, 0, 2, 8),
    "xop": (0x80000001, 0, 2, 11), "fma4": (0x80000001, 0, 2, 16), "tbm": (0x80000001, 0, 2, 21),
    "64bit": (0x80000001, 0, 3, 29),
}
#: XCR0 state components the OS must have enabled (XGETBV) for a feature's registers:
#: SSE|AVX (ymm) for AVX and up, plus opmask|ZMM_Hi256|Hi16_ZMM for AVX-512.
XCR0_AVX = 0x6
XCR0_AVX512 = 0xE6


def cpuid_requirements(features: str) -> tuple[dict[tuple[int, int, int], int], int]:
    """The cpuid bits a feature string needs, as {(leaf, subleaf, register): mask}, and
    the XCR0 bits the OS must have enabled (0: no XGETBV check)."""
    masks: dict[tuple[int, int, int], int] = {}
    xcr0 = 0
    for name in sorted(f for f in _flags(features) if f.startswith("+")):
        feat = name[1:]
        if feat not in CPUID_BITS:
            continue
        leaf, sub, reg, bit = CPUID_BITS[feat]
        masks[(leaf, sub, reg)] = masks.get((leaf, sub, reg), 0) | (1 << bit)
        if feat.startswith("avx512") or feat == "evex512":
            xcr0 |= XCR0_AVX512
        elif feat.startswith(("avx", "fma", "f16c", "vaes", "vpclmulqdq", "xop")):
            xcr0 |= XCR0_AVX
    return masks, xcr0
