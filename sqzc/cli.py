"""The ``sqzc`` command line: compile, dump, run, info, passes, zoo, demo.

Error contract (docs in README "Safety and limits"): a ``SqzcError`` prints
``sqzc: error: <message>`` to stderr and exits with its code (2 for bad input, 1 for
internal faults); any other exception is an internal error (exit 1). Tracebacks appear
only with ``--debug``. Output files are written atomically by the stages themselves.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from sqzc import __version__
from sqzc.errors import SqzcError, UsageError

DATA_DIR = Path(__file__).resolve().parent / "data"
DEMO_MODEL = DATA_DIR / "squeezenet1.1_fp16.onnx"
DEMO_IMAGE = DATA_DIR / "kitten_224.png"
LABELS = DATA_DIR / "synset.txt"

#: The named CPUs ``--target-cpu`` accepts besides host and generic (x86-64): exactly the
#: table in sqzc.backends.llvm.target (kept here so ``--help`` needs no llvmlite import;
#: tests/cli checks that the two agree).
TARGET_CPUS = ("haswell", "icelake-server", "skylake-avx512", "znver2", "znver3", "znver4",
               "znver5")
TARGET_CPU_HELP = ("host (default: this machine's CPU), generic (baseline x86-64) or one of "
                   + ", ".join(TARGET_CPUS))


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
    g.add_argument("--target-cpu", default="host", help=TARGET_CPU_HELP)
    g.add_argument("--no-winograd", dest="winograd", action="store_false",
                   help="direct 3x3 convolutions only (no Winograd F(2x2)/F(4x4))")
    g.add_argument("--fuse-int8-qdq", action="store_true",
                   help="integer kernels for every int8-activation QDQ conv (onnxruntime's "
                        "session.qdqisint8allowed=1 arithmetic; faster); by default the "
                        "convs onnxruntime runs in float on x86-64 follow its float path")
    g.add_argument("--input-shape", action="append", default=[], metavar="NAME=1x3x224x224",
                   help="fix an input's shape (needed for symbolic non-batch dims)")
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


def check_dump_dir(path: Path | None) -> None:
    """``--dump-dir`` must be a folder, or a path where one can be created (checked before
    any work; the pass manager creates it when the passes start)."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise UsageError(f"--dump-dir '{path}' exists and is not a directory")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--dump-dir '{path}': '{existing}' is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--dump-dir '{path}': '{existing}' is not writable")


def check_output_path(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """Fail before any work if ``path`` cannot be written: its folder must exist and it must
    not be a folder itself (the stages write atomically into the same folder)."""
    out = Path(path)
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"{option} {path}: output directory '{directory}' does not exist")
    if out.is_dir():
        raise UsageError(f"{option} {path}: output path is a directory")
    return out


def compile_options(args: argparse.Namespace, emit: str = "so") -> object:
    """Build ``CompileOptions`` from parsed arguments."""
    from sqzc.driver import CompileOptions
    from sqzc.pass_manager import Instrumentation

    check_dump_dir(args.dump_dir)

    inst = Instrumentation(
        print_before=_names(args.print_before), print_after=_names(args.print_after),
        print_after_all=args.print_after_all, print_changed=args.print_changed,
        dump_dir=args.dump_dir, time_passes=args.time_passes,
        verify_each=args.verify_each, disabled=_names(args.disable_pass))
    shapes = dict(parse_shape_arg(s) for s in args.input_shape)
    return CompileOptions(opt_level=args.opt_level, target_cpu=args.target_cpu,
                          input_shapes=shapes, emit=emit, instrumentation=inst,
                          verify_ir=args.verify_each, winograd=args.winograd,
                          fuse_int8_qdq=args.fuse_int8_qdq)


# ----------------------------------------------------------------------------- commands


def cmd_compile(args: argparse.Namespace) -> int:
    """``sqzc compile``."""
    import sqzc.driver as driver

    check_output_path(args.output)
    result = driver.compile(args.model, args.output, compile_options(args, args.emit))
    if args.stats:
        s = result.stats
        # CompileResult.stats['workspace_bytes'] is the planned arena; what a call needs
        # (arena + runtime scratch, as `sqzc info` prints) is the metadata's workspace_bytes
        print(f"arena:     {s['workspace_bytes']} bytes (liveness lower bound "
              f"{s['arena_lower_bound']} bytes)")
        workspace = result.metadata.get("workspace_bytes")
        if workspace is not None:
            print(f"workspace: {workspace} bytes (arena + runtime scratch)")
        print(f"weights:   {s['weights_bytes']} bytes")
        print(f"kernels:   {s['nodes']}")
        print(f"time:      {format_times(dict(s['seconds']))}")  # type: ignore[call-overload]
    return 0


