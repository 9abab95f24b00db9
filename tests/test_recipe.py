"""recipe: a Config and the data -> transform, band scale, path, model; a run back from its checkpoint;
ToImage, the one map from model space to images."""

import dataclasses

import pytest
import torch

from kflow.config import Config, ConfigError
from kflow.recipe import make_band_scale, make_model, make_path, make_transform
from kflow.runs import ToImage, load_run
from kflow.transforms import FourierTransform, IdentityTransform, PCATransform, WaveletTransform


def cfg_with(**sections) -> Config:
    cfg = Config()
    for section, values in sections.items():
        setattr(cfg, section, dataclasses.replace(getattr(cfg, section), **values))
    return cfg


@pytest.mark.parametrize(
    "name, cls", [("identity", IdentityTransform), ("fourier", FourierTransform), ("wavelet", WaveletTransform)]
)
def test_make_transform_builds_the_named_orthonormal_transform(name, cls):
    T = make_transform(cfg_with(transform=dict(name=name, num_bands=2, wavelet="haar")), (1, 8, 8))
    assert isinstance(T, cls) and tuple(T.shape) == (1, 8, 8)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(T.synthesize(T.analyze(x)), x, rtol=0, atol=1e-12)  # a round trip


def test_pca_needs_data_or_its_basis_file(tmp_path):
    cfg = cfg_with(transform=dict(name="pca", num_bands=2, pca_samples=50))
    with pytest.raises(ConfigError, match="needs its basis file"):
        make_transform(cfg, (1, 4, 4))
    data = torch.randn(60, 1, 4, 4)
    T = make_transform(cfg, (1, 4, 4), data)
    assert isinstance(T, PCATransform)
    T.save(tmp_path / "pca.safetensors")
    again = make_transform(cfg, (1, 4, 4), None, tmp_path / "pca.safetensors")
    torch.testing.assert_close(again.bands, T.bands)
    with pytest.raises(ConfigError, match="delete it to refit"):
        make_transform(cfg, (1, 8, 8), None, tmp_path / "pca.safetensors")


def test_make_path_resolves_energy_and_refuses_it_without_data():
    cfg = cfg_with(transform=dict(name="wavelet", num_bands=2, wavelet="haar"), path=dict(allocation="energy"))
    T = make_transform(cfg, (1, 8, 8))
    with pytest.raises(ConfigError, match="needs the data"):
        make_path(cfg, T)
    path = make_path(cfg, T, torch.randn(20, 1, 8, 8))
    assert isinstance(path.allocation, list) and len(path.allocation) == 2  # explicit weights, saved with the run


def test_make_model_fills_derived_settings_in_a_copy():
    cfg = cfg_with(
        transform=dict(name="wavelet", num_bands=2, wavelet="haar"),
        path=dict(overlap=0.5),
        model=dict(k_embedding="window"),
    )
    cfg.model.unet = dataclasses.replace(cfg.model.unet, channels=8, channel_mult=[1], num_res_blocks=1)
    before = dataclasses.asdict(cfg.model.unet)
    path = make_path(cfg, make_transform(cfg, (1, 8, 8)))
    model = make_model(cfg, (1, 8, 8), 3, path)
    assert model.cfg.band_windows == path.windows().tolist() and model.cfg.num_classes == 3
    assert dataclasses.asdict(cfg.model.unet) == before  # the caller's config is untouched
    with pytest.raises(ConfigError, match="square"):
        make_model(cfg, (1, 8, 6), 0, path)


def test_to_image_undoes_the_band_scale_exactly():
    cfg = cfg_with(transform=dict(name="wavelet", num_bands=2, wavelet="haar", band_scale="rms"))
    T = make_transform(cfg, (1, 8, 8))
    data = torch.randn(50, 1, 8, 8, dtype=torch.float64) * 0.3
    scale = make_band_scale(cfg, T, data)
    torch.testing.assert_close(ToImage(cfg, scale)(scale.normalize(data)), data, rtol=0, atol=1e-12)
    x = torch.randn(2, 1, 8, 8)
    assert ToImage(cfg_with())(x) is x  # a pixel run without a scale: images already


def test_load_run_rebuilds_the_trained_model(tiny_run):
    from kflow.utils.checkpoint import load_latest_checkpoint

    run = load_run(tiny_run)
    ck = load_latest_checkpoint(tiny_run / "checkpoints")
    assert run.step == 3 and run.num_classes == 10 and not run.latent
    for k, v in run.model.state_dict().items():  # the EMA weights, bit for bit
        assert torch.equal(v, ck.state("ema")[k]), k
    weights = load_run(tiny_run, weights="model").model.state_dict()
    assert any(not torch.equal(weights[k], v) for k, v in run.model.state_dict().items())
    with pytest.raises(ValueError, match="use 'ema' or 'model'"):
        load_run(tiny_run, weights="best")
