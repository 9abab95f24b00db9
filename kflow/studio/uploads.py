"""Uploaded image files, read as every kflow command reads image files."""

from __future__ import annotations

from torch import Tensor

from ..data.image_data import images_to_model_range
from ..data.image_files import read_image
from ..utils.errors import DataError
from .requests import RequestError


def decode_upload(data: bytes, shape, what: str = "image") -> Tensor:
    """An uploaded image file -> (1, C, H, W) in [-1, 1], read as every command reads image files.
    Refused in one line: not an image, another channel count than the model's, another size
    (images are never resized behind the user's back)."""
    C, H, W = shape
    try:
        a = read_image(data, what)  # (c, h, w), the file's own channels
    except DataError as e:
        raise RequestError(str(e)) from None
    c = a.shape[0]
    if c != C:
        kind = {1: "grayscale (1 channel)", 3: "RGB (3 channels)"}
        raise RequestError(
            f"{what}: the image is {kind.get(c, f'{c} channels')}, this run takes {kind.get(C, f'{C} channels')}; "
            "convert it first"
        )
    if a.shape[1:] != (H, W):
        raise RequestError(
            f"{what}: the image is {a.shape[2]}x{a.shape[1]} pixels, this needs {W}x{H} (images are never resized)"
        )
    return images_to_model_range(a[None], what)
