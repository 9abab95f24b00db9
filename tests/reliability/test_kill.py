"""SIGKILL a real `kflow train` at random moments (some while a checkpoint is being written),
resume each time, and check that nothing is lost: every checkpoint on disk loads, at most the
steps since the last checkpoint are redone, and the final weights equal an uninterrupted run's
bit for bit (CPU)."""

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from kflow.utils.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "digits_tiny.yaml"
STEPS, EVERY, KILLS = 60, 2, 20


def cmd(out: Path, resume: bool):
    return [
        sys.executable,
        "-m",
        "kflow.cli.main",
        "train",
        str(TINY),
        f"out_dir={out}",
        f"train.steps={STEPS}",
        f"train.ckpt_every={EVERY}",
        "train.log_every=1",
        "train.sample_every=0",
        *(["--resume"] if resume else []),
    ]


def logged_step(out: Path) -> int:
    try:
        with open(out / "log.csv") as f:
            rows = list(csv.DictReader(f))
        return int(rows[-1]["step"]) if rows else 0
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def weights(out: Path) -> dict:
    return {
        k: v
        for k, v in load_checkpoint(latest_checkpoint(out / "checkpoints")).tensors.items()
        if k.startswith(("model.", "ema."))
    }


def test_twenty_kills_lose_nothing(tmp_path):
    env = dict(os.environ, KFLOW_PROGRESS="0")
    ref = tmp_path / "ref"
    subprocess.run(cmd(ref, False), env=env, check=True, capture_output=True, timeout=600)
    out, rng, kills, lives, during_save = tmp_path / "killed", random.Random(0), 0, 0, 0
    while True:
        lives += 1
        assert lives < 80, "no progress: the run does not get past its kills"
        start = logged_step(out)
        p = subprocess.Popen(cmd(out, True), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        killed = False
        if kills < KILLS:
            wait_for_save = kills % 3 == 2  # every third kill aims at a checkpoint being written
            deadline = time.time() + 60
            while p.poll() is None and time.time() < deadline:
                if wait_for_save and list((out / "checkpoints").glob(".ckpt-*.tmp")):
                    during_save += 1
                    break
                if not wait_for_save and logged_step(out) > start:  # this life has trained a step
                    time.sleep(rng.uniform(0, 0.2))
                    break
                time.sleep(0.0005 if wait_for_save else 0.01)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                killed = True
        rc = p.wait(timeout=600)
        if killed:
            kills += 1
            for c in list_checkpoints(out / "checkpoints"):  # every checkpoint on disk loads
                load_checkpoint(c)
            last = latest_checkpoint(out / "checkpoints")
            saved = load_checkpoint(last).meta["step"] if last else 0
            assert logged_step(out) - saved <= EVERY  # lost at most the steps since the last checkpoint
            continue
        assert rc == 0, p.stderr.read().decode()
        break
    assert kills >= KILLS
    # no writer's temp file survives the kills (kflow's .ckpt-*.tmp nor safetensors' own .tmpXXXXXX)
    left = sorted(p.name for p in (out / "checkpoints").iterdir() if not p.name.startswith("ckpt-"))
    assert left == [], left
    got, want = weights(out), weights(ref)
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k
    print(f"{kills} kills ({during_save} while a checkpoint was being written), {lives} processes")


def test_killed_sampling_continues_where_it_stopped(tmp_path):
    import numpy as np

    env = dict(os.environ, KFLOW_PROGRESS="0")
    run = tmp_path / "run"
    subprocess.run(
        [sys.executable, "-m", "kflow.cli.main", "train", str(TINY), f"out_dir={run}", "train.steps=2"],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )

    def sample_cmd(out):
        return [
            sys.executable,
            "-m",
            "kflow.cli.main",
            "sample",
            str(run),
            "--n",
            "3000",
            "--batch-size",
            "100",
            "--steps",
            "12",
            "--out",
            str(out),
        ]

    subprocess.run(sample_cmd(tmp_path / "ref"), env=env, check=True, capture_output=True, timeout=600)
    out = tmp_path / "killed"
    p = subprocess.Popen(sample_cmd(out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while p.poll() is None and len(list((out / "parts").glob("part-*.npz"))) < 3:
        time.sleep(0.005)
    p.kill()
    p.wait()
    parts = sorted((out / "parts").glob("part-*.npz"))
    assert 3 <= len(parts) < 30 and not (out / "samples.npz").exists()
    for part in parts:  # never a half-written part
        with np.load(part) as f:
            assert f["x"].shape == (100, 1, 8, 8)
    r = subprocess.run(sample_cmd(out), env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and f"resumed: {len(parts)} finished part(s)" in r.stdout, r.stderr
    with np.load(out / "samples.npz") as a, np.load(tmp_path / "ref" / "samples.npz") as b:
        assert np.array_equal(a["x"], b["x"])
    r = subprocess.run(
        sample_cmd(out)[:-2] + ["--seed", "5", "--out", str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 2 and "another sampling job (differs in seed)" in r.stderr
