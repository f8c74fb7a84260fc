"""The ``sqzc`` command line: compile, dump, run, info, passes, zoo, demo.

Error contract (docs in README "Safety and limits"): a ``SqzcError`` prints
``sqzc: error: <message>`` to stderr and exits with its code (2 for bad input, 1 for
internal faults); any other exception is an internal error (exit 1). Tracebacks appear
only with ``--debug``. Output files are written atomically by the stages themselves.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqzc import __version__
from sqzc.errors import SqzcError, UsageError

from sqzc.tools.cli_reports import cmd_info, print_compile_stats
from sqzc.tools.cli_files import (check_dump_dir, check_output_path, npz_bytes, read_arrays,
                                  run_feeds)
from sqzc.tools.demo import DEMO_IMAGE, DEMO_MODEL, LABELS, cmd_demo

__all__ = ["DEMO_IMAGE", "DEMO_MODEL", "LABELS", "build_parser", "main"]

#: The named CPUs ``--target-cpu`` accepts besides host and generic (x86-64): exactly the
#: table in sqzc.backends.llvm.target (kept here so ``--help`` needs no llvmlite import;
#: tests/cli checks that the two agree).
TARGET_CPUS = ("haswell", "icelake-server", "skylake-avx512", "znver2", "znver3", "znver4",
               "znver5")
#: The same for ``--target aarch64-linux-gnu``.
AARCH64_TARGET_CPUS = ("cortex-a53", "cortex-a72", "cortex-a76", "neoverse-n1")
TARGET_CPU_HELP = ("host (default: this machine's CPU), generic (the architecture's baseline) "
                   "or one of " + ", ".join(TARGET_CPUS) + " (x86-64), "
                   + ", ".join(AARCH64_TARGET_CPUS) + " (with --target aarch64-linux-gnu)")
TARGET_HELP = ("host (default: this machine) or aarch64-linux-gnu (Arm64 Linux: a cross build, "
               "linked with the ziglang wheel, pip install 'sqzc[cross]')")
FUSE_INT8_QDQ_HELP = ("integer kernels for int8-activation QDQ convs and matmuls too, as "
                      "onnxruntime's session.qdqisint8allowed=1 (the default); "
                      "--no-fuse-int8-qdq runs the ones onnxruntime's default x86-64 session "
                      "runs in float its float way (its results bit for bit, slower)")
OPTIMIZE_HELP = ("speed (the default): kernels specialized per layer, Winograd for 3x3; "
                 "size: for flash-limited devices, one run-time-geometry kernel shared by "
                 "the float convs, no Winograd, LLVM optsize, no symbol table (same outputs "
                 "as --no-winograd, slower)")


class _Parser(argparse.ArgumentParser):
    """Reports usage errors as ``sqzc: error: [COMMAND: ]message`` (exit 2), like every
    other error, instead of argparse's ``sqzc COMMAND: error: message``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        command = self.prog.partition(" ")[2]
        self.exit(2, f"sqzc: error: {command + ': ' if command else ''}{message}\n")


def parse_shape_arg(text: str) -> tuple[str, tuple[int, ...]]:
    """``NAME=1x3x224x224`` -> (name, dims)."""
    name, sep, dims = text.rpartition("=")
    if not sep or not name:
        raise UsageError(f"--input-shape expects NAME=D1xD2x..., got '{text}'")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        raise UsageError(f"--input-shape expects integer dims, got '{dims}'") from None
    return name, shape


def _names(values: list[str] | None) -> frozenset[str]:
    out: set[str] = set()
    for v in values or []:
        out |= {x.strip() for x in v.split(",") if x.strip()}
    return frozenset(out)


