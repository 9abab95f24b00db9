"""viz/images.py: the uint8 rule both ways, tiling row-major with white padding, the PNG written."""

import numpy as np
import torch
from PIL import Image

from kflow.data.image_data import from_uint8, to_uint8
from kflow.viz.images import grid_image, save_image_grid, tile


def test_uint8_round_trip_and_clamping():
    a = np.arange(256, dtype=np.uint8).reshape(4, 1, 8, 8)
    x = from_uint8(a)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    np.testing.assert_array_equal(to_uint8(x), a)
    assert to_uint8(torch.tensor([[[[-3.0, 3.0]]]])).tolist() == [[[[0, 255]]]]


def test_tile_places_images_row_major_with_padding():
    x = torch.stack([torch.full((3, 2, 2), v) for v in (-1.0, 0.0, 1.0)])  # black, grey, white RGB
    arr = tile(x, nrow=1, pad=1)  # one row of three 2x2 images, 1-pixel white borders
    assert arr.shape == (1 * 3 + 1, 3 * 3 + 1, 3)
    assert (arr[0] == 255).all() and (arr[:, 0] == 255).all()
    assert (arr[1:3, 1:3] == 0).all() and (arr[1:3, 4:6] == 128).all() and (arr[1:3, 7:9] == 255).all()


def test_grid_image_scales_and_saves_grayscale(tmp_path):
    x = torch.linspace(-1, 1, 2 * 16).reshape(2, 1, 4, 4)
    im = grid_image(x, nrow=2, scale=3)
    assert im.mode == "L" and im.size == (3 * (4 + 2), 3 * (2 * 5 + 1))
    png = save_image_grid(x, tmp_path / "g.png", nrow=2, scale=3)
    np.testing.assert_array_equal(np.asarray(Image.open(png)), np.asarray(im))
