"""Image files (a path or uploaded bytes) -> arrays: the one reader, so that every command and the
studio read a file the same way.

The policy: a palette image takes its colours (RGB, or RGBA when it has transparency); alpha is
dropped; 16-bit and 32-bit integer greyscale keep their depth (scaled to [0, 1] floats, not cut to
0/255); 1-bit images are 0/255. `channels=None` keeps the file's own channel count (1 or 3), for
callers that refuse a mismatch; 1 or 3 converts (RGB -> luminance, grey -> RGB). Images are never
resized here: that is the caller's rule, stated where it applies.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..utils.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_PIXELS = 64 * 2**20  # a decompression bomb is refused from its header, before decoding


def read_image(src: str | Path | bytes, source: str, channels: int | None = None) -> np.ndarray:
    """(C, H, W): uint8 0..255, or float32 in [0, 1] for deeper greyscale (both mean the same range
    to `images_to_model_range`). A file that is not an image is a one-line DataError naming `source`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DataError(
                    f"{source}: the image is {im.width}x{im.height} pixels, more than kflow reads "
                    f"({MAX_PIXELS // 2**20} M pixels); downscale it first"
                )
            im.load()
            if im.mode == "P":  # a palette: its colours decide the channels
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            if im.mode.startswith("I"):  # 16/32-bit integer greyscale: keep the depth
                a = np.asarray(im, dtype=np.float64)
                a = (a / (65535.0 if a.max(initial=0) <= 65535 else a.max())).astype(np.float32)[None]
                return _to_channels(a, channels)
            if im.mode == "F":
                raise DataError(f"{source}: floating-point image files are not read; save it as 8- or 16-bit")
            if im.mode == "1":
                im = im.convert("L")
            own = 1 if len([b for b in im.getbands() if b != "A"]) == 1 else 3  # alpha is dropped
            a = np.asarray(im.convert("L" if (channels or own) == 1 else "RGB"))
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise DataError(f"cannot read {source}: not an image kflow can read; give a PNG or JPEG") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _to_channels(a: np.ndarray, channels: int | None) -> np.ndarray:
    """(1, H, W) greyscale -> the requested channel count."""
    return a if channels in (None, 1) else np.repeat(a, channels, 0)
