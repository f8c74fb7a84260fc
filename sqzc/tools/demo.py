"""``sqzc demo``: compile the bundled SqueezeNet (or a given classifier) and classify a
photo, the README's first command. The photo is resized to the model's input size."""

from __future__ import annotations

import argparse
import tempfile
from importlib import resources
from pathlib import Path

from sqzc.errors import UsageError
from sqzc.tools.cli_files import check_output_path

#: The bundled model, photo and labels: the ``sqzc.data`` package. It is installed as plain
#: files (sqzc is never imported from a zip: it writes and links libraries), so
#: ``files()`` is a ``pathlib.Path`` and the paths below can be handed to the compiler.
DATA_DIR = Path(resources.files("sqzc.data"))  # type: ignore[arg-type]
DEMO_MODEL = DATA_DIR / "squeezenet1.1_fp16.onnx"
DEMO_IMAGE = DATA_DIR / "kitten_224.png"
LABELS = DATA_DIR / "synset.txt"


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
        from sqzc.tools.imageio import read_png

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
    from sqzc.runtime import load
    from sqzc.tools.imageio import squeezenet_input

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
