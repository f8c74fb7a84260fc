"""Does this CPU have every instruction-set extension a library was compiled for?

A library built for ``znver4`` or for the AVX-512 host it was compiled on dies of SIGILL
on a CPU without AVX-512, at the first vector instruction, with no message. The runtime
prevents that: before it calls into a library it compares the ``+feature`` list in the
library's metadata (``target.features``, LLVM's names) with the flags the Linux kernel
reports for this CPU (``/proc/cpuinfo``; the kernel drops a flag the OS cannot run, such
as AVX-512 without its register state enabled), and refuses with the missing feature's
name. Features that no cpuinfo flag reports (LLVM's tuning and system features) cannot be
checked and are skipped; every extension a kernel can use has an entry. Where there is no
``/proc/cpuinfo`` (another OS) nothing can be checked.

Imports only the standard library (the runtime's rule).
"""

from __future__ import annotations

import functools
import platform

__all__ = ["host_cpu_flags", "missing_features"]

#: LLVM x86 feature name -> the /proc/cpuinfo flag that reports it, where they differ.
_CPUINFO_NAME = {
    "64bit": "lm", "sse3": "pni", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "crc32": "sse4_2",
    "pclmul": "pclmulqdq", "rdrnd": "rdrand", "sahf": "lahf_lm", "lzcnt": "abm",
    "bmi": "bmi1", "sha": "sha_ni", "prfchw": "3dnowprefetch", "evex512": "avx512f",
    "avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16", "avx512fp16": "avx512_fp16",
    "avx512vbmi2": "avx512_vbmi2", "avx512bitalg": "avx512_bitalg",
    "avx512vpopcntdq": "avx512_vpopcntdq", "avx512vp2intersect": "avx512_vp2intersect",
    "avxvnni": "avx_vnni", "avxifma": "avx_ifma", "avxvnniint8": "avx_vnni_int8",
    "avxneconvert": "avx_ne_convert", "amx-tile": "amx_tile", "amx-int8": "amx_int8",
    "amx-bf16": "amx_bf16", "amx-fp16": "amx_fp16", "amx-complex": "amx_complex",
}
#: LLVM x86 features whose cpuinfo flag has the same name (the instruction-set
#: extensions code generation can use).
_SAME_NAME = frozenset({
    "sse", "sse2", "ssse3", "sse4a", "avx", "avx2", "fma", "fma4", "xop", "f16c", "bmi2",
    "adx", "aes", "vaes", "vpclmulqdq", "gfni", "popcnt", "movbe", "cx8", "cx16", "cmov",
    "mmx", "fxsr", "xsave", "xsaveopt", "xsavec", "xsaves", "rdseed", "rdpid", "clwb",
    "clflushopt", "cldemote", "movdiri", "movdir64b", "serialize", "tbm", "avx512f",
    "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx512ifma", "avx512vbmi",
    "fsgsbase", "invpcid", "waitpkg", "clzero", "mwaitx", "rdpru", "wbnoinvd", "pku",
})


#: LLVM AArch64 feature name -> the /proc/cpuinfo "Features" word that reports it (the
#: extensions the Arm64 kernels use; arch/arm64/kernel/cpuinfo.c).
_AARCH64_CPUINFO_NAME = {"neon": "asimd", "fp-armv8": "fp", "dotprod": "asimddp",
                         "fullfp16": "asimdhp", "i8mm": "i8mm", "bf16": "bf16",
                         "sve": "sve", "crc": "crc32", "lse": "atomics"}
#: The /proc/cpuinfo line that lists the CPU's flags, by architecture.
_FLAGS_LINE = {"x86_64": "flags", "amd64": "flags", "aarch64": "Features", "arm64": "Features"}


@functools.cache
def host_cpu_flags() -> frozenset[str] | None:
    """The CPU flags Linux reports for this machine, or None where that is unknown."""
    key = _FLAGS_LINE.get(platform.machine().lower())
    if key is None:
        return None
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == key:
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def missing_features(features: str, host: frozenset[str] | None = None,
                     arch: str | None = None) -> list[str]:
    """The ``+feature``s of an LLVM feature string that ``host`` (default: this CPU's
    flags) lacks, by LLVM name; [] when nothing is missing or nothing can be checked.
    ``arch`` (default: this machine's) says whose feature names these are."""
    flags = host_cpu_flags() if host is None else host
    if flags is None:
        return []
    if (arch or platform.machine()).lower() in ("aarch64", "arm64"):
        return [name[1:] for name in (i.strip() for i in features.split(","))
                if name.startswith("+") and name[1:] in _AARCH64_CPUINFO_NAME
                and _AARCH64_CPUINFO_NAME[name[1:]] not in flags]
    missing = []
    for item in features.split(","):
        name = item.strip()
        if not name.startswith("+"):
            continue
        name = name[1:]
        flag = _CPUINFO_NAME.get(name, name if name in _SAME_NAME else None)
        if flag is not None and flag not in flags:
            missing.append(name)
    return missing
