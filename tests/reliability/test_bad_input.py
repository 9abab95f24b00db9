"""The bad-input table (docs/reliability.md): every case is a one-line error naming the problem
and the fix, exit status 2 from the CLI, no traceback. Run in-process for speed; the subprocess
path (what a shell sees) is covered in tests/cli."""

from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save_file

from kflow.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "digits_tiny.yaml"


@pytest.fixture
def run(tiny_run):
    """The shared 3-step class-conditional digits run (wavelet, 3 bands) to point bad options at."""
    return tiny_run


def files(tmp: Path) -> dict:
    """Broken inputs, made on demand."""
    d = {}
    d["nan_npz"] = tmp / "nan.npz"
    np.savez(d["nan_npz"], x=np.full((4, 1, 8, 8), np.nan, np.float32))
    d["nokey_npz"] = tmp / "nokey.npz"
    np.savez(d["nokey_npz"], pictures=np.zeros((4, 8, 8), np.uint8))
    d["empty_npz"] = tmp / "empty.npz"
    np.savez(d["empty_npz"], x=np.zeros((0, 1, 8, 8), np.uint8))
    d["badlabel_npz"] = tmp / "badlabel.npz"
    np.savez(d["badlabel_npz"], x=np.zeros((4, 1, 8, 8), np.uint8), y=np.array([0, 1, 2]))
    (tmp / "empty_dir").mkdir()
    d["empty_dir"] = tmp / "empty_dir"
    (tmp / "bad_img").mkdir()
    (tmp / "bad_img" / "a.png").write_bytes(b"not a png")
    d["bad_img"] = tmp / "bad_img"
    (tmp / "mixed").mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp / "mixed" / "a.png")
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp / "mixed" / "b.png")
    d["mixed"] = tmp / "mixed"
    d["yaml_bad"] = tmp / "bad.yaml"
    d["yaml_bad"].write_text("train: {steps: 3\n")
    d["yaml_empty"] = tmp / "empty.yaml"
    d["yaml_empty"].write_text("# nothing here\n")
    d["truncated"] = tmp / "ckpt-00000001.safetensors"
    d["notkflow"] = tmp / "plain.safetensors"
    import torch

    save_file({"w": torch.zeros(2)}, str(d["notkflow"]))
    d["pca_other"] = tmp / "pca_run"
    return d


