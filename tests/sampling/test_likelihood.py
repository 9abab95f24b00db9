"""Exact log-likelihood in float64: data Gaussian with a diagonal covariance in the transform's
basis has a closed-form marginal velocity for any band windows, and a model returning it must give
the analytic log-density of each point and of each band; Hutchinson's estimate agrees with the
exact trace within its standard error; the flow maps back; bits per dimension of a known case."""

import math

import pytest
import torch
from torch import nn

from kflow import FourierTransform, KFlowPath, PCATransform, WaveletTransform
from kflow.sampling import dopri5
from kflow.sampling.likelihood import band_divergence, bits_per_dim, dequantize, draw_probes, log_likelihood

F64 = torch.float64
SHAPE = (1, 4, 4)


def make_transform(name):
    if name == "wavelet":
        return WaveletTransform(SHAPE, "haar", levels=2)
    if name == "fourier":
        return FourierTransform(SHAPE, num_bands=2)
    return PCATransform.fit(torch.randn(500, *SHAPE, dtype=F64) * torch.linspace(0.2, 2, 16).view(1, *SHAPE), 3)


class GaussianVelocity(nn.Module):
    """The marginal velocity when coefficient i of the data is N(0, var_i) and the noise N(0, 1):
    per coefficient c_k = (1 - a) c_0 + a c_1, so E[a' (c_1 - c_0) | c_k] = a' (a var - (1 - a)) / s^2 c_k
    with s^2 = (1 - a)^2 + a^2 var."""

    def __init__(self, path, var):
        super().__init__()
        self.path, self.var = path, var
        self.register_buffer("unused", torch.zeros(1, dtype=F64))

    def forward(self, x, k, y=None):
        T = self.path.transform
        a, da = (t[:, T.bands] for t in self.path.amplitudes(k.to(F64)))
        s2 = (1 - a) ** 2 + a**2 * self.var
        return T.synthesize(da * (a * self.var - (1 - a)) / s2 * T.analyze(x))


def gaussian_case(transform, seed=0, staggered=False, **path_kw):
    T = make_transform(transform)
    if staggered:
        path_kw["windows"] = [[b / T.num_bands, 1.0] for b in range(T.num_bands)]
    path = KFlowPath(T, **path_kw)
    g = torch.Generator().manual_seed(seed)
    var = torch.rand(T.dim, generator=g, dtype=F64) * 3 + 0.1
    c_1 = torch.randn(4, T.dim, generator=g, dtype=F64) * var.sqrt()
    return path, var, c_1, T.synthesize(c_1)


def analytic(T, var, c_1):
    per = -0.5 * c_1**2 / var - 0.5 * torch.log(2 * math.pi * var)  # (N, D)
    return torch.zeros(len(c_1), T.num_bands, dtype=F64).index_add_(1, T.bands, per)


