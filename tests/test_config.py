import json
import re

import pytest

from kflow.config import Config, ConfigError, load_config


def test_round_trip_is_exact(tmp_path):
    cfg = load_config("configs/fmnist_wavelet3.yaml", ["train.steps=7", "path.allocation=[1, 2, 3]"])
    assert cfg.path.allocation == [1.0, 2.0, 3.0] and cfg.transform.num_bands == 3
    again = Config.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_shipped_fmnist_configs_differ_only_in_transform_and_schedule():
    """The K-Flow configs differ from each other only in the transform; from FM also in the band
    schedule (overlap 0.5 and the window k-embedding, which a one-band FM path does not have)."""
    names = ["fourier2", "fourier3", "wavelet2", "wavelet3", "pca2", "pca3"]
    cfgs = [load_config(f"configs/fmnist_{n}.yaml").to_dict() for n in ["fm", *names]]
    for c in cfgs:
        c.pop("transform"), c.pop("out_dir")
    fm, kflow = cfgs[0], cfgs[1:]
    assert all(c == kflow[0] for c in kflow)
    assert kflow[0]["path"]["overlap"] == 0.5 and kflow[0]["model"]["k_embedding"] == "window"
    assert fm["path"]["overlap"] == 0.0 and fm["model"]["k_embedding"] == "k"
    fm["path"]["overlap"], fm["model"]["k_embedding"] = 0.5, "window"
    assert fm == kflow[0]


def test_base_include_and_cycles(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\ntrain: {steps: 3}\n")
    (tmp_path / "b.yaml").write_text("train: {steps: 9, lr: 0.5}\n")
    cfg = load_config(tmp_path / "a.yaml")
    assert cfg.train.steps == 3 and cfg.train.lr == 0.5
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    "override, match",
    [
        ("model.unet.chanels=3", "did you mean model.unet.channels"),
        ("train.amp=fp8", "train.amp='fp8' is not one of"),
        ("train.betas=0.9", "train.betas must be"),
        ("path.allocation=log", "path.allocation='log'"),
        ("train.ema_decay=1.5", "out of range"),
        ("steps=3", "unknown config key steps"),
        ("train", "not key=value"),
    ],
)
def test_bad_values_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace("[", r"\[")):
        load_config(None, [override])


PAPER = ["fm", "wavelet", "fourier", "pca"]


@pytest.mark.parametrize("dataset", ["celebahq256", "imagenet256"])
def test_paper_configs_build_dit_l2_and_differ_only_in_transform(dataset):
    """configs/paper: DiT-L/2 on (4, 32, 32) latents (458M parameters as published; the MoE
    variant adds experts), FM and K-Flow differing only in the transform."""
    import torch

    from kflow.recipe import make_model

    cfgs = {n: load_config(f"configs/paper/{dataset}_{n}.yaml") for n in PAPER + ["wavelet_moe"]}
    dicts = {n: c.to_dict() for n, c in cfgs.items()}
    for d in dicts.values():
        d.pop("transform"), d.pop("out_dir")
    assert all(dicts[n] == dicts["fm"] for n in PAPER)
    assert cfgs["wavelet_moe"].model.dit.num_experts == 8
    conditional = dataset == "imagenet256"
    assert cfgs["fm"].data.labels == conditional and cfgs["fm"].sample.guidance == (1.5 if conditional else 1.0)
    with torch.device("meta"):
        dense = make_model(cfgs["fm"], (4, 32, 32), 1000 if conditional else 0)
        moe = make_model(cfgs["wavelet_moe"], (4, 32, 32), 1000 if conditional else 0)
    params = sum(p.numel() for p in dense.parameters())
    assert 455e6 < params < 462e6, params
    assert sum(p.numel() for p in moe.parameters()) > 3 * params


def test_sample_guidance_range():
    with pytest.raises(ConfigError, match="sample.keep_class_until=1.5 is out of range"):
        load_config(None, ["sample.keep_class_until=1.5"])


def test_yaml_string_floats_are_read_as_floats(tmp_path):
    """YAML 1.1 reads 1e-4 (no dot) as a string; a float key takes it as the number it is."""
    from kflow.config import load_config

    assert load_config(None, ["train.lr=1e-4"]).train.lr == 1e-4
    f = tmp_path / "c.yaml"
    f.write_text("train: {lr: 3e-4, warmup: 10}\n")
    assert load_config(f).train.lr == 3e-4


@pytest.mark.parametrize(
    "name,row,steps", [("staged", "wavelet3_staged", [2, 1, 1]), ("hybrid", "wavelet3_hybrid", [6, 1, 1])]
)
def test_the_staged_configs_are_the_benchmarked_rows(monkeypatch, name, row, steps):
    """configs/fmnist_wavelet3_{staged,hybrid}.yaml are the rows of docs/benchmarks.md (the
    benchmark's own CPU budget and model aside): the same path, model options, stage batching,
    optimizer kernel; sampling steps per stage as the tables sample them (the hybrid's rows with
    --step-allocation 6,1,1)."""
    monkeypatch.syspath_prepend("benchmarks")
    from toolkit import config_for

    shipped = load_config(f"configs/fmnist_wavelet3_{name}.yaml").to_dict()
    row = config_for(row, ["model.unet.channels=16"]).to_dict()
    for key in ("transform", "path"):
        assert shipped[key] == row[key], key
    for key in ("k_embedding", "resolution", "stage_weights"):
        assert shipped["model"][key] == row["model"][key], key
    # the widths relative to the backbone's (the benchmark's CPU UNet has 16 channels, the shipped 32)
    rel = [c / shipped["model"]["unet"]["channels"] for c in shipped["model"]["stage_channels"]]
    assert rel == [c / row["model"]["unet"]["channels"] for c in row["model"]["stage_channels"]] == [2, 1, 1]
    for key in ("k_density", "stage_batches", "stage_share", "adamw", "stage_calls"):
        assert shipped["train"][key] == row["train"][key], key
    assert row["sample"]["step_allocation"] == [2, 1, 1] and shipped["sample"]["step_allocation"] == steps


@pytest.mark.parametrize(
    "override,message",
    [
        ("sample.step_allocation=fast", "use length, equal or per-band weights"),
        ("sample.step_allocation=[2,1]", "one per band"),
        ("sample.step_allocation=[2,-1,1]", "positive weights"),
        ("train.adamw=foreach", "train.adamw='foreach' is not one of auto, fused"),
    ],
)
def test_sampling_and_optimizer_options_are_validated(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("configs/fmnist_wavelet3.yaml", [override])


def test_step_allocation_round_trips(tmp_path):
    c = load_config("configs/fmnist_wavelet3.yaml", ["sample.step_allocation=[2,1,1]", "train.adamw=fused"])
    (tmp_path / "c.json").write_text(json.dumps(c.to_dict()))
    back = load_config(tmp_path / "c.json")
    assert back.sample.step_allocation == [2.0, 1.0, 1.0] and back.train.adamw == "fused"
    assert back.to_dict() == c.to_dict()