CASES = [
    # (id, argv template, expected words in the error)
    (
        "unknown key",
        ["train", "{TINY}", "out_dir={tmp}/a", "train.stepz=3"],
        "unknown config key train.stepz (did you mean train.steps?)",
    ),
    ("unknown section", ["train", "{TINY}", "out_dir={tmp}/a", "trian.steps=3"], "unknown config"),
    ("wrong type", ["train", "{TINY}", "out_dir={tmp}/a", "train.lr=fast"], "config key train.lr must be float"),
    (
        "out of range",
        ["train", "{TINY}", "out_dir={tmp}/a", "train.batch_size=0"],
        "train.batch_size=0 is out of range",
    ),
    (
        "bad choice",
        ["train", "{TINY}", "out_dir={tmp}/a", "transform.name=wavelets"],
        "transform.name='wavelets' is not one of",
    ),
    ("bad bump", ["train", "{TINY}", "out_dir={tmp}/a", "path.bump=sigmoid"], "sigmoid"),
    ("override syntax", ["train", "{TINY}", "out_dir={tmp}/a", "train.steps"], "key=value"),
    ("override value not YAML", ["train", "{TINY}", "out_dir={tmp}/a", "path.windows=[[0,1]"], "is not YAML"),
    ("override key not a key", ["train", "{TINY}", "out_dir={tmp}/a", "train..steps=3"], "is not a config key"),
    ("missing config", ["train", "{tmp}/nope.yaml"], "nope.yaml"),
    ("yaml syntax", ["train", "{yaml_bad}"], "bad.yaml"),
    ("wavelet levels too deep", ["train", "{TINY}", "out_dir={tmp}/a", "transform.levels=5"], "levels"),
    ("more bands than levels", ["train", "{TINY}", "out_dir={tmp}/a", "transform.num_bands=9"], "band"),
    ("allocation length", ["train", "{TINY}", "out_dir={tmp}/a", "path.allocation=[1,2]"], "allocation"),
    (
        "missing npz",
        ["train", "{TINY}", "out_dir={tmp}/a", "data.name=npz", "data.root={tmp}/none.npz"],
        "does not exist",
    ),
    (
        "npz without x",
        ["train", "{TINY}", "out_dir={tmp}/a", "data.name=npz", "data.root={nokey_npz}"],
        "save the images under 'x'",
    ),
    ("empty npz", ["train", "{TINY}", "out_dir={tmp}/a", "data.name=npz", "data.root={empty_npz}"], "N > 0"),
    ("NaN in data", ["train", "{TINY}", "out_dir={tmp}/a", "data.name=npz", "data.root={nan_npz}"], "NaN"),
    (
        "labels do not match",
        ["train", "{TINY}", "out_dir={tmp}/a", "data.name=npz", "data.root={badlabel_npz}"],
        "labels for",
    ),
    (
        "folder without root",
        ["train", "{TINY}", "out_dir={tmp}/a", "data.name=folder"],
        "data.name=folder needs data.root",
    ),
    ("empty folder", ["train", "{TINY}", "out_dir={tmp}/a", "data.name=folder", "data.root={empty_dir}"], "no images"),
    (
        "unreadable image",
        ["train", "{TINY}", "out_dir={tmp}/a", "data.name=folder", "data.root={bad_img}"],
        "cannot read image",
    ),
    ("mixed sizes", ["train", "{TINY}", "out_dir={tmp}/a", "data.name=folder", "data.root={mixed}"], "mixed sizes"),
    ("missing checkpoint", ["sample", "{tmp}/none"], "none"),
    ("truncated checkpoint", ["sample", "{truncated}", "--out", "{tmp}/s"], "truncated or corrupted"),
    ("not a kflow checkpoint", ["sample", "{notkflow}", "--out", "{tmp}/s"], "not a kflow checkpoint"),
    ("label out of range", ["sample", "{run}", "--label", "12", "--out", "{tmp}/s"], "classes are 0..9"),
    ("label not a number", ["sample", "{run}", "--label", "shoe", "--out", "{tmp}/s"], "give a class index or 'all'"),
    ("guidance without label", ["sample", "{run}", "--guidance", "2", "--out", "{tmp}/s"], "need --label"),
    ("band not in transform", ["sample", "{run}", "--fix-bands", "5", "--out", "{tmp}/s"], "bands 0..2"),
    (
        "band list syntax",
        ["sample", "{run}", "--vary-bands", "low", "--out", "{tmp}/s"],
        "comma-separated band indices",
    ),
    (
        "keep-class-until range",
        ["sample", "{run}", "--label", "1", "--keep-class-until", "2", "--out", "{tmp}/s"],
        "argument --keep-class-until: '2' is not a number in [0, 1]",
    ),
    (
        "step allocation syntax",
        ["sample", "{run}", "--step-allocation", "fast", "--out", "{tmp}/s"],
        "--step-allocation",
    ),
    ("classifier missing", ["eval", "score", "{nan_npz}", "--classifier", "{tmp}/c.safetensors"], "train-classifier"),
    ("inspect path without K-Flow", ["inspect", "path"], "needs a checkpoint"),
    # numbers and devices are checked where they enter (argparse types, pick_device)
    ("negative sample count", ["sample", "{run}", "--n", "-5"], "argument --n: '-5' is not a positive integer"),
    ("zero samples", ["sample", "{run}", "--n", "0"], "argument --n: '0' is not a positive integer"),
    ("zero batch", ["sample", "{run}", "--batch-size", "0"], "argument --batch-size"),
    ("negative grid size", ["sample", "{run}", "--grid-size", "-1"], "argument --grid-size"),
    ("negative guidance", ["sample", "{run}", "--guidance", "-2"], "argument --guidance: '-2' is not a number >= 0"),
    ("NaN guidance", ["sample", "{run}", "--guidance", "nan"], "argument --guidance"),
    ("negative seed", ["sample", "{run}", "--seed", "-1"], "argument --seed"),
    ("zero steps", ["sample", "{run}", "--steps", "0"], "argument --steps"),
    ("NaN step weight", ["sample", "{run}", "--step-allocation", "nan,1,1", "--out", "{tmp}/s"], "positive weights"),
    (
        "negative step weight",
        ["sample", "{run}", "--step-allocation", "1,-1,1", "--out", "{tmp}/s"],
        "positive weights",
    ),
    ("device not a device", ["sample", "{run}", "--device", "gpu0", "--out", "{tmp}/s"], "'gpu0' is not a device"),
    ("device of another kind", ["sample", "{run}", "--device", "meta", "--out", "{tmp}/s"], "cpu or cuda"),
    ("restore factor 0", ["restore", "{run}", "digits:test", "--factor", "0"], "argument --factor"),
    ("restore negative sigma", ["restore", "{run}", "digits:test", "--sigma", "-1"], "argument --sigma"),
    ("restore negative noise", ["restore", "{run}", "digits:test", "--noise", "-0.1"], "argument --noise"),
    ("demo zero minutes", ["demo", "--minutes", "0"], "argument --minutes"),
    ("unknown option", ["sample", "{run}", "--temperature", "2"], "unrecognized arguments: --temperature"),
    ("unknown command", ["smaple", "{run}"], "invalid choice: 'smaple'"),
    ("empty config file", ["train", "{yaml_empty}", "out_dir={tmp}/a"], "is empty; see configs/"),
    ("zero UNet channels", ["train", "{TINY}", "out_dir={tmp}/a", "model.unet.channels=0"], "model.unet.channels=0"),
    ("negative data limit", ["train", "{TINY}", "out_dir={tmp}/a", "data.limit=-5"], "data.limit=-5 is out of range"),
    (
        "observations of the wrong size",
        ["restore", "{run}", "digits:test", "--degraded", "--n", "2", "--out", "{tmp}/r"],
        "these observations must be 4x4",
    ),
]


