"""Unclear messages made clear: one line that names the file or option and the fix."""

import shutil
from pathlib import Path

import pytest

from kflow.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "digits_tiny.yaml")


def err_of(capsys, *argv) -> str:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_invalid_utf8_in_a_yaml_config(tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_bytes(b"train: {steps: 3}\n# caf\xe9\n")
    assert "is not UTF-8 text" in err_of(capsys, "train", bad, f"out_dir={tmp_path / 'r'}")


def test_an_infinite_learning_rate(tmp_path, capsys):
    assert "train.lr=inf is out of range" in err_of(capsys, "train", TINY, "train.lr=1e400", f"out_dir={tmp_path}")


def test_kflow_data_pointing_at_a_file(tmp_path, capsys, monkeypatch):
    f = tmp_path / "f"
    f.write_text("x")
    monkeypatch.setenv("KFLOW_DATA", str(f))
    err = err_of(capsys, "train", TINY, "data.name=fashion_mnist", f"out_dir={tmp_path / 'r'}")
    assert "KFLOW_DATA" in err and "is a file, not a folder" in err


def test_renamed_checkpoints_are_not_silently_ignored_on_resume(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", TINY, f"out_dir={out}", "train.steps=2", "train.ckpt_every=2"]) == 0
    ck = out / "checkpoints" / "ckpt-00000002.safetensors"
    shutil.move(ck, ck.with_name("best.safetensors"))
    err = err_of(capsys, "train", TINY, f"out_dir={out}", "train.steps=4", "--resume")
    assert "best.safetensors" in err and "rename the checkpoint back" in err


@pytest.mark.parametrize("content", [b"\xff\xfe{", b"{not json"])
def test_a_damaged_config_json_on_resume(tmp_path, capsys, content):
    out = tmp_path / "r"
    out.mkdir()
    (out / "config.json").write_bytes(content)
    assert "is not readable JSON" in err_of(capsys, "train", TINY, f"out_dir={out}", "--resume")


def test_an_unknown_key_inside_a_checkpoints_config(tmp_path, capsys):
    """A checkpoint from a newer kflow: the message says it is the checkpoint's settings, not the user's."""
    import json

    from safetensors.torch import load_file, save_file

    from kflow.utils.atomic import open_safetensors

    out = tmp_path / "r"
    assert main(["train", TINY, f"out_dir={out}", "train.steps=2", "train.ckpt_every=2"]) == 0
    ck = out / "checkpoints" / "ckpt-00000002.safetensors"
    with open_safetensors(ck) as f:
        meta = json.loads(f.metadata()["kflow"])
    meta["config"]["model"]["future_option"] = 1  # a setting a later kflow might add
    save_file(load_file(ck), str(ck), metadata={"kflow": json.dumps(meta)})
    (out / "config.json").unlink()  # no run config to compare with: the checkpoint alone
    err = err_of(capsys, "sample", ck, "--n", "2", "--out", tmp_path / "s")
    assert "ckpt-00000002.safetensors was written with settings this kflow does not know" in err


def test_edit_inputs_of_another_size_are_resized_with_a_word(tmp_path, capsys):
    import numpy as np

    out = tmp_path / "r"
    assert main(["train", TINY, f"out_dir={out}", "train.steps=2", "train.ckpt_every=2"]) == 0
    np.savez(tmp_path / "small.npz", x=np.zeros((2, 1, 6, 6), dtype=np.uint8))
    capsys.readouterr()
    assert main(["edit", str(out), str(tmp_path / "small.npz"), "--steps", "6", "--out", str(tmp_path / "e")]) == 0
    assert "6x6 images; padded with the background value -1 to the model's 8x8" in capsys.readouterr().out


def test_image_commands_given_a_molecule_run_say_what_it_is(tmp_path, capsys):
    """A molecule run folder (its config.json and a checkpoints/ folder, as kflow molecules train
    writes them) given to kflow sample, inspect, eval likelihood or train --resume."""
    import json

    from kflow.molecules.config import AssemblyConfig

    run = tmp_path / "mol"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(AssemblyConfig().to_dict()))
    for argv in (
        ["sample", run, "--out", tmp_path / "s"],
        ["eval", "likelihood", run],
        ["train", TINY, f"out_dir={run}", "--resume"],
    ):
        err = err_of(capsys, *argv)
        assert "is a molecule run" in err and "kflow molecules" in err, (argv, err)


def test_molecule_commands_given_an_image_run_or_a_garbage_config(tiny_run, tmp_path):
    from kflow.molecules.runs import load_assembly_run
    from kflow.utils.errors import CheckpointError

    with pytest.raises(CheckpointError, match="is an image run .kflow train.; use kflow sample"):
        load_assembly_run(tiny_run)
    (tmp_path / "config.json").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(CheckpointError, match=r"config.json is not readable JSON"):
        load_assembly_run(tmp_path)


def test_run_folder_parts_of_the_wrong_kind_are_refused_before_training(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert "is a file, not a folder" in err_of(capsys, "train", TINY, f"out_dir={f}", "train.steps=2")
    for part, make in [("samples", lambda p: p.write_text("x")), ("config.json", lambda p: p.mkdir())]:
        run = tmp_path / part.replace(".", "_")
        run.mkdir()
        make(run / part)
        err = err_of(capsys, "train", TINY, f"out_dir={run}", "train.steps=2")
        assert part in err and "move it away" in err
        assert not (run / "checkpoints").exists()  # refused before the first step


def test_bad_numbers_images_and_files_name_themselves(tmp_path, capsys, tiny_run):
    import numpy as np

    assert "train.weight_decay=nan is out of range" in err_of(
        capsys, "train", TINY, "train.weight_decay=.nan", f"out_dir={tmp_path / 'r'}"
    )
    err = err_of(capsys, "train", TINY, "train.betas=[0.9,1.5]", f"out_dir={tmp_path / 'r'}")
    assert "train.betas=[0.9, 1.5]" in err
    obj = tmp_path / "obj.npz"
    np.savez(obj, x=np.array([np.zeros((8, 8)), "text"], dtype=object))
    err = err_of(capsys, "train", TINY, "data.name=npz", f"data.root={obj}", f"out_dir={tmp_path / 'r2'}")
    assert "holds an object array" in err and "obj.npz" in err
    png = tmp_path / "image.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    assert "is not a checkpoint (.png)" in err_of(capsys, "sample", png, "--out", tmp_path / "s")


def test_resume_keeps_log_rows_only_up_to_the_checkpoint(tmp_path):
    """Killed after step 6 with the last checkpoint at 4: the resumed run rewrites steps 5..8, and
    log.csv holds each step once."""
    import csv

    from kflow.config import load_config
    from kflow.training import Trainer

    over = [f"out_dir={tmp_path}", "train.steps=8", "train.ckpt_every=4", "train.log_every=1", "train.device=cpu"]
    Trainer(load_config(TINY, over)).fit(until=6)
    Trainer(load_config(TINY, over), resume=True).fit()
    with open(tmp_path / "log.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, 9))


def test_inspect_data_names_the_default_band_count_it_cannot_use(tmp_path, capsys):
    # 8x8 digits make at most 2 bands (one db6 level); the default 3 is named with the count that fits
    err = err_of(capsys, "inspect", "data", "digits", "--image-size", 8, "--out", tmp_path)
    assert "--num-bands 3 (the default) is too many" in err and "pass --num-bands 2" in err
    err = err_of(capsys, "inspect", "data", "digits", "--image-size", 8, "--num-bands", 4, "--out", tmp_path)
    assert "--num-bands 4 is too many" in err and "(the default)" not in err
    capsys.readouterr()
    assert main(["inspect", "data", "digits", "--image-size", "8", "--num-bands", "2", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "band_energy.json").exists()


def test_molecule_data_that_is_an_image_run(tmp_path, capsys):
    # data= an image training run: say what it is, never suggest building a cluster set into it
    run = tmp_path / "images"
    assert main(["train", TINY, "train.steps=1", "train.sample_every=0", f"out_dir={run}"]) == 0
    rigid = ROOT / "configs" / "molecules" / "rigid_fm.yaml"
    err = err_of(capsys, "molecules", "train", rigid, f"out_dir={tmp_path / 'm'}", f"data={run}")
    assert f"data={run} is an image training run, not a cluster set" in err
    assert "--out " + str(run) not in err
