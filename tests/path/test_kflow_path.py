"""The K-Flow path against docs/maths.md: endpoints, finite differences, localization, FM special case."""

import pytest
import torch

from kflow import FourierTransform, IdentityTransform, KFlowPath, WaveletTransform
from kflow.path import BUMPS

SHAPE = (1, 16, 16)


def pair(n=4):
    return torch.randn(n, *SHAPE, dtype=torch.float64), torch.randn(n, *SHAPE, dtype=torch.float64)


@pytest.mark.parametrize("order", ["low_to_high", "high_to_low"])
@pytest.mark.parametrize("bump", list(BUMPS))
def test_endpoints(transform, bump, order):
    path = KFlowPath(transform, bump=bump, order=order)
    x0, x1 = pair()
    torch.testing.assert_close(path.sample(x0, x1, torch.zeros(4, dtype=torch.float64)).x_k, x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(path.sample(x0, x1, torch.ones(4, dtype=torch.float64)).x_k, x1, rtol=0, atol=1e-12)


@pytest.mark.parametrize("allocation", ["uniform", [1.0, 2.0, 5.0]])
@pytest.mark.parametrize("order", ["low_to_high", "high_to_low"])
@pytest.mark.parametrize("bump", list(BUMPS))
def test_velocity_is_finite_difference_inside_each_band(transform, bump, order, allocation):
    path = KFlowPath(transform, bump=bump, order=order, allocation=allocation)
    x0, x1 = pair(1)
    h = 1e-6
    for lo, hi in path.windows().tolist():
        for frac in (0.1, 0.37, 0.5, 0.83):
            k = torch.tensor([lo + frac * (hi - lo)], dtype=torch.float64)
            fd = (path.sample(x0, x1, k + h).x_k - path.sample(x0, x1, k - h).x_k) / (2 * h)
            torch.testing.assert_close(path.sample(x0, x1, k).dx_k, fd, rtol=1e-6, atol=1e-6)


def test_velocity_lives_on_the_active_band_only(transform):
    for order in ("low_to_high", "high_to_low"):
        path = KFlowPath(transform, bump="cosine", order=order)
        x0, x1 = pair(8)
        k = torch.rand(8, dtype=torch.float64)
        s = path.sample(x0, x1, k)
        c = transform.analyze(s.dx_k)
        active = path.active_band(k)
        outside = transform.bands[None, :] != active[:, None]
        assert c[outside].abs().max() < 1e-12
        assert c[~outside].abs().max() > 1e-3
        assert torch.equal(s.band, active)
        # and bands hold data below / noise above the active one
        cx = transform.analyze(s.x_k)
        c0, c1 = transform.analyze(x0), transform.analyze(x1)
        pos = path.position_of_band[transform.bands][None, :]
        ppos = path.position_of_band[active][:, None]
        torch.testing.assert_close(cx[pos < ppos], c1[pos < ppos], rtol=0, atol=1e-12)
        torch.testing.assert_close(cx[pos > ppos], c0[pos > ppos], rtol=0, atol=1e-12)
        # projection keeps exactly the target
        torch.testing.assert_close(path.project(s.dx_k, k), s.dx_k, rtol=0, atol=1e-12)


def test_identity_is_rectified_flow():
    path = KFlowPath(IdentityTransform(SHAPE))
    x0, x1 = pair(5)
    k = torch.rand(5, dtype=torch.float64)
    s = path.sample(x0, x1, k)
    kk = k.view(-1, 1, 1, 1)
    torch.testing.assert_close(s.x_k, kk * x1 + (1 - kk) * x0, rtol=0, atol=1e-15)
    torch.testing.assert_close(s.dx_k, x1 - x0, rtol=0, atol=1e-15)


def test_high_to_low_reverses_band_order(transform):
    fwd = KFlowPath(transform, order="low_to_high", allocation=[1.0, 2.0, 3.0])
    rev = KFlowPath(transform, order="high_to_low", allocation=[1.0, 2.0, 3.0])
    B = transform.num_bands
    assert fwd.active_band(torch.tensor([0.01])).item() == 0
    assert rev.active_band(torch.tensor([0.01])).item() == B - 1
    assert rev.active_band(torch.tensor([0.99])).item() == 0
    # each band keeps its own allocated length, and the intervals tile [0, 1] in reversed order
    lf, lr = fwd.windows(), rev.windows()
    torch.testing.assert_close(lf[:, 1] - lf[:, 0], lr[:, 1] - lr[:, 0])
    assert lr[B - 1, 0] == 0 and lr[0, 1] == 1


def test_energy_allocation_follows_band_energy():
    T = FourierTransform(SHAPE, num_bands=3)
    data = torch.randn(64, *SHAPE, dtype=torch.float64).cumsum(-1).cumsum(-2)
    e = T.band_energy(data)
    torch.testing.assert_close(e.sum(), data.pow(2).flatten(1).sum(1).mean())
    path = KFlowPath(T, allocation="energy", energy=e)
    lengths = path.windows().diff(dim=1).flatten()
    torch.testing.assert_close(lengths, e / e.sum())
    with pytest.raises(ValueError, match="energy="):
        KFlowPath(T, allocation="energy")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"bump": "sigmoid"}, "unknown bump"),
        ({"order": "random"}, "unknown order"),
        ({"allocation": [1.0, -1.0, 1.0]}, "positive"),
        ({"allocation": [1.0]}, "one per band"),
        ({"allocation": "log"}, "unknown allocation"),
    ],
)
def test_bad_path_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KFlowPath(FourierTransform(SHAPE, num_bands=3), **kwargs)


def test_float32_batch_and_scalar_k():
    path = KFlowPath(WaveletTransform((3, 16, 16), "haar"), bump="smoothstep")
    x0, x1 = torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16)
    s = path.sample(x0, x1, torch.tensor(0.4))
    assert s.x_k.dtype == torch.float32 and s.x_k.shape == x0.shape and s.k.shape == (6,)
