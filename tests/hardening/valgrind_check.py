#!/usr/bin/env python3
"""Run compiled sqzc libraries under valgrind's memcheck through a tiny C driver.

    python tests/hardening/valgrind_check.py [--target haswell --target generic] [--keep DIR]

For each target CPU this script compiles four small models: a dynamic-batch two-fire mini
SqueezeNet, a static Conv-Relu-MaxPool-Conv model, and the mini SqueezeNet quantized two
ways (``hardening_support.mini_squeezenet_int8``: QOperator with uint8 activations, and
QDQ with int8 activations and per-channel weights, both dynamic-batch, each with a float
Softmax output and an 8-bit ``pool10`` output), so the integer kernels (QLinearConv and
fused QDQ convs, 8-bit max pooling, concat, global average pooling, (de)quantization)
run under memcheck as well as the float ones. It writes a C driver that ``dlopen``s the
library, checks ``sqz_metadata``/``sqz_workspace_size`` and calls ``sqz_run`` per
docs/ABI.md on inputs read from a file, with every buffer ``malloc``ed at its exact size
(so memcheck sees any read or write past an input, output or the workspace), for several
batch sizes and thread counts plus the error returns. The driver then asks memcheck
whether every output byte is defined (``VALGRIND_CHECK_MEM_IS_DEFINED``; without
valgrind's headers it branches on every byte instead), so outputs computed from
uninitialised memory are reported too. The outputs are compared bit for bit with
``sqzc.load`` on the same library.

Run as ``valgrind --error-exitcode=1 --leak-check=no driver lib.so ...``. Exit status: 0
all clean, 1 a valgrind error or wrong results, 3 valgrind or a C compiler is missing.

What valgrind can run (measured with valgrind 3.19.0, the only version apt offers here:
Debian bookworm, -updates and -security; newer upstream releases do not decode AVX-512
either, as far as their bug tracker shows, KDE bug 383010): VEX's amd64 front end has no
EVEX decoder, so the first instruction with an EVEX prefix (0x62) stops
the run with "unhandled instruction bytes: 0x62 ..." and SIGILL. Every AVX-512 target
sqzc has emits EVEX code from the first kernel on:

* float models (``skylake-avx512``, ``icelake-server``, ``znver4``, ``znver5``, and
  ``host`` on an AVX-512 machine such as the Emerald Rapids Xeon this was measured on):
  ``vmovaps zmm`` (62 d1 7c 48 28 ..), a 512-bit load in the first conv kernel;
* int8 models on the Intel targets: ``vpmovdb ymm -> m64`` (62 b2 7e 28 31 ..), the
  narrowing store of the input QuantizeLinear, the first op; on znver4/znver5:
  ``vbroadcastss zmm`` (62 f2 7d 48 18 ..);
* the int8 conv kernels themselves, had the run got that far: AVX512-VNNI
  ``vpdpbusd zmm`` (62 f2 6d 48 50 ..; host, icelake-server, znver4/5) and AVX-512BW
  ``vpmaddwd zmm`` (62 f1 6d 48 f5 ..; skylake-avx512), checked in isolation.

AVX-VNNI's VEX-encoded ``{vex} vpdpbusd ymm`` (c4 e2 75 50 ..) is undecodable too, but
sqzc never emits it (its VNNI path needs AVX512-VNNI and 16-channel blocks); it emits no
AMX either. What valgrind does run, cleanly: ``haswell`` (AVX2 + FMA + F16C; the int8
convs as AVX2 ``vpmaddwd ymm`` on int16 pairs), ``znver2``/``znver3`` (the same features
as haswell in sqzc's target table, so not run by default) and ``generic`` (baseline
x86-64; SSE2 ``pmaddwd xmm``). Those two are the defaults. The AVX-512 code valgrind
cannot run (the host's float kernels, its VNNI int8 kernels, and skylake-avx512's
AVX-512BW int8 kernels) is covered by the guard-byte tests instead
(tests/hardening/test_hardening_guard_bytes.py), which run it natively. ``--target
host`` on an AVX-512 machine fails with the unhandled instruction named (disassembled
with objdump when it is installed), which says nothing about sqzc;
test_hardening_valgrind.py checks that this is still so, so the day a valgrind that
decodes AVX-512 is installed the AVX-512 targets get added here.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hardening_support import (  # noqa: E402
    mini_squeezenet,
    mini_squeezenet_int8,
    save,
    small_conv,
)

import sqzc  # noqa: E402

DRIVER_C = r"""
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define HAVE_MEMCHECK_H 1
#endif
#endif

typedef const char *(*meta_fn)(void);
typedef uint64_t (*ws_fn)(void);
typedef int32_t (*run_fn)(const void *const *, void *const *, void *, int64_t, int32_t);

/* usage: driver LIB N_IN N_OUT BATCH THREADS IN_FILE OUT_FILE BYTES_IN... BYTES_OUT...
   (sizes are for this batch) */
