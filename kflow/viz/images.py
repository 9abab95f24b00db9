"""Image grids as PNG (Pillow), images in [-1, 1]."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from torch import Tensor

from ..data.image_data import to_uint8


def tile(x: Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile (N, C, H, W) into one (rows*H, cols*W, C) uint8 array, row-major."""
    imgs = to_uint8(x).transpose(0, 2, 3, 1)  # (N, H, W, C)
    n, h, w, c = imgs.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = imgs[i]
    return out


def grid_image(x: Tensor, nrow: int | None = None, scale: int = 2):
    """(N, C, H, W) in [-1, 1] tiled into one PIL image, `nrow` rows, pixels repeated `scale` times."""
    from PIL import Image

    arr = tile(x, nrow)
    im = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    return im


def save_image_grid(x: Tensor, path: str | Path, nrow: int | None = None, scale: int = 2) -> Path:
    from ..utils.atomic import atomic_write

    im = grid_image(x, nrow, scale)
    atomic_write(path, lambda tmp: im.save(tmp, format="PNG"))
    return Path(path)