def format_times(seconds: dict[str, float]) -> str:
    """The ``--stats`` time line: parts that do not overlap, then the total. The driver's
    ``codegen`` clock starts with ``llvm`` (lowering + LLVM optimization), so codegen is
    shown without it (machine-code emission alone)."""
    parts = {k: v for k, v in seconds.items() if k != "total"}
    if "codegen" in parts and "llvm" in parts:
        parts["codegen"] = max(0.0, parts["codegen"] - parts["llvm"])
    text = ", ".join(f"{k} {v:.2f}s" for k, v in parts.items())
    if "total" in seconds:
        text += f"; total {seconds['total']:.2f}s"
    return text


def cmd_dump(args: argparse.Namespace) -> int:
    """``sqzc dump``: the IR after the pipeline at the chosen level (``--format onnx``
    writes it as an ONNX file for Netron; see ``sqzc.onnx_export``)."""
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
        from sqzc.onnx_export import to_onnx

        write_atomically(Path(args.output), to_onnx(graph).SerializeToString())
        return 0
    text = {"text": print_ir, "dot": to_dot, "json": to_json_text}[args.format](graph)
    if args.output:
        write_atomically(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return 0


def read_arrays(path: str, option: str = "--input") -> object:
    """A .npy file's array, or a .npz file's arrays as ``{name: array}``. Any file numpy
    cannot read as such (missing, empty, a folder, not numpy's format, Python objects)
    is a ``UsageError`` naming the option and the file."""
    import zipfile

    import numpy as np

    what = f"{option} '{path}'"
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what}: no such file")
    if p.is_dir():
        raise UsageError(f"{what} is a directory, not a .npy or .npz file")
    try:
        data = np.load(p, allow_pickle=False)
        if isinstance(data, np.ndarray):
            return data
        with data:
            return {k: data[k] for k in data.files}
    except EOFError:
        raise UsageError(f"{what} is empty, not a .npy or .npz file") from None
    except ValueError as e:
        if "Object arrays" in str(e):
            raise UsageError(f"{what} holds Python objects (dtype object), which sqzc does "
                             "not load; save numeric arrays") from None
        if "pickle" in str(e):
            raise UsageError(f"{what} is not a .npy or .npz file") from None
        raise UsageError(f"cannot read {what}: {e}") from None
    except (OSError, zipfile.BadZipFile, KeyError) as e:
        raise UsageError(f"cannot read {what}: {getattr(e, 'strerror', None) or e}") from None


def run_feeds(specs: list[str], names: list[str]) -> dict[str, object]:
    """The feeds of ``sqzc run``: each ``--input`` is ``NAME=FILE.npy``, a bare ``FILE.npy``
    (single-input models), or a ``FILE.npz`` whose arrays are named after the inputs."""
    feeds: dict[str, object] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if sep and name not in names and Path(spec).exists():
            name, sep, path = "", "", spec  # a file name containing '='
        if not sep:
            path = spec
        elif name not in names:
            raise UsageError(f"--input {spec}: the model has no input '{name}'; its inputs "
                             f"are {', '.join(names)}")
        data = read_arrays(path)
        if isinstance(data, dict):
            if sep:
                raise UsageError(f"--input {spec}: NAME=FILE takes a .npy file; a .npz file "
                                 f"names its arrays itself (use --input {path})")
            arrays = data
        elif sep:
            arrays = {name: data}
        elif len(names) == 1:
            arrays = {names[0]: data}
        else:
            raise UsageError(f"--input {spec}: the model has inputs {', '.join(names)}; use "
                             "--input NAME=FILE.npy for each, or one .npz file")
        for k, v in arrays.items():
            if k in feeds:
                raise UsageError(f"input '{k}' is given more than once")
            feeds[k] = v
    return feeds


def npz_bytes(arrays: dict[str, object]) -> bytes:
    """An uncompressed .npz archive of ``arrays`` (as ``np.savez`` writes; any array name,
    including ones that clash with ``np.savez``'s own parameters)."""
    import io
    import zipfile

    import numpy as np

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, value in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    return buf.getvalue()


def cmd_run(args: argparse.Namespace) -> int:
    """``sqzc run``: call a compiled library on .npy / .npz inputs."""
    import io

    import numpy as np

    from sqzc.runtime import load

    out = check_output_path(args.output) if args.output else None
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


