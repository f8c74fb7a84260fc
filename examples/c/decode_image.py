#!/usr/bin/env python3
"""Turn a photo into what examples/c/classify reads.

    python decode_image.py photo.jpg -o photo.ppm          # 224x224 binary PPM (P6)
    python decode_image.py photo.jpg -o photo.f32 --raw    # float32 NCHW BGR 0..255

The image is decoded and resized with Pillow when it is installed, else with sqzc's
built-in PNG decoder (``sqzc.tools.imageio``: 8-bit PNGs already at the target size). A PPM keeps
the RGB pixels (classify.c does the BGR/NCHW preprocessing itself); ``--raw`` writes the
finished model input (SqueezeNet convention: NCHW, BGR, raw 0..255, no mean/std).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqzc.tools.imageio import load_rgb, squeezenet_input


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image", help="input photo (PNG; any format Pillow reads when installed)")
    p.add_argument("-o", "--output", required=True, help="output .ppm (or raw file with --raw)")
    p.add_argument("--size", type=int, default=224, help="square side in pixels (default 224)")
    p.add_argument("--raw", action="store_true",
                   help="write raw float32 NCHW BGR 0..255 instead of a PPM")
    args = p.parse_args(argv)
    rgb = load_rgb(args.image, args.size)  # size x size x 3 uint8
    if args.raw:
        data = squeezenet_input(rgb, "float32").astype("<f4").tobytes()
    else:
        data = f"P6\n{rgb.shape[1]} {rgb.shape[0]}\n255\n".encode() + rgb.tobytes()
    Path(args.output).write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
