import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kflow.config import load_config
from kflow.training import Trainer, TrainingError
from kflow.utils.checkpoint import CheckpointError, list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "digits_tiny.yaml"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("KFLOW_PROGRESS", "0")


def cfg(tmp_path, *overrides):
    return load_config(TINY, [f"out_dir={tmp_path}", "train.device=cpu", *overrides])


def test_training_lowers_the_loss(tmp_path):
    tr = Trainer(cfg(tmp_path, "train.steps=60", "train.log_every=20", "train.ckpt_every=60"))
    tr.fit()
    rows = (tmp_path / "log.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[1]) for r in rows]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0]
    assert (tmp_path / "samples" / "final.png").exists()
    assert (tmp_path / "config.json").exists()


def test_checkpoint_round_trip(tmp_path):
    tr = Trainer(cfg(tmp_path, "train.steps=4", "train.ckpt_every=4"))
    tr.fit()
    ck = load_checkpoint(list_checkpoints(tmp_path / "checkpoints")[-1])
    assert ck.meta["step"] == 4
    for name, p in tr.model.state_dict().items():
        assert torch.equal(ck.tensors[f"model.{name}"], p)
    for name, p in tr.ema.state_dict().items():
        assert torch.equal(ck.tensors[f"ema.{name}"], p)
    tr2 = Trainer(cfg(tmp_path, "train.steps=4", "train.ckpt_every=4"), resume=True)
    assert tr2.step == 4
    s1, s2 = tr.opt.state_dict()["state"], tr2.opt.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg_sq"], s2[i]["exp_avg_sq"]) for i in s1)


@pytest.mark.parametrize("transform,extra", [("wavelet", []), ("pca", []), ("wavelet", ["train.adamw=fused"])])
def test_resume_is_bit_exact(tmp_path, transform, extra):
    over = ["train.steps=10", "train.ckpt_every=4", f"transform.name={transform}", "transform.num_bands=2", *extra]
    full = Trainer(cfg(tmp_path / "a", *over))
    full.fit()
    part = Trainer(cfg(tmp_path / "b", *over))
    part.fit(until=7)  # dies after step 7; last checkpoint at step 4
    assert [p.name for p in list_checkpoints(tmp_path / "b" / "checkpoints")][-1] == "ckpt-00000004.safetensors"
    resumed = Trainer(cfg(tmp_path / "b", *over), resume=True)
    assert resumed.step == 4
    resumed.fit()
    for (n, p), q in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(p, q), n
    for p, q in zip(full.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(p, q)


def test_adamw_kernel_option(tmp_path):
    """train.adamw=fused runs PyTorch's fused AdamW on the CPU too; auto keeps the CPU's loop kernel
    (every earlier run's bits). The two are the same update up to float summation order."""
    over = ["train.steps=3", "train.ckpt_every=3", "train.warmup=0"]
    auto = Trainer(cfg(tmp_path / "a", *over))
    fused = Trainer(cfg(tmp_path / "f", *over, "train.adamw=fused"))
    assert not auto.opt.param_groups[0]["fused"] and fused.opt.param_groups[0]["fused"]
    auto.fit(), fused.fit()
    moved = 0.0
    for (n, p), q, p0 in zip(
        auto.model.named_parameters(), fused.model.parameters(), Trainer(cfg(tmp_path / "0", *over)).model.parameters()
    ):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6), n
        moved = max(moved, (p - p0).abs().max().item())
    assert moved > 1e-3  # the comparison is of weights that trained


def test_nonfinite_loss_stops_and_keeps_last_checkpoint(tmp_path):
    tr = Trainer(cfg(tmp_path, "train.steps=8", "train.ckpt_every=3"))
    tr.fit(until=3)
    tr.data.x[:] = float("nan")  # poison the data after the first checkpoint
    with pytest.raises(TrainingError, match="non-finite loss or gradient at step 3.*ckpt-00000003"):
        tr.fit()
    load_checkpoint(list_checkpoints(tmp_path / "checkpoints")[-1])  # still loads


def test_resume_refuses_another_transform(tmp_path):
    Trainer(cfg(tmp_path, "train.steps=2", "train.ckpt_every=2")).fit()
    with pytest.raises(TrainingError, match="transform"):
        Trainer(cfg(tmp_path, "train.steps=4", "transform.name=fourier"), resume=True)


def test_corrupted_checkpoint_is_skipped_on_resume(tmp_path):
    Trainer(cfg(tmp_path, "train.steps=4", "train.ckpt_every=2")).fit()
    newest = list_checkpoints(tmp_path / "checkpoints")[-1]
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_checkpoint(newest)
    tr = Trainer(cfg(tmp_path, "train.steps=4"), resume=True)
    assert tr.step == 2


def test_ddp_two_gloo_processes_match_one_process(tmp_path, torchrun):
    dump = tmp_path / "dump"
    dump.mkdir()
    env = dict(os.environ, KFLOW_PROGRESS="0", OMP_NUM_THREADS="1")
    cmd = [
        *torchrun(2),
        str(ROOT / "tests" / "training" / "ddp_worker.py"),
        str(tmp_path / "ddp"),
        str(dump),
        str(TINY),
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = load_file(dump / "rank0.safetensors"), load_file(dump / "rank1.safetensors")
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    # exactly one writer: two checkpoints (steps 3 and 6), no temp files
    names = sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir())
    assert names == ["ckpt-00000003.safetensors", "ckpt-00000006.safetensors"]
    single = Trainer(cfg(tmp_path / "single", "train.steps=6", "train.ckpt_every=3"))
    single.fit()
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(r0[k], v, rtol=1e-4, atol=1e-5)


def test_sample_grid_uses_the_configured_guidance(tmp_path, monkeypatch):
    """sample.guidance / sample.keep_class_until reach the grid as a ClassConditional wrapper."""
    import kflow.steering.guidance as guidance

    seen = []
    original = guidance.ClassConditional.__init__

    def spy(self, model, y, scale=1.0, keep_until=1.0):
        seen.append((scale, keep_until, len(y)))
        original(self, model, y, scale, keep_until)

    monkeypatch.setattr(guidance.ClassConditional, "__init__", spy)
    tr = Trainer(
        cfg(
            tmp_path,
            "train.steps=2",
            "train.ckpt_every=2",
            "sample.guidance=1.5",
            "sample.keep_class_until=0.3",
            "sample.steps=3",
        )
    )
    tr.fit()
    assert seen == [(1.5, 0.3, 16)] and (tmp_path / "samples" / "final.png").exists()


def test_nonfinite_skip_leaves_the_weights_of_that_step_untouched(tmp_path, capsys):
    """train.nonfinite=skip: a step with a NaN loss changes nothing, later steps go on."""
    tr = Trainer(cfg(tmp_path, "train.steps=4", "train.ckpt_every=4", "train.nonfinite=skip"))
    tr.fit(until=2)
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    loss_fn = tr.loss_fn

    def poisoned(*a):
        out = loss_fn(*a)
        out.loss = out.loss * float("nan") if tr.step == 2 else out.loss
        return out

    tr.loss_fn = poisoned
    tr.fit(until=3)
    assert "non-finite loss or gradient at step 2" in capsys.readouterr().out
    assert all(torch.equal(v, tr.model.state_dict()[k]) for k, v in before.items())
    tr.fit()
    assert tr.step == 4 and all(torch.isfinite(p).all() for p in tr.model.parameters())


def test_the_callers_config_is_left_as_given(tmp_path):
    """Derived settings (resolved allocation, model channels/size/classes, band edges) go into the
    run's copy and its config.json, never into the config object the caller passed."""
    import copy
    import json

    c = cfg(tmp_path, "train.steps=2", "train.ckpt_every=2", "path.allocation=energy", "model.k_embedding=band")
    before = copy.deepcopy(c)
    tr = Trainer(c)
    tr.fit()
    assert c == before
    saved = json.loads((tmp_path / "config.json").read_text())
    assert isinstance(saved["path"]["allocation"], list) and len(saved["path"]["allocation"]) == tr.path.num_bands
    assert tr.model.cfg.num_classes == 10 and tr.model.cfg.band_edges == tr.path.position_starts()[1:].tolist()


def test_flipped_bytes_inside_a_checkpoint_are_caught_by_the_checksums(tmp_path):
    """4 KiB flipped in the middle of the newest checkpoint: the header still parses, the tensor
    checksums do not match; loading it is refused and resume falls back to the previous one."""
    Trainer(cfg(tmp_path, "train.steps=4", "train.ckpt_every=2")).fit()
    newest = list_checkpoints(tmp_path / "checkpoints")[-1]
    data = bytearray(newest.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4096] = bytes(b ^ 0xFF for b in data[mid : mid + 4096])
    newest.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        load_checkpoint(newest)
    tr = Trainer(cfg(tmp_path, "train.steps=4"), resume=True)
    assert tr.step == 2


def test_an_empty_log_file_gets_its_header(tmp_path, monkeypatch):
    """A log.csv left empty (a run killed as it created it) is written with its header, so the
    columns can be read by name afterwards."""
    import csv

    from kflow.training.logger import COLUMNS, RunLogger

    monkeypatch.setenv("KFLOW_PROGRESS", "0")
    (tmp_path / "log.csv").write_text("")
    logger = RunLogger(tmp_path, 0, 10)
    logger.log(5, 0.5, 1e-3, 2.0, 128.0)
    logger.close()
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert list(rows[0]) == COLUMNS and rows[0]["images_per_s"] == "128.0"
