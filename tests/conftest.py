import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def f64(*shape):
    return torch.randn(*shape, dtype=torch.float64)
