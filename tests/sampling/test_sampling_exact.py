"""End-to-end sampler check with the exact conditional velocity P(a'(k)) (x_1 - x_0)."""

import pytest
import torch

from kflow import FourierTransform, KFlowPath, WaveletTransform
from kflow.sampling import sample


class Conditional(torch.nn.Module):
    """The K-Flow target velocity for known noise x_0 and data x_1 (a batch in fixed order)."""

    def __init__(self, path, x_0, x_1):
        super().__init__()
        self.path, self.x_0, self.x_1 = path, x_0, x_1
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, k, y=None):
        return self.path.sample(self.x_0, self.x_1, k.to(torch.float64)).dx_k


@pytest.mark.parametrize(
    "transform", [FourierTransform((1, 8, 8), num_bands=3), WaveletTransform((1, 8, 8), "db2", levels=2)]
)
@pytest.mark.parametrize("bump", ["linear", "cosine", "smoothstep"])
@pytest.mark.parametrize("order", ["low_to_high", "high_to_low"])
def test_exact_velocity_reaches_the_data(transform, bump, order):
    path = KFlowPath(
        transform,
        bump=bump,
        order=order,
        allocation=[1.0, 2.0, 3.0][: transform.num_bands] + [1.0] * (transform.num_bands - 3),
    )
    x_0, x_1 = torch.randn(4, 1, 8, 8, dtype=torch.float64), torch.randn(4, 1, 8, 8, dtype=torch.float64)
    out = sample(
        Conditional(path, x_0, x_1), path, 4, steps=8 * path.num_bands, solver="rk4", x_0=x_0, record_bands=True
    )
    tol = 1e-10 if bump != "cosine" else 5e-4  # rk4 is exact for the polynomial bumps (8 steps per band)
    torch.testing.assert_close(out.x, x_1, rtol=0, atol=tol)
    # at each band boundary: finished bands hold data, the others still hold the noise
    c0, c1 = transform.analyze(x_0), transform.analyze(x_1)
    for p in range(path.num_bands + 1):
        c = transform.analyze(out.band_states[p])
        done = path.position_of_band[transform.bands] < p
        torch.testing.assert_close(c[:, done], c1[:, done], rtol=0, atol=tol)
        torch.testing.assert_close(c[:, ~done], c0[:, ~done], rtol=0, atol=tol)
