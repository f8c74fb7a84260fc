/* Runs a sqzc library once, for `sqzc run` / `sqzc verify` on a library built for another
 * architecture (it runs under qemu-user; see sqzc/tools/emulate.py, which cross-builds
 * this file with the library's toolchain).
 *
 *   emulated_runner LIB THREADS BATCH N_IN N_OUT IN_FILE... OUT_FILE:BYTES...
 *
 * Each input file holds one input's raw C-order bytes (metadata order); each output is
 * written as BYTES raw bytes. Exit status: 0, the sqz_run error code (1-5), or 10 and up
 * for the runner's own failures, with a message on stderr. With SQZ_RUNNER_BASE set in the
 * environment it first prints the library's load address ("base 0x...") on stdout, so
 * that an emulator's trace can be mapped back into the library (instruction mix). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t (*workspace_fn)(void);
typedef int32_t (*init_fn)(void);
typedef int32_t (*run_fn)(const void *const *, void *const *, void *, int64_t, int32_t);

static void *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); return NULL; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = aligned_alloc(64, (size_t)((n + 63) / 64 * 64 + 64));
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (!buf) fprintf(stderr, "cannot read %s\n", path);
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s LIB THREADS BATCH N_IN N_OUT IN... OUT:BYTES...\n", argv[0]);
        return 10;
    }
    int threads = atoi(argv[2]);
    long long batch = atoll(argv[3]);
    int n_in = atoi(argv[4]), n_out = atoi(argv[5]);
    if (n_in < 0 || n_out < 0 || argc != 6 + n_in + n_out) {
        fprintf(stderr, "expected %d input and %d output arguments\n", n_in, n_out);
        return 10;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 11; }
    workspace_fn ws_size = (workspace_fn)dlsym(lib, "sqz_workspace_size");
    init_fn init = (init_fn)dlsym(lib, "sqz_init");
    run_fn run = (run_fn)dlsym(lib, "sqz_run");
    if (!ws_size || !init || !run) { fprintf(stderr, "not a sqzc library\n"); return 11; }
    if (getenv("SQZ_RUNNER_BASE")) {
        Dl_info info;
        if (!dladdr((void *)run, &info)) { fprintf(stderr, "dladdr failed\n"); return 11; }
        printf("base %p\n", info.dli_fbase);
        fflush(stdout);
    }
    const void **inputs = calloc((size_t)n_in + 1, sizeof(void *));
    void **outputs = calloc((size_t)n_out + 1, sizeof(void *));
    size_t *out_bytes = calloc((size_t)n_out + 1, sizeof(size_t));
    for (int i = 0; i < n_in; i++) {
        inputs[i] = read_file(argv[6 + i]);
        if (!inputs[i]) return 12;
    }
    for (int j = 0; j < n_out; j++) {
        const char *colon = strrchr(argv[6 + n_in + j], ':');
        if (!colon) { fprintf(stderr, "output %d: expected PATH:BYTES\n", j); return 10; }
        out_bytes[j] = (size_t)strtoull(colon + 1, NULL, 10);
        outputs[j] = aligned_alloc(64, (out_bytes[j] + 63) / 64 * 64 + 64);
        if (!outputs[j]) return 13;
    }
    uint64_t ws_bytes = ws_size();
    void *workspace = aligned_alloc(64, (size_t)((ws_bytes + 63) / 64 * 64 + 64));
    if (!workspace) return 13;
    int32_t rc = init();
    if (rc == 0) rc = run(inputs, outputs, workspace, batch, threads);
    if (rc != 0) { fprintf(stderr, "sqz_run returned %d\n", (int)rc); return rc; }
    for (int j = 0; j < n_out; j++) {
        char path[4096];
        const char *arg = argv[6 + n_in + j];
        size_t len = (size_t)(strrchr(arg, ':') - arg);
        if (len >= sizeof path) return 10;
        memcpy(path, arg, len);
        path[len] = 0;
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(outputs[j], 1, out_bytes[j], f) != out_bytes[j]) {
            fprintf(stderr, "cannot write %s\n", path);
            return 14;
        }
        fclose(f);
    }
    return 0;
}