def test_cuda_on_a_machine_without_one(run, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["sample", str(run), "--device", "cuda", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no CUDA GPU; use cpu or auto" in err and "\n" not in err


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(case, run, tmp_path, capsys):
    _, argv, words = case
    f = files(tmp_path)
    data = f["truncated"]
    data.write_bytes((Path(run) / "checkpoints").glob("ckpt-*.safetensors").__next__().read_bytes()[:5000])
    subs = {"TINY": TINY, "tmp": tmp_path, "run": run, **f}
    argv = [a.format(**subs) for a in argv]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("kflow: error: ") and "\n" not in err, err
    assert "Traceback" not in err
    assert words in err, err


@pytest.mark.parametrize(
    "change, words",
    [(["model.unet.channels=24"], "model.unet.channels was"), (["transform.name=fourier"], "transform")],
)
def test_resume_with_another_architecture_or_transform(run, tmp_path, capsys, monkeypatch, change, words):
    """Resuming a run under a changed config: one line naming the mismatch, checkpoints untouched."""
    monkeypatch.setenv("KFLOW_PROGRESS", "0")
    other = tmp_path / "other"
    assert main(["train", str(Path(run) / "config.json"), f"out_dir={other}", "train.steps=3"]) == 0
    before = {p.name: p.read_bytes() for p in (other / "checkpoints").iterdir()}
    capsys.readouterr()
    code = main(["train", str(Path(run) / "config.json"), f"out_dir={other}", "train.steps=6", *change, "--resume"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and words in err, err
    assert {p.name: p.read_bytes() for p in (other / "checkpoints").iterdir()} == before  # nothing lost


def _idx(dims, payload: bytes) -> bytes:
    return bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + payload


@pytest.mark.parametrize(
    "content, words",
    [
        (b"hello, not gzip", "cannot be read"),
        (__import__("gzip").compress(b"just some text, no idx header"), "is not an idx file"),
        (__import__("gzip").compress(_idx([2, 28, 28], b"\0" * 100)), "truncated or padded"),
        (__import__("gzip").compress(_idx([2, 28, 28], b"\0" * 2 * 28 * 28)), "official Fashion-MNIST checksum"),
        (__import__("gzip").compress(b"x" * 5000)[:40], "is not an idx file"),  # a gzip cut short: what it holds
    ],
    ids=["not gzip", "not idx", "truncated idx", "wrong content", "truncated gzip"],
)
def test_garbage_under_kflow_data_is_one_line(content, words, tmp_path, monkeypatch, capsys):
    """KFLOW_DATA names a folder whose Fashion-MNIST files are garbage: one line naming the file."""
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (tmp_path / f"{name}.gz").write_bytes(content)
    monkeypatch.setenv("KFLOW_DATA", str(tmp_path))
    argv = ["train", str(TINY), f"out_dir={tmp_path / 'r'}", "data.name=fashion_mnist", "data.image_size=8"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kflow: error: ") and "\n" not in err and "Traceback" not in err
    assert words in err and "train-images-idx3-ubyte.gz" in err, err
