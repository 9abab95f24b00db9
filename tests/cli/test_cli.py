import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "digits_tiny.yaml"


def kflow(*args, cwd=None):
    env = dict(os.environ, KFLOW_PROGRESS="0")
    return subprocess.run(
        [sys.executable, "-m", "kflow.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_train_then_sample_end_to_end(tmp_path):
    run = tmp_path / "run"
    r = kflow("train", TINY, f"out_dir={run}", "train.steps=20", "train.ckpt_every=10")
    assert r.returncode == 0, r.stderr
    assert "trained to step 20" in r.stdout
    r = kflow("sample", run, "--n", 10, "--steps", 6, "--solver", "heun", "--out", tmp_path / "s")
    assert r.returncode == 0, r.stderr
    assert "NFE 12" in r.stdout
    with np.load(tmp_path / "s" / "samples.npz") as f:
        assert f["x"].shape == (10, 1, 8, 8) and f["x"].dtype == np.uint8
        cli_x = f["x"]
    # the same images as the library's sample() from the same seed and settings
    from kflow.data.image_data import to_uint8
    from kflow.runs import load_run
    from kflow.sampling import sample

    loaded = load_run(run)
    lib = sample(loaded.model, loaded.path, 10, solver="heun", steps=6, seed=0)
    assert lib.nfe == 12
    np.testing.assert_array_equal(cli_x, to_uint8(loaded.to_image(lib.x)))
    assert (tmp_path / "s" / "samples.png").stat().st_size > 0
    # resume continues from the last checkpoint
    r = kflow("train", run / "config.json", "train.steps=30", "--resume")
    assert r.returncode == 0 and "resumed from" in r.stdout and "step 30" in r.stdout, r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["train.stepz=3"], "unknown config key train.stepz (did you mean train.steps?)"),
        (["train.lr=fast"], "config key train.lr must be float"),
        (["transform.name=wavelets"], "transform.name='wavelets' is not one of"),
        (["data.name=npz", "data.root=/nonexistent.npz"], "does not exist"),
        (["data.name=folder"], "data.name=folder needs data.root"),
        (["train.batch_size=0"], "train.batch_size=0 is out of range"),
    ],
)
def test_bad_config_gives_one_line_error(tmp_path, args, message):
    r = kflow("train", TINY, f"out_dir={tmp_path}", *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_missing_fashion_mnist_is_one_line(tmp_path, monkeypatch):
    # point KFLOW_DATA at an empty folder and hide the Debian path: download fails offline
    code = (
        "import kflow.data.datasets as d, pathlib, sys; d.FASHION_MNIST_DEBIAN = pathlib.Path('/nonexistent'); "
        "d.FASHION_MNIST_URL = 'http://127.0.0.1:9/'; from kflow.cli.main import main; "
        f"sys.exit(main(['train', '{TINY}', 'data.name=fashion_mnist', 'out_dir={tmp_path}/r']))"
    )
    env = dict(os.environ, KFLOW_DATA=str(tmp_path / "empty"), KFLOW_PROGRESS="0")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "dataset-fashion-mnist" in r.stderr


def test_sample_from_missing_checkpoint(tmp_path):
    r = kflow("sample", tmp_path / "nope.safetensors")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_pickle_checkpoint_is_refused(tmp_path):
    import pickle

    evil = tmp_path / "ckpt-00000001.safetensors"
    evil.write_bytes(pickle.dumps({"x": 1}, protocol=2))
    r = kflow("sample", evil)
    assert r.returncode == 2 and "pickle" in r.stderr


def test_eval_train_classifier_and_score_npz(tmp_path):
    clf = tmp_path / "clf.safetensors"
    r = kflow("eval", "train-classifier", "--dataset", "digits", "--image-size", 8, "--epochs", 1, "--out", clf)
    assert r.returncode == 0 and "test accuracy" in r.stdout, r.stderr
    # real test digits scored against the test split itself: FD ~ 0
    from kflow.data import load_dataset

    x = load_dataset("digits", "test").x
    np.savez(tmp_path / "real.npz", x=((x + 1) * 127.5).round().numpy().astype(np.uint8))
    env_cache = {"KFLOW_CACHE": str(tmp_path / "cache")}
    env = dict(os.environ, KFLOW_PROGRESS="0", **env_cache)
    r = subprocess.run(
        [sys.executable, "-m", "kflow.cli.main", "eval", "score", str(tmp_path / "real.npz"), "--classifier", str(clf)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    import json

    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert row["fd"] < 1e-2 and row["precision"] > 0.9 and row["n_fake"] == len(x)
    assert any((tmp_path / "cache" / "refstats").iterdir())  # reference features cached
    r = kflow("eval", "score", tmp_path / "real.npz", "--classifier", tmp_path / "missing.safetensors")
    assert r.returncode == 2 and "train-classifier" in r.stderr


def test_inspect_data_path_and_strip(tmp_path):
    runs = {}
    for name, transform in (("fm", "transform.name=identity"), ("kflow", "transform.name=wavelet")):
        runs[name] = tmp_path / name
        r = kflow("train", TINY, f"out_dir={runs[name]}", transform, "train.steps=4", "train.ckpt_every=4")
        assert r.returncode == 0, r.stderr
    r = kflow("inspect", "path", runs["fm"], runs["kflow"], "--n", 16, "--steps", 9, "--out", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    assert "settles within 10%" in r.stdout
    rep = json.loads((tmp_path / "p" / "path.json").read_text())
    assert set(rep["runs"]) == {"fm", "kflow"} and rep["n"] == 16
    for run in rep["runs"].values():
        assert len(run["k"]) == 10 and len(run["state"]) == 10 and len(run["estimate"]) == 9
        assert run["state"][-1] == pytest.approx([1.0] * len(rep["boundaries"][1:]))  # relative to the final sample
    assert (tmp_path / "p" / "spectral_evolution.png").stat().st_size > 0
    assert (tmp_path / "p" / "projection_ratio.png").stat().st_size > 0
    r = kflow("inspect", "strip", runs["kflow"], "--n", 3, "--steps", 6, "--out", tmp_path / "s")
    assert r.returncode == 0, r.stderr
    cols = json.loads((tmp_path / "s" / "strip.json").read_text())["columns"]
    assert cols[0].startswith("x_k, k=0.00") and cols[-1] == "band 2 alone"
    r = kflow("inspect", "path", runs["fm"], "--out", tmp_path / "q")
    assert r.returncode == 2 and "at least one K-Flow checkpoint" in r.stderr
    r = kflow(
        "inspect",
        "data",
        "--dataset",
        "digits",
        "--image-size",
        8,
        "--limit",
        300,
        "--num-bands",
        2,
        "--out",
        tmp_path / "d",
    )
    assert r.returncode == 0, r.stderr
    assert "|f|^" in r.stdout and (tmp_path / "d" / "band_energy.png").stat().st_size > 0


def test_eval_inception_missing_weights_is_one_line(tmp_path):
    np.savez(tmp_path / "s.npz", x=np.zeros((4, 1, 8, 8), np.uint8))
    r = kflow("eval", "score", tmp_path / "s.npz", "--inception", tmp_path / "none.safetensors", "--dataset", "digits")
    assert r.returncode == 2 and "--inception" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = kflow("eval", "score", tmp_path / "s.npz")
    assert r.returncode == 2 and "--classifier" in r.stderr


def test_sample_with_guidance_dropping_and_noise_splitting(tmp_path):
    run = tmp_path / "run"
    assert kflow("train", TINY, f"out_dir={run}", "train.steps=3", "train.label_dropout=0.2").returncode == 0
    r = kflow(
        "sample",
        run,
        "--n",
        6,
        "--steps",
        6,
        "--label",
        "all",
        "--guidance",
        2,
        "--keep-class-until",
        0.3,
        "--fix-bands",
        "0",
        "--out",
        tmp_path / "s",
    )
    assert r.returncode == 0, r.stderr
    assert "NFE 6" in r.stdout
    r = kflow("sample", run, "--n", 2, "--guidance", 2, "--out", tmp_path / "t")
    assert r.returncode == 2 and "--label" in r.stderr
    r = kflow("sample", run, "--n", 2, "--fix-bands", "7", "--out", tmp_path / "t")
    assert r.returncode == 2 and "do not fit this transform" in r.stderr
    r = kflow("sample", run, "--n", 2, "--label", "10", "--out", tmp_path / "t")
    assert r.returncode == 2 and "classes are 0..9" in r.stderr


def test_edit_and_restore_from_images(tmp_path):
    run = tmp_path / "run"
    assert kflow("train", TINY, f"out_dir={run}", "train.steps=2", "data.labels=false").returncode == 0
    r = kflow("edit", run, "digits:test", "--n", 3, "--steps", 6, "--keep-bands", "0", "--out", tmp_path / "e")
    assert r.returncode == 0, r.stderr
    assert "reconstruction" in r.stdout and "PSNR" in r.stdout
    with np.load(tmp_path / "e" / "edit.npz") as f:
        assert f["x"].shape == (3, 1, 8, 8) and f["x"].dtype == np.uint8
    r = kflow("restore", run, "digits:test", "--task", "sr_box", "--n", 3, "--steps", 6, "--out", tmp_path / "r")
    assert r.returncode == 0, r.stderr
    assert "PSNR restored" in r.stdout and (tmp_path / "r" / "restore.png").stat().st_size > 0
    np.savez(tmp_path / "low.npz", x=np.zeros((2, 1, 4, 4), np.uint8))
    r = kflow("restore", run, tmp_path / "low.npz", "--degraded", "--steps", 4, "--out", tmp_path / "r2")
    assert r.returncode == 0, r.stderr
    r = kflow("edit", run, tmp_path / "nothing.xyz", "--out", tmp_path / "e2")
    assert r.returncode == 2 and "NAME:SPLIT" in r.stderr


def test_sample_takes_the_runs_step_allocation(tmp_path):
    """`kflow sample` without --step-allocation integrates with the run's sample.step_allocation;
    the flag overrides it."""
    from kflow.cli.main import main
    from kflow.data.image_data import to_uint8
    from kflow.runs import load_run
    from kflow.sampling import sample

    run = tmp_path / "run"
    over = ["train.steps=3", "train.ckpt_every=3", "sample.step_allocation=[3,1,1]"]
    assert main(["train", str(TINY), f"out_dir={run}", *over]) == 0
    loaded = load_run(run)
    for flag, alloc in [([], [3.0, 1.0, 1.0]), (["--step-allocation", "length"], "length")]:
        out = tmp_path / f"s{len(flag)}"
        assert main(["sample", str(run), "--n", "4", "--steps", "10", "--out", str(out), *flag]) == 0
        lib = sample(loaded.model, loaded.path, 4, steps=10, seed=0, step_allocation=alloc)
        with np.load(out / "samples.npz") as f:
            np.testing.assert_array_equal(f["x"], to_uint8(loaded.to_image(lib.x)))
        manifest = json.loads((out / "parts" / "manifest.json").read_text())
        assert manifest["step_allocation"] == ("3,1,1" if not flag else "length")
