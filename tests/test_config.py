import json

import pytest

from kflow.config import Config, ConfigError, load_config


def test_round_trip_is_exact(tmp_path):
    cfg = load_config("configs/fmnist_wavelet3.yaml", ["train.steps=7", "path.allocation=[1, 2, 3]"])
    assert cfg.path.allocation == [1.0, 2.0, 3.0] and cfg.transform.num_bands == 3
    again = Config.from_dict(json.loads(cfg.to_json()))
    assert again == cfg


def test_shipped_fmnist_configs_differ_only_in_transform():
    names = ["fm", "fourier2", "fourier3", "wavelet2", "wavelet3", "pca2", "pca3"]
    cfgs = [load_config(f"configs/fmnist_{n}.yaml").to_dict() for n in names]
    for c in cfgs:
        c.pop("transform"), c.pop("out_dir")
    assert all(c == cfgs[0] for c in cfgs)


def test_base_include_and_cycles(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\ntrain: {steps: 3}\n")
    (tmp_path / "b.yaml").write_text("train: {steps: 9, lr: 0.5}\n")
    cfg = load_config(tmp_path / "a.yaml")
    assert cfg.train.steps == 3 and cfg.train.lr == 0.5
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(tmp_path / "a.yaml")


@pytest.mark.parametrize("override, match", [
    ("model.unet.chanels=3", "did you mean model.unet.channels"),
    ("train.amp=fp8", "train.amp='fp8' is not one of"),
    ("train.betas=0.9", "train.betas must be"),
    ("path.allocation=log", "path.allocation='log'"),
    ("train.ema_decay=1.5", "out of range"),
    ("steps=3", "unknown config key steps"),
    ("train", "not key=value"),
])
def test_bad_values_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace("[", r"\[")):
        load_config(None, [override])
