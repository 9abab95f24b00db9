"""Two commands, one folder: the second is refused in one line before it writes anything, and the
first leaves exactly one whole run. Real concurrent processes."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kflow.utils.lock import FolderBusy, FolderLock

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "digits_tiny.yaml"


def kflow(*args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "kflow.cli.main", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "KFLOW_PROGRESS": "0"},
        **kw,
    )


def test_two_trainings_into_one_folder_leave_one_whole_run(tmp_path):
    out = tmp_path / "run"
    first = kflow("train", TINY, f"out_dir={out}", "train.steps=400", "train.ckpt_every=100", "train.seed=1")
    deadline = time.time() + 120
    while not (out / "config.json").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended before the second could start"
    second = kflow("train", TINY, f"out_dir={out}", "train.steps=400", "train.seed=2", "--resume")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2
    assert err.strip().count("\n") == 0 and "in use by another kflow command" in err
    assert first.wait(timeout=600) == 0, first.stderr.read()[-2000:]
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 1
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("ckpt-*.safetensors"))
    assert ckpts[-1] == "ckpt-00000400.safetensors"
    rows = (out / "log.csv").read_text().splitlines()
    steps = [int(r.split(",")[0]) for r in rows[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 400  # one run's log, no second writer's rows


def test_the_lock_is_released_by_a_kill(tmp_path):
    code = (
        "import time\nfrom kflow.utils.lock import FolderLock\n"
        f"held = FolderLock({str(tmp_path)!r}).acquire()\ntime.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 30
    while time.time() < deadline:  # until the holder has it
        try:
            FolderLock(tmp_path).acquire().release()
            time.sleep(0.05)
        except FolderBusy:
            break
    with pytest.raises(FolderBusy, match="in use by another kflow command"):
        FolderLock(tmp_path).acquire()
    holder.kill()
    holder.wait()
    with FolderLock(tmp_path):  # free again: the kernel dropped the dead holder's lock
        pass


def test_an_output_path_that_is_a_file_or_unwritable_is_one_line(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(Exception, match="is a file, not a folder"):
        FolderLock(f, "--out folder").acquire()
    with pytest.raises(Exception, match="cannot write to"):
        FolderLock(f / "below", "--out folder").acquire()


def test_temp_files_of_a_killed_writer_go_when_the_run_is_next_used(tmp_path):
    """A checkpoint write killed mid-way leaves a temp file; the next command that uses the run
    removes it, unless a training holds the run (it may be writing that very file)."""
    from kflow.cli.main import main
    from kflow.runs import load_run

    out = tmp_path / "run"
    assert main(["train", str(TINY), f"out_dir={out}", "train.steps=2", "train.ckpt_every=2"]) == 0
    dead = out / "checkpoints" / ".ckpt-00000004.safetensors.x1y2.tmp"
    dead.write_bytes(b"\0" * 1000)
    with FolderLock(out):  # a training holds the run: left alone
        load_run(out)
        assert dead.exists()
    assert main(["sample", str(out), "--n", "2", "--steps", "6", "--out", str(tmp_path / "s")]) == 0
    assert not dead.exists()
