import os

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
