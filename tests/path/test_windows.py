"""Per-band k-windows: overlap 0 is the hard path bit for bit, overlap 1 is FM, derivatives,
localisation, the x_1 estimate, refusals."""

import pytest
import torch

from kflow import FourierTransform, IdentityTransform, KFlowPath
from kflow.path import BUMPS

SHAPE = (1, 16, 16)


def pair(n=4, dtype=torch.float64):
    return torch.randn(n, *SHAPE, dtype=dtype), torch.randn(n, *SHAPE, dtype=dtype)


def hard_amplitudes(path: KFlowPath, k):
    """The hard path as it was written before windows (one active position from kappa)."""
    kappa = path.kappa.to(dtype=k.dtype)
    p = torch.searchsorted(kappa[1:-1].contiguous(), k.contiguous(), right=True).clamp(0, path.num_bands - 1)
    lo, hi = kappa[p], kappa[p + 1]
    mu, dmu = path.bump(((k - lo) / (hi - lo)).clamp(0, 1))
    pos, pk = path.position_of_band[None, :], p[:, None]
    a = torch.where(
        pos < pk, torch.ones_like(mu)[:, None], torch.where(pos == pk, mu[:, None], torch.zeros_like(mu)[:, None])
    )
    da = torch.where(pos == pk, (dmu / (hi - lo))[:, None], torch.zeros_like(mu)[:, None])
    return a, da


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("allocation", ["uniform", [1.0, 2.0, 5.0]])
@pytest.mark.parametrize("order", ["low_to_high", "high_to_low"])
@pytest.mark.parametrize("bump", list(BUMPS))
def test_overlap_zero_is_the_hard_path_bit_for_bit(transform, bump, order, allocation, dtype):
    path = KFlowPath(transform, bump=bump, order=order, allocation=allocation, overlap=0.0)
    # random k plus every boundary and both ends
    k = torch.cat([torch.rand(64, dtype=torch.float64), path.kappa, torch.tensor([0.0, 1.0], dtype=torch.float64)]).to(
        dtype
    )
    a, da = path.amplitudes(k)
    a_ref, da_ref = hard_amplitudes(path, k)
    assert torch.equal(a, a_ref) and torch.equal(da, da_ref)
    x0, x1 = pair(len(k), dtype)
    s = path.sample(x0, x1, k)
    pa, pda = transform.filter_many(x1 - x0, [a_ref, da_ref])
    assert torch.equal(s.x_k, x0 + pa) and torch.equal(s.dx_k, pda)
    pos = path.position_of_band
    assert torch.equal(path.windows(), torch.stack([path.kappa[pos], path.kappa[pos + 1]], 1))


@pytest.mark.parametrize("bump", list(BUMPS))
def test_overlap_one_is_flow_matching(transform, bump):
    path = KFlowPath(transform, bump=bump, overlap=1.0)
    fm = KFlowPath(IdentityTransform(SHAPE), bump=bump)
    x0, x1 = pair(16)
    k = torch.cat([torch.rand(14, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)])
    s, r = path.sample(x0, x1, k), fm.sample(x0, x1, k)
    torch.testing.assert_close(s.x_k, r.x_k, rtol=0, atol=1e-12)
    torch.testing.assert_close(s.dx_k, r.dx_k, rtol=0, atol=1e-12)
    assert torch.equal(path.windows(), torch.tensor([[0.0, 1.0]] * transform.num_bands, dtype=torch.float64))


def staggered(B):
    return [[b / (B + 1), 1.0] for b in range(B)]  # LapFlow-like: staggered starts, one shared end


