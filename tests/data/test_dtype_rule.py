"""One dtype/range rule for images and labels wherever arrays enter (docs/reliability.md)."""

import numpy as np
import pytest
import torch

from kflow.cli.main import main
from kflow.data import DataError
from kflow.data.datasets import load_npz
from kflow.data.image_data import images_to_model_range, labels_to_long

rng = np.random.default_rng(0)
U8 = rng.integers(0, 256, (6, 1, 8, 8)).astype(np.uint8)


@pytest.mark.parametrize(
    "array",
    [
        U8,
        U8.astype(np.int64),  # any integer dtype holds 0..255
        U8.astype(np.float32) / 255,  # floats in [0, 1]
        U8.astype(np.float64) / 127.5 - 1,  # floats in [-1, 1]
    ],
    ids=["uint8", "int64", "float 0..1", "float -1..1"],
)
def test_every_accepted_form_gives_the_same_images(array):
    ref = torch.from_numpy(U8.astype(np.float32)) / 127.5 - 1
    torch.testing.assert_close(images_to_model_range(array, "x"), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "array, words",
    [
        (U8.astype(np.float32), "float images must lie in [-1, 1] (or [0, 1]), these span"),  # floats 0..255
        (U8.astype(np.int16) + 100, "integer images must hold 0..255"),
        (-U8.astype(np.int32) - 1, "integer images must hold 0..255"),
        (np.full((2, 1, 4, 4), np.nan, np.float32), "NaN or Inf"),
        (np.zeros((2, 1, 4, 4), bool), "dtype bool"),
        (np.zeros((2, 1, 4, 4), np.complex64), "dtype complex64"),
    ],
    ids=["float 0..255", "int above 255", "negative ints", "NaN", "bool", "complex"],
)
def test_what_does_not_fit_the_rule_is_refused(array, words):
    with pytest.raises(DataError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")) as e:
        images_to_model_range(array, "x")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "labels, words",
    [
        (np.full(6, -1), "for an unconditional model"),
        (np.array([0, 1, 2, 1.5, 0, 1]), "not integers"),
        (np.array(["a"] * 6), "dtype <U1"),
        (np.arange(5), "5 labels for 6 images"),
    ],
)
def test_bad_labels_are_refused(labels, words):
    with pytest.raises(DataError, match=words):
        labels_to_long(labels, 6, "y")


def test_integral_float_labels_are_fine():
    assert labels_to_long(np.array([0.0, 2.0, 1.0]), 3, "y").tolist() == [0, 2, 1]


def test_train_and_eval_read_an_npz_by_the_same_rule(tmp_path, capsys):
    """The same images as uint8 and as floats in [0, 1] load identically; 0..255 floats and
    all -1 labels are one-line refusals from `kflow train`."""
    a, b = tmp_path / "u8.npz", tmp_path / "f.npz"
    np.savez(a, x=U8, y=np.arange(6) % 3)
    np.savez(b, x=U8.astype(np.float32) / 255, y=np.arange(6) % 3)
    torch.testing.assert_close(load_npz(a).x, load_npz(b).x, rtol=0, atol=1e-6)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=U8.astype(np.float32), y=np.full(6, -1))
    from pathlib import Path

    tiny = Path(__file__).resolve().parents[2] / "configs" / "digits_tiny.yaml"
    code = main(["train", str(tiny), f"out_dir={tmp_path / 'r'}", "data.name=npz", f"data.root={bad}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "float images must lie in [-1, 1]" in err and "\n" not in err
