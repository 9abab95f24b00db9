"""Where training draws k, and the sampling grid that matches the window density."""

import pytest
import torch

from kflow import KFlowPath, WaveletTransform
from kflow.path import draw_k
from kflow.sampling.sampler import make_grid


def test_window_logit_normal_lives_in_the_windows_with_logit_normal_local_times():
    windows = torch.tensor([[0.0, 0.5], [0.25, 1.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    k = draw_k(200000, "window_logit_normal", g, windows=windows).double()
    assert k.dtype == torch.float64 and ((k > 0) & (k < 1)).all()
    # redraw with the same generator state to know each draw's band: the same sequence of calls
    g = torch.Generator().manual_seed(0)
    b = torch.randint(2, (200000,), generator=g)
    t = torch.sigmoid(torch.randn(200000, generator=g, dtype=torch.float64))
    torch.testing.assert_close(k, (windows[b, 0] + t * (windows[b, 1] - windows[b, 0])).float().double())
    assert abs(b.float().mean().item() - 0.5) < 0.01  # each window equally often
    logit = torch.logit(t)
    assert abs(logit.mean().item()) < 0.01 and abs(logit.std().item() - 1) < 0.01
    # with one window [0, 1] it is the logit-normal density: same quantiles
    one = draw_k(200000, "window_logit_normal", torch.Generator().manual_seed(1), windows=[[0.0, 1.0]])
    ref = draw_k(200000, "logit_normal", torch.Generator().manual_seed(2))
    q = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    torch.testing.assert_close(one.quantile(q), ref.quantile(q), atol=5e-3, rtol=0)


def test_bad_density_and_missing_windows():
    with pytest.raises(ValueError, match="needs the path's windows"):
        draw_k(4, "window_logit_normal")
    with pytest.raises(ValueError, match="unknown k density 'beta'"):
        draw_k(4, "beta")


@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_band_logit_grid_hits_the_boundaries_with_logit_normal_steps(overlap):
    path = KFlowPath(WaveletTransform((1, 16, 16), "haar", levels=2), overlap=overlap)
    band, logit = make_grid(path, 24, "band"), make_grid(path, 24, "band_logit")
    edges = path.boundaries()
    assert logit.dtype == torch.float64 and len(logit) == len(band) == 25
    assert logit[0] == 0 and logit[-1] == 1 and (logit.diff() > 0).all()
    for e in edges.tolist():
        assert e in logit.tolist()  # every boundary is a grid point, as for the band grid
    # inside a segment [lo, hi] with n steps the points sit at lo + (hi - lo) sigmoid(ndtri(j / n))
    lo, hi = float(edges[0]), float(edges[1])
    inside = logit[(logit >= lo) & (logit < hi)]
    n = len(inside)
    u = torch.arange(n, dtype=torch.float64) / n
    torch.testing.assert_close(inside, lo + (hi - lo) * torch.sigmoid(torch.special.ndtri(u)), atol=1e-15, rtol=0)
    steps = inside.diff()
    assert steps[n // 2 - 1] < steps[0]  # denser mid-segment than at its start


@pytest.mark.parametrize("density", ["uniform", "logit_normal"])
def test_k_drawn_inside_a_stage_is_the_density_conditioned_on_it(density):
    """draw_k_between gives what draw_k gives, restricted to [lo, hi) (compared by quantiles), and
    k_mass is the density's probability of each interval."""
    from kflow.path.density import draw_k_between, k_mass

    edges = torch.tensor([0.0, 1 / 3, 2 / 3, 1.0], dtype=torch.float64)
    ref = draw_k(400000, density, torch.Generator().manual_seed(0)).double()
    mass = k_mass(density, edges)
    torch.testing.assert_close(mass.sum(), torch.tensor(1.0, dtype=torch.float64), rtol=0, atol=1e-12)
    q = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64)
    for s in range(3):
        lo, hi = edges[s], edges[s + 1]
        inside = ref[(ref >= lo) & (ref < hi)]
        assert abs(len(inside) / len(ref) - mass[s].item()) < 3e-3
        n = 100000
        k = draw_k_between(n, density, lo.expand(n), hi.expand(n), torch.Generator().manual_seed(s + 1))
        assert k.dtype == torch.float32 and (k >= lo.float()).all() and ((k < hi.float()) | (hi >= 1)).all()
        torch.testing.assert_close(k.double().quantile(q), inside.quantile(q), atol=4e-3, rtol=0)
    if density == "logit_normal":  # closed form: Phi(logit(1/3)) for the first stage
        want = torch.special.ndtr(torch.logit(torch.tensor(1 / 3, dtype=torch.float64)))
        torch.testing.assert_close(mass[0], want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="closed form"):
        k_mass("window_logit_normal", edges)