int main(int argc, char **argv) {
    if (argc < 8) { fprintf(stderr, "bad usage\n"); return 2; }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
    meta_fn meta = (meta_fn)dlsym(h, "sqz_metadata");
    ws_fn wsize = (ws_fn)dlsym(h, "sqz_workspace_size");
    run_fn run = (run_fn)dlsym(h, "sqz_run");
    if (!meta || !wsize || !run) { fprintf(stderr, "missing symbol\n"); return 2; }
    const char *m = meta();
    if (!m || strstr(m, "\"abi_version\": 2") == NULL) {
        fprintf(stderr, "bad metadata\n"); return 2;
    }
    int n_in = atoi(argv[2]), n_out = atoi(argv[3]);
    int64_t batch = atoll(argv[4]);
    int32_t threads = atoi(argv[5]);
    if (argc != 8 + n_in + n_out) { fprintf(stderr, "bad size list\n"); return 2; }
    FILE *fi = fopen(argv[6], "rb");
    if (!fi) { perror("input file"); return 2; }
    void **ins = calloc(n_in, sizeof(void *));
    void **outs = calloc(n_out, sizeof(void *));
    size_t *out_bytes = calloc(n_out, sizeof(size_t));
    for (int i = 0; i < n_in; ++i) {
        size_t n = strtoull(argv[8 + i], NULL, 10);
        ins[i] = malloc(n);  /* exact size: memcheck flags any access past it */
        if (fread(ins[i], 1, n, fi) != n) { fprintf(stderr, "short input\n"); return 2; }
    }
    fclose(fi);
    for (int j = 0; j < n_out; ++j) {
        out_bytes[j] = strtoull(argv[8 + n_in + j], NULL, 10);
        outs[j] = malloc(out_bytes[j]);  /* left uninitialised on purpose */
    }
    uint64_t ws_bytes = wsize();
    void *ws = NULL;
    if (ws_bytes && posix_memalign(&ws, 64, ws_bytes) != 0) { perror("memalign"); return 2; }
    /* Error returns first: they must not touch anything (memcheck sees any access). */
    int32_t first = run((const void *const *)ins, outs, ws, 0, threads);
    if (first != 1) {
        fprintf(stderr, "batch 0 not refused (sqz_run returned %d)\n", first); return 1;
    }
    if (ws_bytes && run((const void *const *)ins, outs, (char *)ws + 8, batch, threads) != 3) {
        fprintf(stderr, "misaligned workspace not refused\n"); return 1;
    }
    int32_t rc = 0;
    for (int rep = 0; rep < 2 && rc == 0; ++rep)
        rc = run((const void *const *)ins, outs, ws, batch, threads);
    if (rc != 0) { fprintf(stderr, "sqz_run returned %d\n", rc); return 1; }
    /* Every output byte must be defined: memcheck's client request reports the offset
       of any that is not; without valgrind's headers, branch on every byte (outputs may
       be 8-bit, of any length), which memcheck reports as a conditional jump on an
       uninitialised value. */
    long high = 0;
    FILE *fo = fopen(argv[7], "wb");
    for (int j = 0; j < n_out; ++j) {
        const unsigned char *p = outs[j];
#ifdef HAVE_MEMCHECK_H
        (void)VALGRIND_CHECK_MEM_IS_DEFINED(p, out_bytes[j]);
#endif
        for (size_t k = 0; k < out_bytes[j]; ++k)
            if (p[k] & 0x80) ++high;
        fwrite(outs[j], 1, out_bytes[j], fo);
        free(outs[j]);
    }
    fclose(fo);
    for (int i = 0; i < n_in; ++i) free(ins[i]);
    free(ins); free(outs); free(out_bytes); free(ws);
    dlclose(h);
    printf("ok high_bytes=%ld\n", high);
    return 0;
}
"""

#: (batch, threads) per run; static-batch models only run batch 1.
RUNS = ((1, 1), (3, 2), (2, 1), (1, 3))
#: Targets valgrind can decode (see the module docstring): AVX2 and baseline x86-64.
DEFAULT_TARGETS = ("haswell", "generic")
UNHANDLED = re.compile(r"unhandled instruction bytes:((?:\s+0x[0-9A-Fa-f]{1,2})+)")


def models() -> dict[str, onnx.ModelProto]:
    """The models run per target: float and int8 (QOperator uint8, QDQ int8 per-channel),
    dynamic batch and static. Image size 19 gives 9x9 after conv1, so the 7-pixel int8
    and float register tiles both have a column tail."""
    return {"mini-dyn": mini_squeezenet(batch=None, image_size=19),
            "conv-static": small_conv(batch=1),
            "int8-qop-u8-dyn": mini_squeezenet_int8("qop", "uint8", batch=None,
                                                    image_size=19),
            "int8-qdq-s8-dyn": mini_squeezenet_int8("qdq", "int8", batch=None, image_size=19,
                                                    per_channel=True)}


def unhandled_instruction(stderr: str) -> str | None:
    """The instruction valgrind reported as undecodable, disassembled by objdump when it
    is installed (``"vmovaps 0x6c0(%r12),%zmm4 [62 d1 7c 48 28 ..]"``), else its bytes;
    ``None`` if valgrind reported none. Valgrind shows the first 10 bytes from the
    instruction's address, enough for any instruction it could be stuck on here."""
    m = UNHANDLED.search(stderr)
    if m is None:
        return None
    raw = bytes(int(b, 16) for b in m.group(1).split())
    shown = " ".join(f"{b:02x}" for b in raw)
    objdump = shutil.which("objdump")
    if objdump is None:
        return f"[{shown}]"
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(raw)
        f.flush()
        dis = subprocess.run([objdump, "-D", "-b", "binary", "-m", "i386:x86-64", f.name],
                             capture_output=True, text=True, check=False).stdout
    for line in dis.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0].strip() == "0:":
            return f"{parts[2].strip()} [{shown}]"
    return f"[{shown}]"


