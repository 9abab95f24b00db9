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
