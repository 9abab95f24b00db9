import os
import sys
from pathlib import Path

import pytest
import torch

# Tests run small ops, for which one thread is fastest and immune to a busy machine (two threads
# on two cores shared with another job made tiny convolutions 60x slower); subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def f64(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def pytest_collection_modifyitems(config, items):
    """Tests marked cuda run only where a GPU is (`pytest -m cuda` on a GPU machine)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False); run `pytest -m cuda` on one")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A 3-step class-conditional digits run (Haar wavelet, 3 bands, 8x8 images) to point commands at.
    Shared by the tests that only read it."""
    from kflow.cli.main import main

    out = tmp_path_factory.mktemp("tiny") / "run"
    tiny = Path(__file__).resolve().parents[1] / "configs" / "digits_tiny.yaml"
    assert main(["train", str(tiny), f"out_dir={out}", "train.steps=3", "train.ckpt_every=3"]) == 0
    return out


@pytest.fixture(scope="session")
def torchrun():
    """torchrun(n): the command line that starts n local processes (a standalone rendezvous)."""
    return lambda n: [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]
