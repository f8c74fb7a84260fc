"""Just enough image loading for ``sqzc demo`` without extra runtime dependencies.

A small PNG decoder (8-bit grayscale/RGB/RGBA, non-interlaced: what the bundled photo
is) built on zlib and numpy; any other format goes through Pillow when it is installed.
Also the SqueezeNet preprocessing used by the bundled Caffe-lineage model.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from sqzc.errors import UsageError

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 6: 4}  # color type -> samples per pixel


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> np.ndarray:
    stride = width * bpp
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    pos = 0
    for y in range(height):
        ftype = raw[pos]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=pos + 1).astype(np.int32)
        pos += stride + 1
        cur = line.copy()
        if ftype == 1:  # Sub
            for x in range(bpp, stride):
                cur[x] = (cur[x] + cur[x - bpp]) & 0xFF
        elif ftype == 2:  # Up
            cur = (cur + prev) & 0xFF
        elif ftype == 3:  # Average
            for x in range(stride):
                left = cur[x - bpp] if x >= bpp else 0
                cur[x] = (cur[x] + ((left + prev[x]) >> 1)) & 0xFF
        elif ftype == 4:  # Paeth
            for x in range(stride):
                a = cur[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
                cur[x] = (cur[x] + pred) & 0xFF
        elif ftype != 0:
            raise UsageError(f"PNG: bad filter type {ftype}")
        out[y] = cur
        prev = cur
    return out


def read_png(path: Path) -> np.ndarray:
    """Decode an 8-bit, non-interlaced PNG to HxWxC uint8."""
    data = path.read_bytes()
    if not data.startswith(_PNG_MAGIC):
        raise UsageError(f"{path}: not a PNG file")
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
    if header is None:
        raise UsageError(f"{path}: PNG without IHDR")
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in _CHANNELS or interlace:
        raise UsageError(f"{path}: only 8-bit non-interlaced gray/RGB/RGBA PNGs are decoded "
                         "without Pillow; install pillow for other images")
    bpp = _CHANNELS[color]
    pixels = _unfilter(zlib.decompress(b"".join(idat)), width, height, bpp)
    return pixels.reshape(height, width, bpp)


def load_rgb(path: str | Path, size: int = 224) -> np.ndarray:
    """An image as size x size x 3 uint8 RGB (bilinear resize via Pillow when needed)."""
    p = Path(path)
    try:
        from PIL import Image
    except ImportError:
        img = read_png(p)
        if img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        img = img[:, :, :3]
        if img.shape[:2] != (size, size):
            raise UsageError(f"{p}: resizing needs Pillow (pip install pillow)") from None
        return img
    with Image.open(p) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def squeezenet_input(rgb: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """The Caffe-lineage SqueezeNet convention: NCHW, BGR, raw 0..255, no mean/std."""
    bgr = rgb[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None]).astype(dtype)


#: The Caffe SqueezeNet's per-channel mean, in BGR order (the Deep Compression model's
#: preprocessing, ../shared/models/deepcomp/MANIFEST.md).
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)


def caffe_input(path: str | Path, crop: int = 227, short_side: int = 256,
                mean_bgr: tuple[float, float, float] = CAFFE_MEAN_BGR) -> np.ndarray:
    """Caffe preprocessing: resize the short side to ``short_side`` (bilinear), crop the
    centre ``crop`` x ``crop``, BGR 0..255 minus ``mean_bgr``; float32 NCHW [1, 3, crop,
    crop]. Resizing needs Pillow."""
    p = Path(path)
    try:
        from PIL import Image
    except ImportError:
        raise UsageError(f"{p}: Caffe preprocessing resizes the image, which needs Pillow "
                         "(pip install pillow)") from None
    with Image.open(p) as im:
        im = im.convert("RGB")
        scale = short_side / min(im.size)
        size = (max(crop, round(im.size[0] * scale)), max(crop, round(im.size[1] * scale)))
        rgb = np.asarray(im.resize(size, Image.BILINEAR), dtype=np.uint8)
    top, left = (rgb.shape[0] - crop) // 2, (rgb.shape[1] - crop) // 2
    bgr = rgb[top:top + crop, left:left + crop, ::-1].astype(np.float32)
    bgr -= np.asarray(mean_bgr, np.float32)
    return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])