@pytest.mark.parametrize("transform", ["wavelet", "fourier", "pca"])
@pytest.mark.parametrize(
    "path_kw",
    [
        {"overlap": 1.0},  # flow matching
        {"overlap": 0.0},  # the hard path
        {"overlap": 0.5, "bump": "cosine"},
        {"staggered": True},  # starts 0, 1/B, 2/B, ..., one shared end
    ],
)
def test_gaussian_data_gives_the_analytic_log_density_per_band(transform, path_kw):
    path, var, c_1, x_1 = gaussian_case(transform, **path_kw)
    model = GaussianVelocity(path, var)
    ll = log_likelihood(model, path, x_1, rtol=1e-11, atol=1e-11)
    want = analytic(path.transform, var, c_1)  # independent bands: marginal = conditional per band
    torch.testing.assert_close(ll.band, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(ll.total, want.sum(1), rtol=0, atol=1e-6)
    # and back: the noise it found flows forward onto x_1
    back = dopri5(lambda x, k: model(x, k), ll.x_0, path.boundaries(), rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(back.x, x_1, rtol=0, atol=1e-7)


def test_a_fixed_step_solver_converges_to_the_same_value():
    path, var, c_1, x_1 = gaussian_case("wavelet", overlap=0.5)
    model = GaussianVelocity(path, var)
    want = analytic(path.transform, var, c_1).sum(1)
    errs = [(log_likelihood(model, path, x_1, solver="rk4", steps=n).total - want).abs().max() for n in (12, 48)]
    assert errs[1] < 1e-5 and errs[1] < errs[0] / 20  # fourth order: 4x the steps, ~256x less error


class Tiny(nn.Module):
    """A nonlinear velocity with a dense Jacobian (its trace is not known in closed form)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(16, 16, generator=g, dtype=F64) / 4)
        self.w2 = nn.Parameter(torch.randn(16, 16, generator=g, dtype=F64) / 4)

    def forward(self, x, k, y=None):
        h = torch.tanh(x.flatten(1) @ self.w1 + k[:, None])
        return (h @ self.w2).view_as(x)


def test_hutchinson_agrees_with_the_exact_trace_within_its_standard_error():
    T = make_transform("wavelet")
    model = Tiny()
    x, k = torch.randn(3, *SHAPE, dtype=F64), torch.full((3,), 0.4, dtype=F64)

    def v(xx, kk):
        return model(xx, kk)

    _, exact = band_divergence(v, x, k, T)
    # exact against autograd's full Jacobian: the trace in pixel space equals the sum over bands
    J = torch.autograd.functional.jacobian(lambda z: model(z.view(1, *SHAPE), k[:1]).flatten(), x[0].flatten())
    torch.testing.assert_close(exact[0].sum(), torch.trace(J), rtol=0, atol=1e-10)
    for kind in ("rademacher", "gaussian"):
        probes = draw_probes(4000, 3, T.dim, kind, seed=1, dtype=F64)
        each = torch.stack([band_divergence(v, x, k, T, p[None])[1] for p in probes[:400]])  # (400, N, B)
        se = each.std(0) / math.sqrt(len(each))
        mean = band_divergence(v, x, k, T, probes[:400])[1]
        torch.testing.assert_close(mean, each.mean(0), rtol=0, atol=1e-10)  # the estimate is the probes' mean
        assert ((mean - exact).abs() <= 4 * se + 1e-12).all(), (kind, mean - exact, se)


def test_skipped_bands_contribute_nothing_and_the_rest_is_unchanged():
    T = make_transform("wavelet")
    model = Tiny()
    x, k = torch.randn(2, *SHAPE, dtype=F64), torch.full((2,), 0.7, dtype=F64)
    _, full = band_divergence(lambda a, b: model(a, b), x, k, T)
    _, part = band_divergence(lambda a, b: model(a, b), x, k, T, skip=torch.tensor([False, True, True]))
    assert (part[:, 1:] == 0).all()
    torch.testing.assert_close(part[:, 0], full[:, 0], rtol=0, atol=1e-15)  # other chunks: summed in another order


def test_bits_per_dim_of_a_known_discrete_case():
    """The uniform density over the 256 levels' bins (total width 256 * 2/255 per dimension) is 8 bits
    per dimension exactly; latents get nats per dimension."""
    D = 1024  # a 32x32 image
    log_p = torch.tensor([-D * math.log(256 * 2 / 255)], dtype=F64)
    torch.testing.assert_close(bits_per_dim(log_p, D), torch.tensor([8.0], dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(bits_per_dim(torch.tensor([-2.0 * D]), D, quantized=False), torch.tensor([2.0]))
    u = torch.arange(256, dtype=F64).repeat(8)
    x = u / 127.5 - 1
    xd = dequantize(x, torch.Generator().manual_seed(0))
    assert torch.equal(((xd + 1) * 127.5 + 0.5).floor(), u)  # every value stays inside its level's bin
    assert (xd - x).abs().max() < 1 / 255 and (xd != x).all()


def test_bad_options_are_refused():
    path, var, _, x_1 = gaussian_case("wavelet")
    model = GaussianVelocity(path, var)
    with pytest.raises(ValueError, match="divergence='trace'"):
        log_likelihood(model, path, x_1, divergence="trace")
    with pytest.raises(ValueError, match="probes=0"):
        log_likelihood(model, path, x_1, divergence="hutchinson", probes=0)
    with pytest.raises(ValueError, match="probe='sphere'"):
        log_likelihood(model, path, x_1, divergence="hutchinson", probe="sphere")


def test_a_staged_model_skips_the_bands_not_started_and_loses_nothing():
    """Bands after the model's stage are left out of the trace (a staged model's velocity is zero
    there); the log-density is still the analytic one."""
    path, var, c_1, x_1 = gaussian_case("wavelet", staggered=True)
    model = GaussianVelocity(path, var)
    seen = []

    def stage_of(k):
        seen.append(int(path.stage(k)[0]))
        return path.stage(k)

    model.stage_of = stage_of
    ll = log_likelihood(model, path, x_1, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(ll.band, analytic(path.transform, var, c_1), rtol=0, atol=1e-6)
    assert set(seen) == {0, 1, 2}  # every stage visited, each with its own bands


def test_bits_of_a_band_scaled_model_count_the_scaling():
    """A model of per-band normalised data z = F^T diag(1 / rms) F x: bits_by_band adds the
    log-determinant back, giving the analytic density of x itself (continuous data: nats/dim)."""
    from kflow.sampling.likelihood import bits_by_band
    from kflow.transforms.scaling import BandScale

    path, var, c_z, _ = gaussian_case("wavelet", overlap=0.5)
    T = path.transform
    rms = torch.tensor([2.0, 0.5, 0.25], dtype=F64)
    c_x = c_z * rms[T.bands]
    x = T.synthesize(c_x)
    out = bits_by_band(
        GaussianVelocity(path, var),
        path,
        x,
        scale=BandScale(T, rms),
        quantized=False,
        device="cpu",
        rtol=1e-11,
        atol=1e-11,
    )
    want = analytic(T, var * rms[T.bands] ** 2, c_x)  # (N, B) nats of x per band
    torch.testing.assert_close(out.band, -want / T.band_sizes().double(), rtol=0, atol=1e-7)
    torch.testing.assert_close(out.total, -want.sum(1) / T.dim, rtol=0, atol=1e-7)
    torch.testing.assert_close(out.share.sum(1), out.total, rtol=0, atol=1e-12)
    assert out.unit == "nats/dim"
