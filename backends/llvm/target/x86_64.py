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