@pytest.mark.parametrize("kind", ["overlap", "staggered", "mixed"])
@pytest.mark.parametrize("bump", list(BUMPS))
def test_velocity_is_finite_difference_inside_the_windows(transform, bump, kind):
    B = transform.num_bands
    kw = {
        "overlap": dict(overlap=0.5),
        "staggered": dict(windows=staggered(B)),
        "mixed": dict(windows=[[0.0, 0.6], [0.2, 0.9], [0.5, 1.0]][:B]),
    }[kind]
    path = KFlowPath(transform, bump=bump, **kw)
    x0, x1 = pair(1)
    h = 1e-6
    edges = set(path.boundaries().tolist())
    for k in torch.linspace(0.013, 0.987, 23, dtype=torch.float64).tolist():
        if any(abs(k - e) < 10 * h for e in edges):
            continue
        kk = torch.tensor([k], dtype=torch.float64)
        fd = (path.sample(x0, x1, kk + h).x_k - path.sample(x0, x1, kk - h).x_k) / (2 * h)
        torch.testing.assert_close(path.sample(x0, x1, kk).dx_k, fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "kw", [dict(overlap=0.3), dict(overlap=1.0), dict(windows=[[0.0, 0.7], [0.1, 1.0], [0.4, 1.0]])]
)
def test_endpoints_and_localisation(transform, kw):
    path = KFlowPath(transform, bump="cosine", **kw)
    x0, x1 = pair(32)
    zero, one = torch.zeros(32, dtype=torch.float64), torch.ones(32, dtype=torch.float64)
    torch.testing.assert_close(path.sample(x0, x1, zero).x_k, x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(path.sample(x0, x1, one).x_k, x1, rtol=0, atol=1e-12)
    k = torch.rand(32, dtype=torch.float64)
    s = path.sample(x0, x1, k)
    c, cx = transform.analyze(s.dx_k), transform.analyze(s.x_k)
    c0, c1 = transform.analyze(x0), transform.analyze(x1)
    w = path.windows()[transform.bands]  # (D, 2) per coefficient
    before, after = k[:, None] < w[None, :, 0], k[:, None] >= w[None, :, 1]
    out = before | after
    assert out.any() == (kw != dict(overlap=1.0))
    assert c[out].abs().sum() < 1e-12 * c.numel()  # a band's velocity is zero outside its window
    torch.testing.assert_close(cx[before], c0[before], rtol=0, atol=1e-12)  # noise before its window
    torch.testing.assert_close(cx[after], c1[after], rtol=0, atol=1e-12)  # data after it
    torch.testing.assert_close(path.project(s.dx_k, k), s.dx_k, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(), dict(overlap=0.5), dict(windows=[[0.0, 1.0], [0.2, 1.0], [0.4, 1.0]])])
@pytest.mark.parametrize("bump", list(BUMPS))
def test_x1_estimate_of_the_exact_velocity_is_x1_on_started_bands(transform, kw, bump):
    path = KFlowPath(transform, bump=bump, **kw)
    x0, x1 = pair(64)
    k = torch.rand(64, dtype=torch.float64) * 0.98 + 0.01
    s = path.sample(x0, x1, k)
    est = path.x1_estimate(s.x_k, s.dx_k, k, flat="keep")
    _, da = path.amplitudes(k)
    started, finished = path.started(k), path.finished(k)
    good = (started & (finished | (da > 1e-3))).all(1)  # rows where every started band is extrapolable
    want = transform.filter(x1, started.double())  # x_1 on started bands, 0 on the others
    torch.testing.assert_close(est[good], want[good], rtol=1e-9, atol=1e-9)
    assert good.sum() > 16


def test_x1_estimate_conventions():
    T = FourierTransform(SHAPE, num_bands=2)
    path = KFlowPath(T, bump="smoothstep")
    x0, x1 = pair(1)
    k = path.windows()[1, 0].reshape(1)  # band 1 starts: mu'(0) = 0 for smoothstep
    s = path.sample(x0, x1, k)
    assert path.x1_estimate(s.x_k, s.dx_k, k, flat="nan").isnan().all()
    kept = path.x1_estimate(s.x_k, s.dx_k, k, flat="keep")
    torch.testing.assert_close(kept, s.x_k, rtol=0, atol=1e-12)  # band 0 done, band 1 not extrapolated
    # one band, identity, linear bump: FM's x_k + (1 - k) v
    fm = KFlowPath(IdentityTransform(SHAPE))
    kk = torch.tensor([0.3], dtype=torch.float64)
    v = torch.randn_like(x0)
    torch.testing.assert_close(fm.x1_estimate(x0, v, kk), x0 + 0.7 * v, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="flat="):
        fm.x1_estimate(x0, v, kk, flat="zero")


