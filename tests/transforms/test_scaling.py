"""Per-band normalisation (transform.band_scale): exact round trip, unit band RMS after fitting,
values saved with the run and undone on its samples."""

import json
from pathlib import Path

import pytest
import torch

from kflow import FourierTransform, PCATransform, WaveletTransform
from kflow.cli.main import main
from kflow.config import ConfigError, load_config
from kflow.runs import ToImage, load_run
from kflow.transforms import BandScale

SHAPE = (1, 16, 16)
ROOT = Path(__file__).resolve().parents[2]


def transforms():
    smooth = torch.randn(200, *SHAPE, dtype=torch.float64).cumsum(-1).cumsum(-2) / 20  # energy in low bands
    return {
        "fourier": FourierTransform(SHAPE, num_bands=3),
        "wavelet": WaveletTransform(SHAPE, "db2", levels=2),
        "pca": PCATransform.fit(smooth, num_bands=3),
    }, smooth


@pytest.mark.parametrize("name", ["fourier", "wavelet", "pca"])
def test_round_trip_and_unit_rms(name):
    Ts, data = transforms()
    T = Ts[name]
    s = BandScale.fit(T, data)
    assert s.rms.dtype == torch.float64 and s.rms.shape == (3,) and (s.rms[0] > s.rms[-1])  # coarse bands larger
    z = s.normalize(data)
    torch.testing.assert_close(s.denormalize(z), data, atol=1e-12, rtol=0)
    torch.testing.assert_close(s.normalize(s.denormalize(data)), data, atol=1e-12, rtol=0)
    # every band of the normalised data has RMS 1 (per coefficient)
    c = T.analyze(z)
    for b in range(3):
        assert c[:, T.bands == b].pow(2).mean().sqrt().item() == pytest.approx(1.0, abs=1e-10)
    # batching does not change the result
    torch.testing.assert_close(s.normalize(data, batch_size=7), z, atol=1e-13, rtol=0)


@pytest.mark.parametrize("rms, msg", [([1.0, 2.0], "2 entries for 3 bands"), ([1.0, 0.0, 1.0], "positive")])
def test_bad_values_refused(rms, msg):
    with pytest.raises(ValueError, match=msg):
        BandScale(FourierTransform(SHAPE, num_bands=3), rms)


@pytest.mark.parametrize("value, msg", [("std", "use none, rms"), ([1.0, -2.0], "positive")])
def test_config_refuses_bad_band_scale(value, msg):
    with pytest.raises(ConfigError, match=msg):
        load_config(ROOT / "configs" / "digits_tiny.yaml", [f"transform.band_scale={json.dumps(value)}"])


def test_run_saves_the_values_and_its_samples_are_mapped_back(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["transform.band_scale=rms", "train.steps=3", "train.ckpt_every=3", f"out_dir={out}"]
    assert main(["train", str(ROOT / "configs" / "digits_tiny.yaml"), *args]) == 0
    saved = json.loads((out / "config.json").read_text())["transform"]["band_scale"]
    run = load_run(out)
    assert isinstance(saved, list) and len(saved) == run.path.num_bands
    torch.testing.assert_close(run.scale.rms, torch.tensor(saved, dtype=torch.float64), atol=0, rtol=0)
    x = torch.randn(4, *run.path.transform.shape)
    torch.testing.assert_close(run.to_image(x), run.scale.denormalize(x))
    to_image = ToImage(run.cfg, run.scale)  # what the trainer's grids and `kflow sample --vae` build
    torch.testing.assert_close(to_image(x), run.scale.denormalize(x))
    # editing and restoring uploads would need the scale inside the inversion: refused in one line
    assert main(["edit", str(out), "digits:test", "--n", "2", "--steps", "3"]) == 2
    assert "band_scale is not supported" in capsys.readouterr().err