def _build_driver(work: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise FileNotFoundError("no C compiler")
    src = work / "driver.c"
    src.write_text(DRIVER_C)
    exe = work / "driver"
    subprocess.run([cc, "-O1", "-g", "-o", str(exe), str(src), "-ldl"], check=True)
    return exe


def _check_library(lib: Path, driver: Path, work: Path, label: str) -> list[str]:
    problems: list[str] = []
    m = sqzc.load(lib, threads=1)
    runs = RUNS if m.dynamic_batch else tuple(r for r in RUNS if r[0] == 1)
    for batch, threads in runs:
        rng = np.random.default_rng(batch * 10 + threads)
        feeds = {s.name: rng.standard_normal(s.concrete_shape(batch)).astype(s.dtype)
                 for s in m.input_specs}
        want = m.run(feeds)
        fin, fout = work / f"{label}-in.bin", work / f"{label}-out.bin"
        fin.write_bytes(b"".join(feeds[s.name].tobytes() for s in m.input_specs))
        sizes = [str(feeds[s.name].nbytes) for s in m.input_specs]
        sizes += [str(want[s.name].nbytes) for s in m.output_specs]
        # not --quiet: it would hide the "unhandled instruction bytes" line
        cmd = ["valgrind", "--error-exitcode=1", "--leak-check=no",
               str(driver), str(lib), str(len(m.input_specs)), str(len(m.output_specs)),
               str(batch), str(threads), str(fin), str(fout), *sizes]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        where = f"{label} batch={batch} threads={threads}"
        insn = unhandled_instruction(proc.stderr)
        if insn is not None:  # every further run stops at the same instruction
            problems.append(f"{where}: valgrind cannot decode {insn}; this target's code "
                            "is out of valgrind's reach (see valgrind_check.py's docstring)")
            break
        if proc.returncode != 0:
            problems.append(f"{where}: exit {proc.returncode}\n{proc.stderr[-4000:]}")
            continue
        got = fout.read_bytes()
        expect = b"".join(want[s.name].tobytes() for s in m.output_specs)
        if got != expect:
            problems.append(f"{where}: outputs differ from sqzc.load")
        else:
            print(f"  {where}: clean, outputs identical ({proc.stdout.strip()})")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", action="append", help="target CPU (repeatable); default "
                    + " and ".join(DEFAULT_TARGETS) + " (valgrind cannot decode AVX-512)")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind_check: valgrind is not installed", file=sys.stderr)
        return 3
    targets = args.target or list(DEFAULT_TARGETS)
    work = args.keep or Path(tempfile.mkdtemp(prefix="sqzc-valgrind-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        try:
            driver = _build_driver(work)
        except (FileNotFoundError, subprocess.CalledProcessError) as e:
            print(f"valgrind_check: cannot build the C driver: {e}", file=sys.stderr)
            return 3
        sources = {name: save(model, work, name) for name, model in models().items()}
        problems: list[str] = []
        for target in targets:
            for name, src in sources.items():
                lib = work / f"lib{name}-{target}.so"
                sqzc.compile(src, lib, sqzc.CompileOptions(target_cpu=target, opt_level=3))
                meta = sqzc.load(lib).metadata["target"]
                print(f"{name} for {target} ({meta.get('cpu')}, "
                      f"{32 * int(meta.get('vector_width', 0))}-bit vectors"
                      f"{', VNNI' if meta.get('vnni') else ''}):")
                problems += _check_library(lib, driver, work, f"{name}-{target}")
        for p in problems:
            print("PROBLEM:", p, file=sys.stderr)
        print("valgrind_check:", "FAILED" if problems else "all clean")
        return 1 if problems else 0
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
