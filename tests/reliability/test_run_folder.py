"""A run folder belongs to one run: a mistyped `kflow train` cannot destroy it."""

from pathlib import Path

import pytest

from kflow.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "digits_tiny.yaml")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("KFLOW_PROGRESS", "0")


def snapshot(run: Path) -> dict:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "run"
    assert main(["train", TINY, f"out_dir={run}", "train.steps=4", "train.ckpt_every=2", "train.device=cpu"]) == 0
    return run


@pytest.mark.parametrize(
    "extra, match",
    [
        ([], "already holds a run"),  # the same command again, without --resume
        (["train.seed=3"], "already holds a run"),
        (["--resume", "train.seed=3"], "train.seed was 0"),
        (["--resume", "train.batch_size=16"], "train.batch_size was 32"),
        (["--resume", "transform.name=fourier"], "transform.name was 'wavelet'"),
        (["--overwrite", "elsewhere"], "does not name this run's out_dir"),
        (["--overwrite", "RUN", "--resume"], "contradict"),
    ],
)
def test_a_run_folder_is_not_lost_to_a_mistyped_command(run, capsys, extra, match):
    before = snapshot(run)
    argv = ["train", TINY, f"out_dir={run}", "train.steps=6", "train.ckpt_every=2", "train.device=cpu"]
    argv += [str(run) if a == "RUN" else a for a in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1
    assert snapshot(run) == before  # not a byte changed


def test_resume_may_extend_the_run_and_overwrite_by_name_replaces_it(run, capsys):
    argv = ["train", TINY, f"out_dir={run}", "train.device=cpu", "train.ckpt_every=2"]
    assert main([*argv, "train.steps=6", "--resume"]) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "ckpt-00000006.safetensors"
    assert main([*argv, "train.steps=2", "train.seed=5", "--overwrite", str(run)]) == 0
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["ckpt-00000002.safetensors"]
    assert '"seed": 5' in (run / "config.json").read_text()
    rows = (run / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and [r.split(",")[0] for r in rows[1:]] == ["2"]  # a fresh log


@pytest.mark.parametrize("change", ["model.unet.channels=8", "data.labels=false"])
def test_a_checkpoint_copied_in_from_another_run_is_refused(tmp_path, change, capsys):
    """Another width or another conditioning: `kflow sample RUN` and `kflow inspect` refuse it in one
    line instead of using it."""
    import shutil

    from kflow.cli.main import main

    a, b = tmp_path / "a", tmp_path / "b"
    common = ["train.steps=2", "train.ckpt_every=2"]
    assert main(["train", str(TINY), f"out_dir={a}", *common]) == 0
    assert main(["train", str(TINY), f"out_dir={b}", *common, "train.steps=4", change, "train.ckpt_every=4"]) == 0
    shutil.copy(b / "checkpoints" / "ckpt-00000004.safetensors", a / "checkpoints")  # newer than a's own
    capsys.readouterr()
    assert main(["sample", str(a), "--n", "2", "--steps", "6", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert "belongs to another run" in err and "\n" not in err
    assert main(["inspect", "strip", str(a), "--n", "2", "--steps", "6", "--out", str(tmp_path / "i")]) == 2
    assert "belongs to another run" in capsys.readouterr().err
