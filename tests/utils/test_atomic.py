"""utils.atomic: a write is whole or absent; temp files never stay; pickles are refused on read."""

import json
import os

import numpy as np
import pytest

from kflow.utils.atomic import atomic_write, atomic_write_json, atomic_write_npz, open_safetensors


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def half_then_fail(tmp):
        tmp.write_text("new, but torn")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_json_and_npz_round_trip_with_the_users_file_mode(tmp_path):
    atomic_write_json(tmp_path / "a" / "c.json", {"b": 1, "a": [1.5]})
    assert json.loads((tmp_path / "a" / "c.json").read_text()) == {"a": [1.5], "b": 1}
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a" / "c.json").stat().st_mode & 0o777 == 0o666 & ~mask
    x = np.arange(6, dtype=np.uint8).reshape(2, 3)
    atomic_write_npz(tmp_path / "x.npz", {"x": x})
    with np.load(tmp_path / "x.npz", allow_pickle=False) as f:
        assert np.array_equal(f["x"], x)


def test_open_safetensors_refuses_pickles_and_garbage(tmp_path):
    import torch

    torch.save({"w": torch.zeros(2)}, tmp_path / "p.pt")
    with pytest.raises(ValueError, match="never pickles"), open_safetensors(tmp_path / "p.pt"):
        pass
    (tmp_path / "g.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(ValueError, match="truncated or corrupted"), open_safetensors(tmp_path / "g.safetensors"):
        pass
    with pytest.raises(FileNotFoundError, match="does not exist"), open_safetensors(tmp_path / "none"):
        pass


def test_files_that_belong_together_are_replaced_together(tmp_path):
    from kflow.utils.atomic import write_together

    a, b = tmp_path / "edit.png", tmp_path / "edit.npz"
    write_together({a: lambda t: t.write_text("old png"), b: lambda t: t.write_text("old npz")})

    def full_disk(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):  # the second file fails: the old pair stays, whole
        write_together({a: lambda t: t.write_text("new png"), b: full_disk})
    assert (a.read_text(), b.read_text()) == ("old png", "old npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edit.npz", "edit.png"]
    write_together({a: lambda t: t.write_text("new png"), b: lambda t: t.write_text("new npz")})
    assert (a.read_text(), b.read_text()) == ("new png", "new npz")


def test_remove_temp_files_cleans_what_a_killed_write_together_left(tmp_path):
    """A real SIGKILL while write_together is between its files: the first is staged as .NAME.new,
    the second is a half-written temp; remove_temp_files takes both and nothing else."""
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import sys, time; from pathlib import Path; from kflow.utils.atomic import write_together\n"
        "d = Path(sys.argv[1])\n"
        "def slow(tmp):\n"
        "    tmp.write_bytes(b'half'); print('staged', flush=True); time.sleep(60)\n"
        "write_together({d / 'a.png': lambda tmp: tmp.write_bytes(b'png'), d / 'b.npz': slow})\n"
    )
    (tmp_path / "keep.txt").write_text("a user's file")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "staged"
    p.send_signal(signal.SIGKILL)
    p.wait()
    time.sleep(0.05)
    left = sorted(f.name for f in tmp_path.iterdir() if f.name != "keep.txt")
    assert ".a.png.new" in left and any(n.startswith("..b.npz.new.") and n.endswith(".tmp") for n in left), left
    from kflow.utils.atomic import remove_temp_files, temp_files

    assert sorted(f.name for f in temp_files(tmp_path)) == left
    (tmp_path / ".tmpAb12Cd").write_bytes(b"safetensors' own temp file")
    removed = remove_temp_files(tmp_path)
    assert len(removed) == len(left) + 1
    assert [f.name for f in tmp_path.iterdir()] == ["keep.txt"]


def test_a_full_disk_is_one_message_naming_the_file_and_the_room(tmp_path):
    """Any writer through atomic_write (checkpoints, samples, cluster sets, molecule weights): the
    file, the free space and what to do; nothing half-written is left."""
    import errno

    from kflow.utils.atomic import atomic_write

    def full(tmp):
        tmp.write_bytes(b"part")
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "samples.npz"
    with pytest.raises(OSError) as e:
        atomic_write(target, full)
    msg = str(e.value)
    assert e.value.errno == errno.ENOSPC and str(target) in msg and "MiB free there" in msg and "rerun" in msg
    assert list(tmp_path.iterdir()) == []

    class SafetensorError(Exception):  # how safetensors reports it: its own type, not OSError
        pass

    def full_st(tmp):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    with pytest.raises(OSError, match="No space left on device while writing"):
        atomic_write(target, full_st)
