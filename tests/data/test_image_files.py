"""data.image_files: the one reader of image files; depth kept, bombs refused before decoding."""

import io

import numpy as np
import pytest
from PIL import Image

from kflow.data.image_files import read_image
from kflow.utils.errors import DataError


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def test_sixteen_bit_greyscale_keeps_its_levels():
    a = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)  # 0 .. 63000
    data = png_bytes(Image.fromarray(a))  # mode I;16
    x = read_image(data, "image")
    assert x.shape == (1, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], a / 65535.0, rtol=0, atol=1e-7)  # not 0/255 only
    assert len(np.unique(x)) == 64
    rgb = read_image(data, "image", channels=3)
    assert rgb.shape == (3, 8, 8) and np.array_equal(rgb[0], rgb[2])


def test_eight_bit_palette_and_alpha():
    x = read_image(png_bytes(Image.new("LA", (4, 4), (7, 0))), "image")
    assert x.shape == (1, 4, 4) and x.dtype == np.uint8 and (x == 7).all()
    p = Image.new("P", (4, 4))
    p.putpalette([10, 20, 30] * 256)
    assert read_image(png_bytes(p), "image").shape == (3, 4, 4)


def test_a_decompression_bomb_is_refused_from_its_header(monkeypatch):
    import kflow.data.image_files as image_files

    monkeypatch.setattr(image_files, "MAX_PIXELS", 100)
    with pytest.raises(DataError, match="11x11 pixels, more than kflow reads"):
        read_image(png_bytes(Image.new("L", (11, 11))), "image")


def test_not_an_image_names_the_file():
    with pytest.raises(DataError, match="cannot read notes.txt: not an image"):
        read_image(b"these are notes", "notes.txt")
