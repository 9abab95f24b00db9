import math

import pytest
import torch

from kflow import FourierTransform, KFlowPath, WaveletTransform
from kflow.sampling import allocate_steps, band_grid, dopri5, euler, heun, midpoint, rk4, sample, uniform_grid


def linear_ode(x, k):  # dx/dk = (1 + k) x  ->  x(1) = x(0) exp(1.5)
    return (1 + k.view(-1, 1)) * x


@pytest.mark.parametrize("solver, order, nfe_per_step", [(euler, 1, 1), (midpoint, 2, 2), (heun, 2, 2), (rk4, 4, 4)])
def test_order_of_accuracy(solver, order, nfe_per_step):
    x0 = torch.ones(2, 3, dtype=torch.float64)
    exact = x0 * math.exp(1.5)
    errs = []
    for steps in (8, 16, 32):
        sol = solver(linear_ode, x0, uniform_grid(steps))
        assert sol.nfe == steps * nfe_per_step
        errs.append((sol.x - exact).abs().max().item())
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(abs(r - order) < 0.25 for r in rates), rates


def test_backward_integration_inverts():
    x0 = torch.randn(3, 2, dtype=torch.float64)
    x1 = rk4(linear_ode, x0, uniform_grid(40)).x
    back = rk4(linear_ode, x1, uniform_grid(40).flip(0)).x
    torch.testing.assert_close(back, x0, rtol=1e-8, atol=1e-8)


def test_dopri5_is_accurate():
    pytest.importorskip("torchdiffeq")
    x0 = torch.ones(2, 3, dtype=torch.float64)
    sol = dopri5(linear_ode, x0, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(sol.x, x0 * math.exp(1.5), rtol=1e-7, atol=1e-7)
    assert sol.nfe > 6


def test_band_grid_hits_boundaries():
    path = KFlowPath(FourierTransform((1, 16, 16), num_bands=3), allocation=[1.0, 2.0, 4.0])
    for weights in ("length", "equal", [1.0, 1.0, 3.0]):
        g = band_grid(path, 20, weights)
        assert len(g) == 21 and g[0] == 0 and g[-1] == 1 and (g.diff() > 0).all()
        for kappa in path.kappa.tolist():
            assert kappa in g.tolist()
    assert allocate_steps(10, [1, 1, 2]) == [3, 3, 4]
    with pytest.raises(ValueError, match="at least one step per band"):
        band_grid(path, 2)


def test_high_to_low_step_weights_are_per_band():
    path = KFlowPath(FourierTransform((1, 16, 16), num_bands=3), order="high_to_low")
    g = band_grid(path, 12, [6.0, 1.0, 1.0])  # most steps on band 0, generated last
    per_pos = [int(((g[:-1] >= a) & (g[:-1] < b)).sum()) for a, b in zip(path.kappa[:-1], path.kappa[1:])]
    assert per_pos[-1] > per_pos[0]


def test_sample_records_band_states_and_is_seeded():
    T = WaveletTransform((1, 8, 8), "haar", levels=2)
    path = KFlowPath(T)

    class Exact(torch.nn.Module):  # velocity towards a fixed target x1: the true conditional field
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, k, y=None):
            # the K-Flow ODE for data x1 = 0: dx/dk = P(a') (0 - x_0); with x_k known, x_0 part
            # of the active band is x_k itself on that band divided by (1 - mu); use projection only
            return -x * 0

    m = Exact()
    out1 = sample(m, path, 5, steps=9, seed=3, record_bands=True)
    out2 = sample(m, path, 5, steps=9, seed=3)
    assert torch.equal(out1.x, out2.x) and out1.nfe == 9
    assert out1.band_states.shape == (4, 5, 1, 8, 8)
    torch.testing.assert_close(out1.band_states[0], out1.x_0)
