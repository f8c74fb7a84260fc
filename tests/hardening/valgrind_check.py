#!/usr/bin/env python3
"""Run compiled sqzc libraries under valgrind's memcheck through a tiny C driver.

    python tests/hardening/valgrind_check.py [--target haswell --target generic] [--keep DIR]

For each target CPU this script compiles two small models (a dynamic-batch two-fire mini
SqueezeNet and a static Conv-Relu-MaxPool-Conv model), writes a C driver that
``dlopen``s the library, checks ``sqz_metadata``/``sqz_workspace_size`` and calls
``sqz_run`` per docs/ABI.md on inputs read from a file, with every buffer ``malloc``ed at
its exact size (so memcheck sees any read or write past an input, output or the
workspace), for several batch sizes and thread counts plus the error returns. The driver
then branches on every output value, so memcheck also reports outputs computed from
uninitialised memory. The outputs are compared bit for bit with ``sqzc.load`` on the same
library.

Run as ``valgrind --error-exitcode=1 --leak-check=no driver lib.so ...``. Exit status: 0
all clean, 1 a valgrind error or wrong results, 3 valgrind or a C compiler is missing.

Valgrind (3.19 here) cannot decode AVX-512, so the default targets are ``haswell`` (AVX2 +
FMA + F16C) and ``generic`` (baseline x86-64); ``--target host`` on an AVX-512 machine
fails inside valgrind with an unhandled instruction, which says nothing about sqzc.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hardening_support import mini_squeezenet, save, small_conv  # noqa: E402

import sqzc  # noqa: E402

DRIVER_C = r"""
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if (run((const void *const *)ins, outs, ws, 0, threads) != 1) {
        fprintf(stderr, "batch 0 not refused\n"); return 1;
    }
    if (ws_bytes && run((const void *const *)ins, outs, (char *)ws + 8, batch, threads) != 3) {
        fprintf(stderr, "misaligned workspace not refused\n"); return 1;
    }
    int32_t rc = 0;
    for (int rep = 0; rep < 2 && rc == 0; ++rep)
        rc = run((const void *const *)ins, outs, ws, batch, threads);
    if (rc != 0) { fprintf(stderr, "sqz_run returned %d\n", rc); return 1; }
    /* Branch on every output value: outputs derived from uninitialised memory are
       reported by memcheck here. */
    long nonfinite = 0;
    FILE *fo = fopen(argv[7], "wb");
    for (int j = 0; j < n_out; ++j) {
        const unsigned char *p = outs[j];
        for (size_t k = 0; k + 4 <= out_bytes[j]; k += 4) {
            float v;
            memcpy(&v, p + k, 4);
            if (!isfinite(v)) ++nonfinite;
        }
        fwrite(outs[j], 1, out_bytes[j], fo);
        free(outs[j]);
    }
    fclose(fo);
    for (int i = 0; i < n_in; ++i) free(ins[i]);
    free(ins); free(outs); free(out_bytes); free(ws);
    dlclose(h);
    printf("ok nonfinite=%ld\n", nonfinite);
    return 0;
}
"""

#: (batch, threads) per run; static-batch models only run batch 1.
RUNS = ((1, 1), (3, 2), (2, 1), (1, 3))


def _build_driver(work: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise FileNotFoundError("no C compiler")
    src = work / "driver.c"
    src.write_text(DRIVER_C)
    exe = work / "driver"
    subprocess.run([cc, "-O1", "-g", "-o", str(exe), str(src), "-ldl", "-lm"], check=True)
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
        cmd = ["valgrind", "--error-exitcode=1", "--leak-check=no", "--quiet",
               str(driver), str(lib), str(len(m.input_specs)), str(len(m.output_specs)),
               str(batch), str(threads), str(fin), str(fout), *sizes]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        where = f"{label} batch={batch} threads={threads}"
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
                    "haswell and generic")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind_check: valgrind is not installed", file=sys.stderr)
        return 3
    targets = args.target or ["haswell", "generic"]
    work = args.keep or Path(tempfile.mkdtemp(prefix="sqzc-valgrind-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        try:
            driver = _build_driver(work)
        except (FileNotFoundError, subprocess.CalledProcessError) as e:
            print(f"valgrind_check: cannot build the C driver: {e}", file=sys.stderr)
            return 3
        models = {"mini-dyn": mini_squeezenet(batch=None, image_size=19),
                  "conv-static": small_conv(batch=1)}
        problems: list[str] = []
        for target in targets:
            for name, model in models.items():
                src = save(model, work, name)
                lib = work / f"lib{name}-{target}.so"
                sqzc.compile(src, lib, sqzc.CompileOptions(target_cpu=target, opt_level=3))
                meta = json.loads(json.dumps(sqzc.load(lib).metadata["target"]))
                print(f"{name} for {target} ({meta.get('cpu')}):")
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
