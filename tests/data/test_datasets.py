import numpy as np
import pytest
import torch

from kflow.data import DataError, fit_size, load_dataset


def test_digits_splits_and_range():
    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert tr.x.shape[1:] == (1, 8, 8) and len(tr) + len(te) == 1797
    assert tr.x.min() >= -1 and tr.x.max() <= 1 and tr.num_classes == 10


def test_fit_size_pads_with_background_and_resizes():
    x = torch.zeros(2, 1, 28, 28)
    y = fit_size(x, 32)
    assert y.shape == (2, 1, 32, 32) and y[0, 0, 0, 0] == -1 and y[0, 0, 2, 2] == 0
    assert fit_size(torch.zeros(1, 3, 40, 40), 32).shape == (1, 3, 32, 32)


def test_npz_uint8_nhwc_and_labels(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (5, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(5) % 2)
    d = load_dataset("npz", root=str(tmp_path / "d.npz"), image_size=8)
    assert d.x.shape == (5, 3, 8, 8) and d.num_classes == 2
    np.testing.assert_allclose(d.x[0, :, 1:7, 1:7].numpy(), x[0].transpose(2, 0, 1) / 127.5 - 1, atol=1e-6)


def test_npz_rejects_nan(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.full((2, 4, 4), np.nan, dtype=np.float32))
    with pytest.raises(DataError, match="NaN"):
        load_dataset("npz", root=str(tmp_path / "bad.npz"))


def test_image_folder_with_classes(tmp_path):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((8, 8), 50 * i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    d = load_dataset("folder", root=str(tmp_path))
    assert d.x.shape == (4, 1, 8, 8) and d.num_classes == 2 and d.y.tolist() == [0, 0, 1, 1]
    Image.fromarray(np.zeros((9, 9), dtype=np.uint8)).save(tmp_path / "cat" / "odd.png")
    with pytest.raises(DataError, match="mixed sizes"):
        load_dataset("folder", root=str(tmp_path))


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no images"):
        load_dataset("folder", root=str(tmp_path))