def test_started_finished_and_boundaries():
    path = KFlowPath(FourierTransform(SHAPE, num_bands=3), windows=[[0.0, 0.5], [0.25, 1.0], [0.5, 1.0]])
    assert path.windows().dtype == torch.float64 and path.windows().shape == (3, 2)
    assert path.boundaries().tolist() == [0.0, 0.25, 0.5, 1.0]
    k = torch.tensor([0.0, 0.3, 0.5, 1.0], dtype=torch.float64)
    assert path.started(k).tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]]
    assert path.finished(k).tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 1, 1]]
    assert path.active_band(k).tolist() == [0, 1, 2, 2]
    hard = KFlowPath(FourierTransform(SHAPE, num_bands=3), allocation=[1.0, 1.0, 2.0])
    assert torch.equal(hard.boundaries(), hard.kappa)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(windows=[[0.0, 1.0], [0.5, 1.0]]), "3 pairs"),
        (dict(windows=[[0.0, 0.4], [0.5, 0.8], [0.7, 1.0]]), "no band moves"),
        (dict(windows=[[0.1, 0.5], [0.4, 0.8], [0.7, 1.0]]), "no band moves"),
        (dict(windows=[[0.0, 0.5], [0.4, 0.8], [0.7, 0.9]]), "no band moves"),
        (dict(windows=[[0.0, 0.5], [0.5, 0.5], [0.5, 1.0]]), "start < end"),
        (dict(windows=[[0.0, 0.5], [0.4, 1.2], [0.5, 1.0]]), "start < end"),
        (dict(windows=[[0.0, float("nan")], [0.4, 1.0], [0.5, 1.0]]), "start < end"),
        (dict(overlap=1.5), "overlap"),
        (dict(overlap=float("nan")), "overlap"),
        (dict(overlap=0.5, windows=[[0.0, 1.0]] * 3), "not both"),
    ],
)
def test_bad_windows_are_refused_in_one_line(kw, match):
    with pytest.raises(ValueError, match=match) as e:
        KFlowPath(FourierTransform(SHAPE, num_bands=3), **kw)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kw", [dict(), dict(overlap=0.5), dict(windows=[[0.0, 1.0], [0.2, 1.0], [0.4, 1.0]])])
@pytest.mark.parametrize("bump", list(BUMPS))
def test_velocity_from_the_true_endpoint_is_the_conditional_velocity(transform, kw, bump):
    """velocity_from_x1(x_k, x_1) = dx_k exactly (away from a band's end, where 1 - a is clamped),
    and x1_estimate of that velocity gives x_1 back on the started bands: the two are inverses."""
    path = KFlowPath(transform, bump=bump, **kw)
    x0, x1 = pair(64)
    k = torch.rand(64, dtype=torch.float64) * 0.9 + 0.01
    s = path.sample(x0, x1, k)
    v = path.velocity_from_x1(s.x_k, x1, k)
    a, _ = path.amplitudes(k)
    ok = (((1 - a) > 1e-3) | ~path.moving(k)).all(1)  # rows with no moving band right at its end
    torch.testing.assert_close(v[ok], s.dx_k[ok], rtol=1e-9, atol=1e-9)
    assert ok.sum() > 32
    # what the endpoint does not say (bands not started, bands finished) never moves x_k
    other = torch.randn_like(x1)
    v2 = path.velocity_from_x1(s.x_k, transform.filter(other, (~path.moving(k)).double()) + x1, k)
    torch.testing.assert_close(v2[ok], v[ok], rtol=1e-9, atol=1e-9)
    # FM: (x_1 - x_k) / (1 - k)
    fm = KFlowPath(IdentityTransform(SHAPE))
    kk = torch.full((4,), 0.25, dtype=torch.float64)
    xk, xh = pair(4)
    torch.testing.assert_close(fm.velocity_from_x1(xk, xh, kk), (xh - xk) / 0.75, rtol=0, atol=1e-12)