def cmd_info(args: argparse.Namespace) -> int:
    """``sqzc info``: metadata and sizes of a compiled library."""
    from sqzc.runtime import load

    m = load(args.library)
    meta = dict(m.metadata)
    if args.json:
        print(json.dumps(meta, indent=1, sort_keys=True))
        return 0
    size = Path(args.library).stat().st_size
    print(f"library:    {args.library} ({size} bytes)")
    print(f"compiler:   {meta.get('compiler')} (ABI {meta.get('abi_version')}, "
          f"-O{meta.get('opt_level')})")
    print(f"model:      {meta.get('model_name')} sha256 {meta.get('model_sha256')}")
    for s in m.input_specs:
        print(f"input:      {s}")
    for s in m.output_specs:
        print(f"output:     {s}")
    print(f"batch:      {'dynamic (any N >= 1)' if m.dynamic_batch else 'static'}")
    print(f"weights:    {meta.get('weights_bytes')} bytes")
    if meta.get("arena_bytes") is not None:
        print(f"arena:      {meta.get('arena_bytes')} bytes (liveness lower bound "
              f"{meta.get('arena_lower_bound')} bytes)")
        print(f"workspace:  {meta.get('workspace_bytes')} bytes (arena + runtime scratch)")
    else:  # libraries from before arena_bytes was recorded
        print(f"workspace:  {meta.get('workspace_bytes')} bytes (liveness lower bound "
              f"{meta.get('arena_lower_bound')} bytes)")
    target = meta.get("target", {})
    print(f"target:     {target.get('cpu')} (vector width {target.get('vector_width')} floats)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """``sqzc bench``: sqzc vs onnxruntime, interleaved, same process and threads."""
    from sqzc.bench import check_bench_args, format_report, run_bench

    check_bench_args(args.threads, args.rounds, args.warmup)
    bench, layers = run_bench(args.model, threads=args.threads, batch=args.batch,
                              rounds=args.rounds, warmup=args.warmup, opt_level=args.opt_level,
                              target_cpu=args.target_cpu, profile=args.profile,
                              winograd=args.winograd, openvino=args.openvino,
                              fuse_int8_qdq=args.fuse_int8_qdq)
    print(format_report(bench, layers))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``sqzc verify``: sqzc vs onnxruntime on one input; exit 0 on PASS, 1 on FAIL."""
    from sqzc.differential import format_report, verify_model

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
    batch = 1
    if args.batch is not None:
        from sqzc import driver
        from sqzc.bench import resolve_batch

        graph = driver.load_graph(args.model, driver.CompileOptions(
            opt_level=args.opt_level, target_cpu=args.target_cpu))
        batch = resolve_batch(graph, args.batch, args.model)
    report = verify_model(args.model, input_path=args.input, seed=args.seed, batch=batch,
                          rtol=args.rtol, atol=args.atol, opt_level=args.opt_level,
                          per_layer=args.per_layer, target_cpu=args.target_cpu,
                          low=args.low, high=args.high)
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
    """``sqzc zoo``: write a seeded SqueezeNet variant as ONNX."""
    from sqzc.backends.llvm.link import write_atomically
    from sqzc.zoo import DESCRIPTIONS, build

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
    model = build(args.name, opset=args.opset, seed=args.seed, batch=batch, dtype=args.dtype)
    write_atomically(Path(args.output), model.SerializeToString())
    print(f"wrote {args.output} ({args.name}, opset {args.opset}, seed {args.seed})")
    return 0


def labels() -> list[str]:
    """The 1000 ImageNet class names in index order."""
    return [line.split(" ", 1)[1].strip() for line in LABELS.read_text().splitlines() if line]


def read_photo(path: Path) -> object:
    """Decode ``path`` now (before any compilation) as RGB: a Pillow image when Pillow is
    installed, else an HxWx3 uint8 array from sqzc's PNG decoder. Unreadable files are a
    ``UsageError`` naming the file."""
    if not path.exists():
        raise UsageError(f"--image '{path}': no such file")
    if path.is_dir():
        raise UsageError(f"--image '{path}' is a directory, not an image")
    try:
        from PIL import Image
    except ImportError:
        from sqzc.imageio import read_png

        try:
            img = read_png(path)
        except OSError as e:
            raise UsageError(f"cannot read --image '{path}': {e.strerror or e}") from None
        except (ValueError, IndexError) as e:
            raise UsageError(f"--image '{path}' is not a readable PNG ({e}); install Pillow "
                             "(pip install pillow) for other formats") from None
        if img.shape[2] == 1:
            img = img.repeat(3, axis=2)
        return img[:, :, :3]
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Image.DecompressionBombError as e:
        raise UsageError(f"--image '{path}': {e}") from None
    except (OSError, ValueError, SyntaxError) as e:  # UnidentifiedImageError is an OSError
        reason = getattr(e, "strerror", None) or e
        raise UsageError(f"--image '{path}' is not an image Pillow can read ({reason})"
                         ) from None


def fit_photo(photo: object, path: Path, height: int, width: int) -> object:
    """``photo`` (from ``read_photo``) as a ``height`` x ``width`` x 3 uint8 RGB array,
    resized bilinearly when its size differs (as examples/classify.py does)."""
    import numpy as np

    if isinstance(photo, np.ndarray):
        if photo.shape[:2] != (height, width):
            raise UsageError(f"--image '{path}' is {photo.shape[1]}x{photo.shape[0]}, the "
                             f"model takes {width}x{height}: resizing needs Pillow "
                             "(pip install pillow)")
        return photo
    from PIL import Image

    if photo.size != (width, height):  # type: ignore[attr-defined]
        photo = photo.resize((width, height), Image.BILINEAR)  # type: ignore[attr-defined]
    return np.asarray(photo, dtype=np.uint8)


def demo_input_size(model: Path, options: object) -> tuple[int, int]:
    """H and W of the model's one image input ``[N,3,H,W]``; a ``UsageError`` otherwise."""
    from sqzc import driver

    graph = driver.load_graph(model, options)  # type: ignore[arg-type]
    shapes = {graph.input_names[n]: graph.op(n).out.shape for n in graph.inputs}
    if len(shapes) != 1 or len(next(iter(shapes.values()))) != 4 or \
            next(iter(shapes.values()))[1] != 3:
        got = ", ".join(f"'{k}' {'x'.join(map(str, v))}" for k, v in shapes.items()) or "none"
        raise UsageError(f"--model {model}: sqzc demo needs a model with one image input "
                         f"[N,3,H,W] (an ImageNet classifier); its inputs: {got}")
    _, _, height, width = next(iter(shapes.values()))
    return int(height), int(width)


def cmd_demo(args: argparse.Namespace) -> int:
    """``sqzc demo``: compile the bundled SqueezeNet and classify a photo."""
    import time

    import numpy as np

    import sqzc.driver as driver
    from sqzc.imageio import squeezenet_input
    from sqzc.runtime import load

    model = Path(args.model or DEMO_MODEL)
    image = Path(args.image or DEMO_IMAGE)
    if args.keep:
        check_output_path(args.keep, "--keep")
    photo = read_photo(image)
    options = driver.CompileOptions(opt_level=3)
    height, width = demo_input_size(model, options)
    with tempfile.TemporaryDirectory(prefix="sqzc-demo-") as tmp:
        lib = Path(args.keep) if args.keep else Path(tmp) / "libsqueezenet.so"
        t0 = time.perf_counter()
        result = driver.compile(model, lib, options)
        compile_s = time.perf_counter() - t0
        m = load(lib)
        spec = m.input_specs[0]
        x = squeezenet_input(fit_photo(photo, image, height, width), str(spec.dtype))
        t1 = time.perf_counter()
        out = m.run({spec.name: x})[m.output_specs[0].name]
        probs = np.asarray(out, dtype=np.float32).reshape(-1)
        run_ms = (time.perf_counter() - t1) * 1e3
    names = labels()
    print(f"compiled {model.name} -> {lib.name} in {compile_s:.1f} s "
          f"(weights {result.metadata['weights_bytes']} bytes, workspace "
          f"{result.metadata['workspace_bytes']} bytes)")
    print(f"classified {image.name} in {run_ms:.1f} ms; top-5:")
    for i in np.argsort(-probs)[:5]:
        print(f"  {probs[i]:.3f}  {i:4d}  {names[i] if i < len(names) else '?'}")
    return 0


# ----------------------------------------------------------------------------- parser


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
    bn.add_argument("--fuse-int8-qdq", action="store_true",
                    help="integer kernels for every int8-activation QDQ conv")
    bn.add_argument("--openvino", action="store_true",
                    help="also time OpenVINO (if installed) as a second peer")
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
    v.add_argument("--target-cpu", default="host", help=TARGET_CPU_HELP)
    v.set_defaults(fn=cmd_verify)

    ps = sub.add_parser("passes", parents=[common], help="list the optimization pipeline")
    ps.set_defaults(fn=cmd_passes)

    z = sub.add_parser("zoo", parents=[common], help="write a seeded SqueezeNet variant as ONNX")
    z.add_argument("name", nargs="?", help="model name (see --list)")
    z.add_argument("-o", "--output", help="output .onnx file")
    z.add_argument("--opset", type=int, default=13)
    z.add_argument("--seed", type=int, default=0)
    z.add_argument("--batch", default="1", help="batch size or 'dynamic' (default 1)")
    z.add_argument("--dtype", default="float32", choices=["float32", "float16"])
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
    except BrokenPipeError:
        os._exit(1)
    except Exception as e:  # an internal fault: never a raw traceback unless asked
        if args.debug:
            traceback.print_exc()
        print(f"sqzc: error: internal error: {type(e).__name__}: {e} "
              "(run with --debug for a traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
