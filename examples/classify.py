#!/usr/bin/env python3
"""Classify a photo with an ImageNet classifier compiled by sqzc.

    python examples/classify.py model.onnx photo.jpg     # compiles to a temp dir first
    python examples/classify.py libsqz.so photo.jpg      # a library from `sqzc compile`
    python examples/classify.py libsqz.so                # the bundled kitten photo

Preprocessing follows the Caffe-lineage SqueezeNet convention the bundled model uses:
RGB image resized to the input's H x W (bilinear), channels reordered to BGR, raw 0..255
values (no mean/std), NCHW, cast to the input's dtype (float16 for the bundled model).
Images are read with Pillow when it is installed, else with ``sqzc.tools.imageio`` (8-bit PNGs
already at the input size).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import sqzc
from sqzc.errors import UsageError

DATA = Path(sqzc.__file__).resolve().parent / "data"


def load_image(path: Path, height: int, width: int) -> np.ndarray:
    """``height x width x 3`` uint8 RGB."""
    try:
        from PIL import Image
    except ImportError:  # no Pillow: sqzc's own PNG decoder (square sizes only)
        from sqzc.tools.imageio import load_rgb

        if height != width:
            raise UsageError(f"a {height}x{width} input needs Pillow "
                             "(pip install pillow)") from None
        try:
            return load_rgb(path, height)
        except (OSError, ValueError, IndexError) as e:
            raise UsageError(f"cannot read image '{path}': "
                             f"{getattr(e, 'strerror', None) or e}") from None
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (width, height):
                im = im.resize((width, height), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # a missing file, a folder, or a file Pillow cannot identify (UnidentifiedImageError)
        raise UsageError(f"cannot read image '{path}': "
                         f"{getattr(e, 'strerror', None) or e}") from None


def preprocess(rgb: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """HWC RGB uint8 -> 1x3xHxW BGR 0..255 in ``dtype``."""
    bgr = rgb[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None]).astype(dtype)


def read_labels(path: Path) -> list[str]:
    """``synset.txt`` lines ``n02123045 tabby, tabby cat`` -> ``tabby, tabby cat``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read labels '{path}': "
                         f"{getattr(e, 'strerror', None) or e}") from None
    return [line.split(" ", 1)[1].strip() if " " in line else line for line in lines if line]


def classify(model: sqzc.CompiledModel, image: Path, labels: list[str], top: int) -> None:
    """Run ``model`` on ``image`` and print the ``top`` classes."""
    spec = model.input_specs[0]
    if len(model.input_specs) != 1 or len(spec.shape) != 4 or spec.shape[1] != 3:
        raise UsageError(f"expected one [N,3,H,W] input, got "
                         f"{', '.join(str(s) for s in model.input_specs)}")
    _, _, height, width = spec.shape
    x = preprocess(load_image(image, int(height), int(width)), spec.dtype)
    probs = np.asarray(model(x), dtype=np.float32).reshape(-1)
    print(f"top-{top} for {image.name}:")
    for i in np.argsort(-probs, kind="stable")[:top]:
        name = labels[i] if i < len(labels) else "?"
        print(f"  {probs[i]:.3f}  {i:4d}  {name}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Classify a photo with a sqzc-compiled model.")
    p.add_argument("model", type=Path, help="model.onnx (compiled to a temp dir) or lib.so")
    p.add_argument("image", type=Path, nargs="?", default=DATA / "kitten_224.png",
                   help="photo to classify (default: the bundled kitten)")
    p.add_argument("--labels", type=Path, default=DATA / "synset.txt",
                   help="class names, one per line (default: ImageNet synset.txt)")
    p.add_argument("--top", type=int, default=5, help="how many classes to print (default 5)")
    p.add_argument("--threads", type=int, default=1, help="worker threads (default 1)")
    args = p.parse_args(argv)
    if not args.image.exists():  # before compiling: fail fast on a mistyped name
        raise UsageError(f"no such image file: '{args.image}'")
    labels = read_labels(args.labels)
    if args.model.suffix == ".onnx":
        with tempfile.TemporaryDirectory(prefix="sqzc-classify-") as tmp:
            lib = Path(tmp) / "libmodel.so"
            sqzc.compile(args.model, lib)
            classify(sqzc.load(lib, threads=args.threads), args.image, labels, args.top)
    else:
        classify(sqzc.load(args.model, threads=args.threads), args.image, labels, args.top)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except sqzc.SqzcError as e:
        print(f"classify.py: error: {e}", file=sys.stderr)
        sys.exit(2)