def add_compile_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that compiles a model."""
    g = p.add_argument_group("compilation")
    g.add_argument("-O", dest="opt_level", type=int, default=3, choices=range(4),
                   metavar="LEVEL", help="optimization level 0-3 (0: no passes; default 3)")
    g.add_argument("--target", default="host", metavar="TRIPLE", help=TARGET_HELP)
    g.add_argument("--target-cpu", default="host", help=TARGET_CPU_HELP)
    g.add_argument("--no-winograd", dest="winograd", action="store_false",
                   help="direct 3x3 convolutions only (no Winograd F(2x2)/F(4x4))")
    g.add_argument("--fuse-int8-qdq", action=argparse.BooleanOptionalAction, default=True,
                   help=FUSE_INT8_QDQ_HELP)
    g.add_argument("--optimize", choices=("speed", "size"), default="speed", help=OPTIMIZE_HELP)
    g.add_argument("--input-shape", action="append", default=[], metavar="NAME=1x3x224x224",
                   help="fix an input's shape (needed for symbolic non-batch dims)")
    g.add_argument("--weights", choices=("auto", "raw", "compressed"), default="auto",
                   help="store the weights as the kernels read them (raw), or losslessly "
                        "compressed and decoded once per process by sqz_init (compressed); "
                        "auto (the default) compresses when that makes the library smaller "
                        "by at least 5%% or 4 KB net of the decoder")
    d = p.add_argument_group("pass instrumentation")
    d.add_argument("--print-after-all", action="store_true", help="print the IR after each pass")
    d.add_argument("--print-before", action="append", metavar="PASS[,..]",
                   help="print the IR before the named passes")
    d.add_argument("--print-after", action="append", metavar="PASS[,..]",
                   help="print the IR after the named passes")
    d.add_argument("--print-changed", action="store_true",
                   help="print the IR after each pass that changed it")
    d.add_argument("--dump-dir", type=Path, metavar="DIR",
                   help="write NNN_<pass>.sqzir after every pass into DIR")
    d.add_argument("--time-passes", action="store_true", help="report time spent in each pass")
    d.add_argument("--disable-pass", action="append", metavar="PASS[,..]",
                   help="skip the named passes")
    d.add_argument("--verify-each", action="store_true", help="verify the IR after every pass")


def compile_options(args: argparse.Namespace, emit: str = "so") -> object:
    """Build ``CompileOptions`` from parsed arguments."""
    from sqzc.driver import CompileOptions
    from sqzc.passes.manager import Instrumentation

    check_dump_dir(args.dump_dir)

    inst = Instrumentation(
        print_before=_names(args.print_before), print_after=_names(args.print_after),
        print_after_all=args.print_after_all, print_changed=args.print_changed,
        dump_dir=args.dump_dir, time_passes=args.time_passes,
        verify_each=args.verify_each, disabled=_names(args.disable_pass))
    shapes = dict(parse_shape_arg(s) for s in args.input_shape)
    return CompileOptions(opt_level=args.opt_level, target_cpu=args.target_cpu,
                          target=args.target,
                          input_shapes=shapes, emit=emit, instrumentation=inst,
                          verify_ir=args.verify_each, winograd=args.winograd,
                          fuse_int8_qdq=args.fuse_int8_qdq,
                          weights=args.weights, optimize=args.optimize)


# ----------------------------------------------------------------------------- commands


def cmd_compile(args: argparse.Namespace) -> int:
    """``sqzc compile``."""
    import sqzc.driver as driver

    check_output_path(args.output)
    result = driver.compile(args.model, args.output, compile_options(args, args.emit))
    if args.stats:
        print_compile_stats(result, args.output, args.emit)
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    """``sqzc dump``: the IR after the pipeline at the chosen level (``--format onnx``
    writes it as an ONNX file for Netron; see ``sqzc.tools.onnx_export``)."""
    import sqzc.driver as driver
    from sqzc.backends.llvm.link import write_atomically
    from sqzc.ir_text import print_ir, to_dot, to_json_text

    if args.format == "onnx" and not args.output:
        raise UsageError("sqzc dump --format onnx needs -o FILE.onnx (the output is binary)")
    if args.output:
        check_output_path(args.output)
    options = compile_options(args)
    graph = driver.load_graph(args.model, options)  # type: ignore[arg-type]
    driver.optimize(graph, options)  # type: ignore[arg-type]
    if args.format == "onnx":
        from sqzc.tools.onnx_export import to_onnx

        block = driver.pass_context(options).target_block  # type: ignore[arg-type]
        write_atomically(Path(args.output), to_onnx(graph, block).SerializeToString())
        return 0
    text = {"text": print_ir, "dot": to_dot, "json": to_json_text}[args.format](graph)
    if args.output:
        write_atomically(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``sqzc run``: call a compiled library on .npy / .npz inputs."""
    import io

    import numpy as np

    from sqzc.runtime import load
    from sqzc.runtime.library import is_foreign

    out = check_output_path(args.output) if args.output else None
    if is_foreign(args.library):  # a cross build: under qemu-user, one process per call
        from sqzc.tools.emulate import EmulatedModel

        m: Any = EmulatedModel(args.library, threads=args.threads)
    else:
        m = load(args.library, threads=args.threads)
    outs = [s.name for s in m.output_specs]
    if out is not None and out.suffix != ".npz" and len(outs) > 1:
        raise UsageError(f"-o {args.output}: the model has {len(outs)} outputs "
                         f"({', '.join(outs)}); give a .npz name to save them all")
    feeds = run_feeds(args.input, [s.name for s in m.input_specs])
    outputs = m.run(feeds)  # type: ignore[arg-type]
    for name, value in outputs.items():
        flat = value.reshape(value.shape[0], -1) if value.ndim > 1 else value.reshape(1, -1)
        print(f"{name}: {value.dtype}{list(value.shape)}  min {value.min():.6g}  "
              f"max {value.max():.6g}  argmax {[int(i) for i in flat.argmax(axis=1)]}")
    if out is not None:
        from sqzc.backends.llvm.link import write_atomically

        if out.suffix == ".npz":
            write_atomically(out, npz_bytes(outputs))  # type: ignore[arg-type]
        else:
            buf = io.BytesIO()
            np.save(buf, next(iter(outputs.values())))
            write_atomically(out, buf.getvalue())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """``sqzc bench``: sqzc vs onnxruntime, interleaved, same process and threads."""
    from sqzc.tools.bench import format_report, run_bench

    bench, layers = run_bench(args.model, threads=args.threads, batch=args.batch,
                              rounds=args.rounds, warmup=args.warmup, opt_level=args.opt_level,
                              target_cpu=args.target_cpu, profile=args.profile,
                              winograd=args.winograd, openvino=args.openvino,
                              fuse_int8_qdq=args.fuse_int8_qdq, weights=args.weights,
                              compare_raw=args.compare_raw, optimize=args.optimize)
    print(format_report(bench, layers))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``sqzc verify``: sqzc vs onnxruntime on one input; exit 0 on PASS, 1 on FAIL."""
    from sqzc.tools.verify import format_report, verify_model

    if args.input and args.random:
        raise UsageError("--input and --random exclude each other")
    for option, value in (("--rtol", args.rtol), ("--atol", args.atol)):
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"{option} must be a finite number >= 0, got {value:g}")
    if args.input:
        if args.batch is not None:
            raise UsageError("--batch sets the batch of the random input; with --input the "
                             "file's arrays set it")
        read_arrays(args.input)  # a bad file fails now, not after the compilation
    else:
        if not (math.isfinite(args.low) and math.isfinite(args.high)) or args.low >= args.high:
            raise UsageError(f"--low must be below --high (finite numbers), got --low "
                             f"{args.low:g} --high {args.high:g}")
        if args.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {args.seed}")
    report = verify_model(args.model, input_path=args.input, seed=args.seed, batch=args.batch,
                          rtol=args.rtol, atol=args.atol, opt_level=args.opt_level,
                          per_layer=args.per_layer, target_cpu=args.target_cpu,
                          low=args.low, high=args.high, winograd=args.winograd,
                          fuse_int8_qdq=args.fuse_int8_qdq, optimize=args.optimize,
                          target=args.target)
    print(format_report(report, args.rtol, args.atol))
    return 0 if report.ok else 1


def cmd_passes(args: argparse.Namespace) -> int:
    """``sqzc passes``: the pipeline in order with one line each."""
    from sqzc.passes import PIPELINE

    width = max(len(p.name) for p in PIPELINE)
    for p in PIPELINE:
        print(f"{p.name:<{width}}  -O{p.min_level}+  {p.summary}")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    """``sqzc zoo``: write a seeded zoo model (SqueezeNets, torchvision families) as ONNX."""
    from sqzc.backends.llvm.link import write_atomically
    from sqzc.tools.zoo import DESCRIPTIONS, build

    if args.list or not args.name:
        for name, desc in DESCRIPTIONS.items():
            print(f"{name:<30} {desc}")
        return 0
    if not args.output:
        raise UsageError("sqzc zoo NAME needs -o FILE.onnx")
    check_output_path(args.output)
    if args.batch != "dynamic" and not args.batch.isdigit():
        raise UsageError(f"--batch must be a positive integer or 'dynamic', got '{args.batch}'")
    batch = None if args.batch == "dynamic" else int(args.batch)
    model = build(args.name, opset=args.opset, seed=args.seed, batch=batch, dtype=args.dtype,
                  density=args.density, codebook_bits=args.codebook_bits,
                  weight_qdq="" if args.weight_qdq == "none" else args.weight_qdq)
    write_atomically(Path(args.output), model.SerializeToString())
    print(f"wrote {args.output} ({args.name}, opset {args.opset}, seed {args.seed})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (the README's CLI reference is generated from it)."""
    p = _Parser(prog="sqzc", description="Ahead-of-time compiler for small "
                                "CNNs: ONNX -> native shared library.")
    p.add_argument("--version", action="version", version=f"sqzc {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")

    c = sub.add_parser("compile", parents=[common], help="compile an ONNX model to a shared library")
    c.add_argument("model", help="ONNX model file")
    c.add_argument("-o", "--output", required=True, help="output file (libfoo.so, ...)")
    c.add_argument("--emit", default="so", choices=["so", "obj", "llvm", "asm", "header"],
                   help="what to write (default so)")
    c.add_argument("--stats", action="store_true",
                   help="print arena, workspace, weights and timings")
    add_compile_options(c)
    c.set_defaults(fn=cmd_compile)

    d = sub.add_parser("dump", parents=[common], help="print the optimized IR")
    d.add_argument("model", help="ONNX model file")
    d.add_argument("--format", default="text", choices=["text", "dot", "json", "onnx"],
                   help="text (default), dot, json, or onnx (an ONNX file for Netron; needs -o)")
    d.add_argument("-o", "--output", help="write to FILE instead of stdout")
    add_compile_options(d)
    d.set_defaults(fn=cmd_dump)

    r = sub.add_parser("run", parents=[common],
                       help="run a compiled library on .npy / .npz inputs")
    r.add_argument("library", help="library built by sqzc compile")
    r.add_argument("--input", action="append", required=True, metavar="[NAME=]FILE",
                   help="NAME=FILE.npy, a bare FILE.npy for a single-input model, or a "
                        "FILE.npz of arrays named after the inputs")
    r.add_argument("-o", "--output", help="save the output: FILE.npy (one output) or "
                                          "FILE.npz (all outputs, by name; needed for several)")
    r.add_argument("--threads", type=int, default=None,
                   help="threads per call (default: the CPUs this process may use)")
    r.set_defaults(fn=cmd_run)

    i = sub.add_parser("info", parents=[common], help="show a compiled library's metadata and sizes")
    i.add_argument("library")
    i.add_argument("--json", action="store_true", help="print the raw metadata JSON")
    i.set_defaults(fn=cmd_info)

    bn = sub.add_parser("bench", parents=[common], help="time sqzc against onnxruntime (interleaved rounds)")
    bn.add_argument("model", help="ONNX model file")
    bn.add_argument("--threads", type=int, default=1, help="threads for both engines (default 1)")
    bn.add_argument("--batch", type=int, default=None,
                    help="batch size (default 1); only for models with a symbolic batch "
                         "(`sqzc zoo NAME --batch dynamic`)")
    bn.add_argument("--rounds", type=int, default=200, help="timed rounds (default 200)")
    bn.add_argument("--warmup", type=int, default=20, help="untimed rounds first (default 20)")
    bn.add_argument("--profile", action="store_true",
                    help="also print a per-layer table (instrumented build)")
    bn.add_argument("-O", dest="opt_level", type=int, default=3, choices=range(4),
                    metavar="LEVEL", help="optimization level (default 3)")
    bn.add_argument("--target-cpu", default="host", help=TARGET_CPU_HELP)
    bn.add_argument("--no-winograd", dest="winograd", action="store_false",
                    help="direct 3x3 convolutions only")
    bn.add_argument("--fuse-int8-qdq", action=argparse.BooleanOptionalAction, default=True,
                    help=FUSE_INT8_QDQ_HELP)
    bn.add_argument("--optimize", choices=("speed", "size"), default="speed",
                    help=OPTIMIZE_HELP)
    bn.add_argument("--openvino", action="store_true",
                    help="also time OpenVINO (if installed) as a second peer")
    bn.add_argument("--weights", choices=("auto", "raw", "compressed"), default="auto",
                    help="weight storage of the library (default auto, as sqzc compile)")
    bn.add_argument("--compare-raw", action="store_true",
                    help="when the weights are stored compressed, also time a raw-weights "
                         "build of the same model, interleaved")
    bn.set_defaults(fn=cmd_bench)

    v = sub.add_parser("verify", parents=[common],
                       help="compare sqzc with onnxruntime on one input (PASS/FAIL)")
    v.add_argument("model", help="ONNX model file")
    v.add_argument("--input", help="input .npy (single-input models) or .npz")
    v.add_argument("--random", action="store_true",
                   help="seeded uniform random input in [--low, --high) (the default)")
    v.add_argument("--seed", type=int, default=0, help="seed of the random input")
    v.add_argument("--low", type=float, default=0.0, help="random input lower bound")
    v.add_argument("--high", type=float, default=255.0, help="random input upper bound")
    v.add_argument("--batch", type=int, default=None,
                   help="batch of the random input (default 1); only for models with a "
                        "symbolic batch (`sqzc zoo NAME --batch dynamic`)")
    v.add_argument("--per-layer", action="store_true",
                   help="compare every surviving kernel's tensor; report the first divergence")
    v.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance (on max|ref|)")
    v.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance")
    v.add_argument("-O", dest="opt_level", type=int, default=3, choices=range(4),
                   metavar="LEVEL", help="optimization level (default 3)")
    v.add_argument("--target", default="host", metavar="TRIPLE",
                   help=TARGET_HELP + "; another architecture's library runs under qemu-user")
    v.add_argument("--target-cpu", default="host", help=TARGET_CPU_HELP)
    v.add_argument("--no-winograd", dest="winograd", action="store_false",
                   help="direct 3x3 convolutions only")
    v.add_argument("--optimize", choices=("speed", "size"), default="speed",
                   help=OPTIMIZE_HELP)
    v.add_argument("--fuse-int8-qdq", action=argparse.BooleanOptionalAction, default=True,
                   help=FUSE_INT8_QDQ_HELP + "; compared with onnxruntime run the same way "
                        "(session.qdqisint8allowed=1 when fused)")
    v.set_defaults(fn=cmd_verify)

    ps = sub.add_parser("passes", parents=[common], help="list the optimization pipeline")
    ps.set_defaults(fn=cmd_passes)

    z = sub.add_parser("zoo", parents=[common], help="write a seeded zoo model (SqueezeNet, ResNet, MobileNet ...) as ONNX")
    z.add_argument("name", nargs="?", help="model name (see --list)")
    z.add_argument("-o", "--output", help="output .onnx file")
    z.add_argument("--opset", type=int, default=13)
    z.add_argument("--seed", type=int, default=0)
    z.add_argument("--batch", default="1", help="batch size or 'dynamic' (default 1)")
    z.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    z.add_argument("--density", type=float, default=1.0,
                   help="prune each conv weight to this share of nonzeros (default 1; SqueezeNets "
                        "only, as --codebook-bits and --weight-qdq)")
    z.add_argument("--codebook-bits", type=int, default=0,
                   help="share each conv weight's values: 2**BITS - 1 levels (default 0: no)")
    z.add_argument("--weight-qdq", default="none",
                   choices=["none", "int8", "int4", "int4-blocked"],
                   help="store conv weights as DequantizeLinear of int8 / int4 codes (per "
                        "output channel) or int4 blocks of 16 input channels (needs "
                        "--opset 21 for int4)")
    z.add_argument("--list", action="store_true", help="list the available models")
    z.set_defaults(fn=cmd_zoo)

    dm = sub.add_parser("demo", parents=[common], help="compile the bundled SqueezeNet and classify a photo")
    dm.add_argument("--image", help="image to classify (default: bundled kitten photo)")
    dm.add_argument("--model", help="ImageNet classifier ONNX file with one [N,3,H,W] "
                                    "input (default: the bundled SqueezeNet)")
    dm.add_argument("--keep", metavar="LIB", help="keep the compiled library at LIB")
    dm.set_defaults(fn=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sqzc`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return 2
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM unwinds like Ctrl-C, so temporary build folders are removed on the way out
        signal.signal(signal.SIGTERM, _terminated)
    try:
        return int(args.fn(args) or 0)
    except SqzcError as e:
        if args.debug:
            traceback.print_exc()
        print(f"sqzc: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("sqzc: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("sqzc: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        os._exit(1)
    except Exception as e:  # an internal fault: never a raw traceback unless asked
        if args.debug:
            traceback.print_exc()
        print(f"sqzc: error: internal error: {type(e).__name__}: {e} "
              "(run with --debug for a traceback)", file=sys.stderr)
        return 1
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


class _Terminated(BaseException):
    """Raised by the SIGTERM handler (a BaseException, so no ``except Exception`` stops it)."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


if __name__ == "__main__":
    sys.exit(main())
