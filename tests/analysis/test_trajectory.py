"""Spectral evolution and projection ratio on cases with a known answer."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from kflow import FourierTransform, IdentityTransform, KFlowPath, WaveletTransform
from kflow.analysis import band_energy_curve, estimate_curve, final_estimate, projection_ratio, settle_k, trace
from kflow.sampling import band_grid


def exact_velocity(path, x_1):
    """The marginal velocity when the data is the single point x_1: on the active band
    v = mu'(t)/L (c_1 - c_0) with c_0 recovered from c_k = c_0 + mu(t)(c_1 - c_0); zero elsewhere.
    Linear (affine) in x: a 'model' with a known answer."""
    T = path.transform

    def v(x, k):
        p = path.active_position(k)
        lo, hi = path.kappa[p].to(x.dtype), path.kappa[p + 1].to(x.dtype)
        t = (k - lo) / (hi - lo)
        mu, dmu = path.bump(t)
        onehot = torch.nn.functional.one_hot(path.active_band(k), path.num_bands).to(x.dtype)
        gain = (dmu / (hi - lo) / (1 - mu))[:, None] * onehot  # (N, B)
        return T.filter(x_1.expand_as(x) - x, gain)

    return v


def shapes():
    return [WaveletTransform((1, 8, 8), "haar", levels=3, num_bands=3), FourierTransform((1, 8, 8), num_bands=3)]


@pytest.mark.parametrize("T", shapes(), ids=["haar", "fourier"])
def test_kflow_band_energies_switch_exactly_at_their_intervals(T):
    path = KFlowPath(T, bump="linear", allocation=[1.0, 2.0, 3.0])
    x_1 = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    x_0 = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    grid = band_grid(path, 24)
    traj = trace(exact_velocity(path, x_1), grid, x_0)
    # Euler is exact here (constant velocity along each band): the state is the analytic path point
    for i, k in enumerate(grid.tolist()):
        want = path.sample(x_0, x_1.expand_as(x_0), torch.full((5,), k, dtype=torch.float64)).x_k
        torch.testing.assert_close(traj.x[i], want, rtol=0, atol=1e-12)
    final = T.band_energy(traj.x[-1])
    torch.testing.assert_close(final, T.band_energy(x_1), rtol=1e-12, atol=0)
    state = band_energy_curve(T, traj.x) / final
    e0 = T.band_energy(x_0) / final
    est = band_energy_curve(T, estimate_curve(path, traj)) / final
    starts, ends = path.windows().unbind(1)
    for i, k in enumerate(grid.tolist()):
        for b in range(3):
            if k <= starts[b]:  # not started: the noise, and nothing estimated
                assert state[i, b] == pytest.approx(e0[b].item(), rel=1e-10)
            if k >= ends[b]:  # finished: the data
                assert state[i, b] == pytest.approx(1.0, rel=1e-10)
            if i < len(est):  # the estimate is the data from the band's start on, 0 before
                assert est[i, b] == pytest.approx(1.0 if k >= starts[b] else 0.0, abs=1e-10)
    assert [settle_k(grid[:-1], est[:, b]) for b in range(3)] == pytest.approx(starts.tolist(), abs=1e-12)


def test_flow_matching_recovers_every_band_together():
    fm = KFlowPath(IdentityTransform((1, 8, 8)))
    W = WaveletTransform((1, 8, 8), "haar", levels=3, num_bands=3)
    x_1 = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    x_0 = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    grid = band_grid(fm, 20)
    traj = trace(exact_velocity(fm, x_1), grid, x_0)
    for i, k in enumerate(grid.tolist()):
        torch.testing.assert_close(traj.x[i], k * x_1 + (1 - k) * x_0, rtol=0, atol=1e-12)
    est = band_energy_curve(W, estimate_curve(fm, traj)) / W.band_energy(x_1)
    torch.testing.assert_close(est, torch.ones_like(est), rtol=0, atol=1e-10)  # all bands at once, from k = 0
    assert [settle_k(grid[:-1], est[:, b]) for b in range(3)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("bump", ["cosine", "smoothstep"])
def test_estimate_is_the_data_for_any_bump_and_undefined_at_a_flat_start(bump):
    T = WaveletTransform((1, 8, 8), "haar", levels=3, num_bands=3)
    path = KFlowPath(T, bump=bump)
    x_0, x_1 = torch.randn(3, 1, 8, 8, dtype=torch.float64), torch.randn(3, 1, 8, 8, dtype=torch.float64)
    v = exact_velocity(path, x_1)
    for k in (0.1, 0.5, 0.9):
        kk = torch.full((3,), k, dtype=torch.float64)
        x_k = path.sample(x_0, x_1, kk).x_k
        est = final_estimate(path, x_k, v(x_k, kk), k)
        started = (path.windows()[:, 0] <= k).to(torch.float64)
        torch.testing.assert_close(est, T.filter(x_1, started), rtol=0, atol=1e-9)
    assert final_estimate(path, x_0, x_0, 1 / 3).isnan().all()  # mu'(0) = 0 at the start of band 1


def test_projection_ratio_is_one_for_rank_two_data_and_matches_sklearn():
    g = torch.Generator().manual_seed(1)
    basis = torch.linalg.qr(torch.randn(64, 2, dtype=torch.float64, generator=g)).Q
    x = torch.randn(50, 2, dtype=torch.float64, generator=g) @ basis.T  # rank 2 through the origin
    assert projection_ratio(x.reshape(50, 1, 8, 8)).item() == pytest.approx(1.0, abs=1e-12)
    y = torch.randn(200, 64, dtype=torch.float64, generator=g) + 0.5
    pca = PCA(n_components=2).fit(y.numpy())
    resid = y.numpy() - pca.inverse_transform(pca.transform(y.numpy()))
    want = 1 - (resid**2).sum() / (y.numpy() ** 2).sum()
    assert projection_ratio(y).item() == pytest.approx(want, rel=1e-10)
    assert projection_ratio(y).item() < 0.4  # isotropic noise is far from 2-dimensional


def test_settle_k_ignores_undefined_points():
    k = torch.linspace(0, 1, 6, dtype=torch.float64)
    rel = torch.tensor([0.0, float("nan"), 0.5, 0.95, 1.05, 1.0], dtype=torch.float64)
    assert settle_k(k, rel) == pytest.approx(0.6)
    assert np.isnan(settle_k(k, torch.tensor([1, 1, 1, 1, 1, 2.0], dtype=torch.float64)))
