"""Molecular assembly from the command line: the set built from a folder of CIF files (written here
from the shipped crystals, plus broken ones), and train -> kill -> resume -> sample -> score."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ase")

ROOT = Path(__file__).resolve().parents[2]


def kflow_cmd(*args):
    return [sys.executable, "-m", "kflow.cli.main", *map(str, args)]


def kflow(*args):
    return subprocess.run(kflow_cmd(*args), capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def cif_folder(tmp_path_factory):
    from ase import Atoms
    from ase.io import write

    from kflow.molecules.crystals import read_crystals

    folder = tmp_path_factory.mktemp("cifs")
    crystals = read_crystals()[:40]
    for c in crystals:
        write(str(folder / f"{c.name}.cif"), Atoms(numbers=c.numbers, positions=c.positions, cell=c.cell, pbc=True))
    (folder / "broken.cif").write_text("data_broken\n_cell_length_a 5.0\nthis is not a CIF loop\n")
    (folder / "empty.cif").write_text("")
    (folder / "notes.txt").write_text("not a crystal file, ignored")
    return folder, crystals


def cell_parameters(cell):
    from ase.cell import Cell

    return Cell(cell).cellpar()


def test_cif_folder_reads_what_was_written_and_skips_broken_files(cif_folder):
    from kflow.molecules.crystals import read_cif_folder

    folder, crystals = cif_folder
    lines = []
    read = read_cif_folder(folder, log=lines.append)
    assert sorted(c.name for c in read) == sorted(c.name for c in crystals)
    by_name = {c.name: c for c in read}
    for c in crystals:
        r = by_name[c.name]
        np.testing.assert_array_equal(r.numbers, c.numbers)
        # a CIF stores cell lengths and angles (ASE re-orients the lattice) and fractional
        # coordinates wrapped into the cell: compare those, modulo whole cells
        np.testing.assert_allclose(cell_parameters(r.cell), cell_parameters(c.cell), atol=1e-4)
        frac = np.linalg.solve(r.cell.T, r.positions.T).T - np.linalg.solve(c.cell.T, c.positions.T).T
        np.testing.assert_allclose(frac, np.round(frac), atol=1e-4)
    assert sorted(line.split(":")[0] for line in lines) == ["skipped broken.cif", "skipped empty.cif"]
    assert all("\n" not in line for line in lines)


def test_data_molecules_from_cifs_builds_a_set_and_refuses_useless_folders(cif_folder, tmp_path):
    folder, _ = cif_folder
    r = kflow("data", "molecules", "--cifs", folder, "--out", tmp_path / "set", "--centres", "1", "--rotations", "1")
    assert r.returncode == 0, r.stderr
    assert "skipped broken.cif" in r.stdout and "written to" in r.stdout
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["source"].startswith("CIF files of")
    assert sum(v["clusters"] for v in manifest["counts"].values()) > 10
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.cif").write_text("garbage")
    for folder_arg, message in [(bad, "no usable crystal"), (tmp_path / "nothing", "is not a folder")]:
        r = kflow("data", "molecules", "--cifs", folder_arg, "--out", tmp_path / "set2")
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_train_kill_resume_sample_score(tmp_path):
    from ase.io import read

    data = tmp_path / "data"
    assert kflow("data", "molecules", "--out", data, "--centres", "1", "--rotations", "2").returncode == 0
    run = tmp_path / "run"
    args = [
        "molecules",
        "train",
        ROOT / "configs/molecules/kflow.yaml",
        f"out_dir={run}",
        f"data={data}",
        "train.steps=20",
        "train.batch_size=2",
        "max_atoms=12",
        "train.warmup=2",
        "train.ckpt_every=2",
        "eval_every=10",
        "val_clusters=2",
        "net.hidden=16",
        "net.layers=1",
        "net.mol_layers=1",
    ]
    p = subprocess.Popen(kflow_cmd(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not list((run / "checkpoints").glob("ckpt-*.safetensors")) and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (run / "model.safetensors").exists()  # killed before the end
    # a new run into the folder is refused; --resume continues it
    r = kflow(*args)
    assert r.returncode == 2 and "already holds a run" in r.stderr
    r = kflow(*args, "--resume")
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout and "trained 20 steps" in r.stdout
    curve = json.loads((run / "curve.json").read_text())
    assert [c["step"] for c in curve["curve"]] == [10, 20] and curve["chosen_step"] in (10, 20)

    r = kflow("molecules", "score", run, "--limit", "2", "--samples", "2", "--nfe", "6", "--matched")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["clusters"] == 2 and np.isfinite(s["pm_atom"]) and np.isfinite(s["pm_center"])
    assert 0 < s["pm_center_matched"] <= s["pm_center"]

    out = tmp_path / "gen"
    r = kflow("molecules", "sample", run, "--limit", "2", "--nfe", "6", "--out", out)
    assert r.returncode == 0, r.stderr
    for i in range(2):
        gen, crystal = read(out / f"{i:04d}_generated_0.xyz"), read(out / f"{i:04d}_crystal.cif")
        assert len(gen) == len(crystal) and len(gen) % 17 == 0
        assert sorted(set(gen.get_tags())) == list(range(17))
        np.testing.assert_array_equal(gen.numbers, crystal.numbers)
    assert (out / "clusters.png").stat().st_size > 1000
    assert json.loads((out / "samples.json").read_text())["complete"] is True
    # the same job again (say, after a kill) rewrites its own files; another job is not mixed in
    (out / ".0000_crystal.cif.ab12cd.tmp").write_text("left by a killed writer")
    r = kflow("molecules", "sample", run, "--limit", "2", "--nfe", "6", "--out", out)
    assert r.returncode == 0, r.stderr
    assert not list(out.glob(".*tmp*"))
    r = kflow("molecules", "sample", run, "--limit", "1", "--nfe", "6", "--out", out)
    assert r.returncode == 2 and "holds samples of another job (differs in limit)" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    r = kflow("molecules", "sample", run, "--limit", "2", "--nfe", "6", "--out", foreign)
    assert r.returncode == 2 and "is not empty and holds no samples.json" in r.stderr
    assert (foreign / "notes.txt").read_text() == "mine" and len(list(foreign.iterdir())) == 1
    # a run folder without finished weights is refused in one line
    r = kflow("molecules", "score", tmp_path)
    assert r.returncode == 2 and "no model.safetensors" in r.stderr


def test_cif_site_count_and_the_size_limit(cif_folder, tmp_path):
    """count_atom_sites reads the rows of the _atom_site loop ASE wrote; a file over the limit is
    skipped in one line before ASE spends time on it; progress every 50 files."""
    from kflow.molecules.crystals import count_atom_sites, read_cif_folder

    folder, crystals = cif_folder
    for c in crystals[:5]:
        assert count_atom_sites(folder / f"{c.name}.cif") == len(c.numbers)
    big = max(crystals, key=lambda c: len(c.numbers))
    lines = []
    read = read_cif_folder(folder, log=lines.append, max_sites=len(big.numbers) - 1)
    assert big.name not in {c.name for c in read}
    said = [line for line in lines if line.startswith(f"skipped {big.name}.cif")]
    assert len(said) == 1 and f"{len(big.numbers)} atom sites, more than" in said[0]
    many = tmp_path / "many"
    many.mkdir()
    for i in range(51):
        (many / f"{i:03d}.cif").write_bytes((folder / f"{crystals[0].name}.cif").read_bytes())
    lines = []
    read_cif_folder(many, log=lines.append)
    assert lines == ["read 50/51 CIF files (50 usable)"]


def test_one_crystal_says_which_splits_are_empty_and_an_empty_split_names_the_cause(cif_folder, tmp_path):
    folder, crystals = cif_folder
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.cif").write_bytes((folder / f"{crystals[0].name}.cif").read_bytes())
    r = kflow("data", "molecules", "--cifs", one, "--out", tmp_path / "set", "--centres", "1", "--rotations", "1")
    assert r.returncode == 0, r.stderr
    warned = [line for line in r.stdout.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "split(s) got no clusters" in warned[0]
    counts = json.loads((tmp_path / "set" / "manifest.json").read_text())["counts"]
    empty = [name for name, c in counts.items() if c["clusters"] == 0]
    assert empty and all(name in warned[0].split(" split(s)")[0] for name in empty)
    from kflow.cli.molecules import empty_split
    from kflow.molecules.config import AssemblyConfig

    msg = empty_split(AssemblyConfig(data=str(tmp_path / "set")), empty[0])
    assert f"no {empty[0]} clusters at all" in msg and "build a larger set" in msg
    full = [name for name, c in counts.items() if c["clusters"] > 0][0]
    msg = empty_split(AssemblyConfig(data=str(tmp_path / "set"), max_atoms=1), full)
    assert "none with molecules of <= 1 atoms; raise max_atoms" in msg
