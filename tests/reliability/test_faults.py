"""Faults while writing and sampling: disk full, no permission, non-finite samples."""

import errno
from pathlib import Path

import pytest
import torch

from kflow.cli.main import main
from kflow.utils.checkpoint import list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "digits_tiny.yaml"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("KFLOW_PROGRESS", "0")


def test_disk_full_while_saving_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    import safetensors.torch as st

    real, calls = st.save_file, {"n": 0}

    def full_disk(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] >= 2:  # the first checkpoint fits, the second hits a full disk half-way
            Path(filename).write_bytes(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(st, "save_file", full_disk)
    out = tmp_path / "r"
    code = main(["train", str(TINY), f"out_dir={out}", "train.steps=6", "train.ckpt_every=3"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "No space left on device" in err and "--resume from ckpt-00000003" in err, err
    ckpts = list_checkpoints(out / "checkpoints")
    assert [c.name for c in ckpts] == ["ckpt-00000003.safetensors"]
    assert load_checkpoint(ckpts[0]).meta["step"] == 3
    assert not list((out / "checkpoints").glob(".*.tmp"))  # the half-written temp file is gone
    monkeypatch.setattr(st, "save_file", real)
    assert main(["train", str(TINY), f"out_dir={out}", "train.steps=6", "train.ckpt_every=3", "--resume"]) == 0


def test_no_write_permission(tmp_path, capsys, monkeypatch):
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode == os.W_OK else real(p, mode))
    code = main(["train", str(TINY), f"out_dir={tmp_path / 'r'}", "train.steps=2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot write to" in err and "choose another out_dir" in err


def test_non_finite_samples_are_reported_not_written(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    assert main(["train", str(TINY), f"out_dir={out}", "train.steps=2"]) == 0
    import kflow.runs as runs

    real = runs.load_run

    def poisoned(*a, **k):
        run = real(*a, **k)
        model = run.model

        class NaNModel(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = model

            def forward(self, x, k, y=None):
                return self.inner(x, k, y) * float("nan")

        run.model = NaNModel()
        return run

    monkeypatch.setattr(runs, "load_run", poisoned)
    code = main(["sample", str(out), "--n", "4", "--steps", "3", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "NaN/Inf" in err and "nothing written" in err
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").iterdir())


def test_a_run_writes_only_inside_its_output_folder(tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("KFLOW_CACHE", str(tmp_path / "cache"))
    assert (
        main(["train", str(TINY), "out_dir=runs/x", "train.steps=4", "train.ckpt_every=2", "train.sample_every=2"]) == 0
    )
    assert main(["sample", "runs/x", "--n", "4", "--steps", "3", "--out", "runs/x/samples_cli"]) == 0
    written = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
    assert written and all(w.startswith("runs/x/") for w in written), written
    assert not (tmp_path / "cache").exists()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real filesystem that fills up: a tmpfs of a given size (needs root and mount)."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs mount, which needs root")
    mounted = []

    def make(size_bytes: int) -> Path:
        d = tmp_path / f"tmpfs{len(mounted)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(d)], capture_output=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip() or r.returncode})")
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_a_real_full_disk_while_saving(tmp_path, small_tmpfs, capsys):
    """The library's real error on a full tmpfs (safetensors raises its own type, not OSError):
    one line, exit 2, the previous checkpoint intact, no temp file left, resume elsewhere works."""
    probe = tmp_path / "probe"
    assert main(["train", str(TINY), f"out_dir={probe}", "train.steps=3", "train.ckpt_every=3"]) == 0
    size = list_checkpoints(probe / "checkpoints")[0].stat().st_size
    disk = small_tmpfs(int(1.5 * size) + 64 * 1024)  # room for one checkpoint and the logs, not two
    out = disk / "r"
    capsys.readouterr()
    code = main(["train", str(TINY), f"out_dir={out}", "train.steps=6", "train.ckpt_every=3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "space left on device" in err.lower() and "--resume from ckpt-00000003" in err, err
    assert [c.name for c in list_checkpoints(out / "checkpoints")] == ["ckpt-00000003.safetensors"]
    assert load_checkpoint(list_checkpoints(out / "checkpoints")[0]).meta["step"] == 3
    assert not list((out / "checkpoints").glob(".*.tmp"))


def test_written_files_follow_the_umask_and_killed_parts_are_cleaned(tmp_path):
    import os

    from kflow.utils.atomic import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.txt", b"x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "b.txt", b"x")
        assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
    # a sampling job killed while writing a part leaves .part-*.tmp; the next run removes it
    run = tmp_path / "r"
    assert main(["train", str(TINY), f"out_dir={run}", "train.steps=2"]) == 0
    parts = tmp_path / "s" / "parts"
    parts.mkdir(parents=True)
    (parts / ".part-00000.npz.abc.tmp").write_bytes(b"half")
    assert main(["sample", str(run), "--n", "2", "--steps", "3", "--out", str(tmp_path / "s")]) == 0
    assert not list(parts.glob(".*.tmp"))
