"""`kflow eval likelihood`: bits per dimension of a trained run, exact and Hutchinson agreeing, the
per-band table summing to the total, the JSON and figure, and one-line refusals."""

import json

import pytest

from kflow.cli.main import main


def run_cli(*args):
    return main(["eval", "likelihood", *map(str, args), "--no-progress"])


def test_bits_per_dim_of_a_run_exact_and_estimated(tiny_run, tmp_path, capsys):
    exact, est = tmp_path / "exact.json", tmp_path / "est.json"
    common = ["--n", "16", "--solver", "rk4", "--steps", "6", "--batch-size", "8"]
    assert run_cli(tiny_run, *common, "--divergence", "exact", "--json", exact, "--figure", tmp_path / "b.png") == 0
    assert "bits/dim over 16 images" in capsys.readouterr().out
    assert run_cli(tiny_run, *common, "--divergence", "hutchinson", "--probes", "64", "--json", est) == 0
    a, b = json.loads(exact.read_text()), json.loads(est.read_text())
    assert a["unit"] == "bits/dim" and 0 < a["total"] < 40 and a["n"] == 16
    assert sum(r["share of total (bits/dim)"] for r in a["bands"]) == pytest.approx(a["total"], rel=1e-9)
    assert sum(r["dims"] for r in a["bands"]) == 64
    assert abs(a["total"] - b["total"]) < 0.05 * abs(a["total"])  # the same images, dequantization and grid
    assert (tmp_path / "b.png").stat().st_size > 0


def test_refusals_are_one_line(tiny_run, tmp_path, monkeypatch, capsys):
    import kflow.cli.likelihood as cli

    monkeypatch.setattr(cli, "EXACT_MAX_DIM", 10)
    assert run_cli(tiny_run, "--divergence", "exact", "--n", "2") == 2
    err = capsys.readouterr().err
    assert "use --divergence hutchinson" in err and err.count("\n") == 1
    assert run_cli(tiny_run, "--data", "fashion_mnist:nosuch", "--n", "2") == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert run_cli(tmp_path / "nothing", "--n", "2") == 2
    assert capsys.readouterr().err.count("\n") == 1
