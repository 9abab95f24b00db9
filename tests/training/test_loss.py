"""FlowMatchingLoss: per-band weights, including 'interval' (undo the 1/dk scale of each band's target)."""

import pytest
import torch

from kflow import FourierTransform, KFlowPath
from kflow.config import ConfigError, load_config
from kflow.training.loss import FlowMatchingLoss, interval_weights

SHAPE = (1, 8, 8)


class Zero(torch.nn.Module):
    def forward(self, x, k, y=None):
        return torch.zeros_like(x)


def test_interval_weights_are_one_for_uniform_allocation():
    path = KFlowPath(FourierTransform(SHAPE, num_bands=3))
    assert torch.allclose(interval_weights(path), torch.ones(3))


@pytest.mark.parametrize("order", ["low_to_high", "high_to_low"])
def test_interval_weights_make_the_loss_independent_of_the_allocation(order):
    """With a zero model the loss is the mean of |dx_k|^2. Interval weights turn it into the mean of
    |B mu' (x_1 - x_0) on the active band|^2: the same number for any allocation (linear bump)."""
    x_1, x_0 = torch.randn(4000, *SHAPE, dtype=torch.float64), torch.randn(4000, *SHAPE, dtype=torch.float64)
    k = torch.rand(4000, dtype=torch.float64)
    t = FourierTransform(SHAPE, num_bands=2)
    uneven = KFlowPath(t, allocation=[0.9, 0.1], order=order)
    even = KFlowPath(t, order=order)
    w = interval_weights(uneven)
    dk = torch.tensor([0.9, 0.1])
    assert torch.allclose(w, (2 * dk) ** 2)
    out_u = FlowMatchingLoss(uneven, "interval")(Zero(), x_1, x_0, k)
    out_e = FlowMatchingLoss(even)(Zero(), x_1, x_0, k)
    for b in range(2):
        wu = (out_u.per_sample[out_u.band == b] * w[b]).mean()
        we = out_e.per_sample[out_e.band == b].mean()
        assert abs(wu / we - 1) < 0.1  # Monte Carlo over x_0, x_1; unweighted the ratio is (0.5 / dk)^2
    unweighted = FlowMatchingLoss(uneven)(Zero(), x_1, x_0, k)
    assert not torch.isclose(unweighted.loss.double(), out_u.loss.double(), rtol=0.5)


def test_explicit_weights_scale_each_band():
    path = KFlowPath(FourierTransform(SHAPE, num_bands=2))
    x_1, x_0, k = torch.randn(64, *SHAPE), torch.randn(64, *SHAPE), torch.rand(64)
    plain = FlowMatchingLoss(path)(Zero(), x_1, x_0, k)
    weighted = FlowMatchingLoss(path, [2.0, 0.5])(Zero(), x_1, x_0, k)
    expect = (plain.per_sample * torch.tensor([2.0, 0.5])[plain.band]).mean()
    assert torch.allclose(weighted.loss, expect)


def test_bad_weights_are_refused():
    path = KFlowPath(FourierTransform(SHAPE, num_bands=2))
    with pytest.raises(ValueError, match="interval"):
        FlowMatchingLoss(path, "energy")
    with pytest.raises(ValueError, match="3 entries for 2 bands"):
        FlowMatchingLoss(path, [1.0, 1.0, 1.0])
    with pytest.raises(ConfigError, match="band_loss_weights"):
        load_config("configs/fmnist_wavelet3.yaml", ["train.band_loss_weights=energy"])
    assert (
        load_config("configs/fmnist_wavelet3.yaml", ["train.band_loss_weights=interval"]).train.band_loss_weights
        == "interval"
    )


def test_targets_stay_float32_under_bf16_autocast():
    """Training runs under bf16 autocast on GPUs (and CPU with train.amp=bf16); the path's matmuls
    and convolutions (PCA, wavelet) must not drop to bf16: the loss sees the exact float32 target."""
    from kflow import PCATransform, WaveletTransform

    data = torch.randn(512, 1, 8, 8)
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x, k, y=None):
            seen["x_k"] = x
            return torch.zeros_like(x)

    x_1, x_0, k = torch.randn(16, 1, 8, 8), torch.randn(16, 1, 8, 8), torch.rand(16)
    for T in (PCATransform.fit(data.double(), num_bands=2), WaveletTransform((1, 8, 8), "haar", num_bands=2)):
        loss = FlowMatchingLoss(KFlowPath(T))
        exact = KFlowPath(T).sample(x_0, x_1, k)
        with torch.autocast("cpu", torch.bfloat16):
            out = loss(Spy(), x_1, x_0, k)
        assert seen["x_k"].dtype == torch.float32
        torch.testing.assert_close(seen["x_k"], exact.x_k, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(out.per_sample, exact.dx_k.pow(2).flatten(1).mean(1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kw", [dict(), dict(overlap=0.5)])
def test_conditioning_augmentation_noises_finished_bands_only_and_keeps_targets(kw):
    """cond_aug adds noise of that std on the bands finished at k to the model's input; unfinished
    bands and the regression target are exactly those of the clean path."""
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x, k, y=None):
            seen["x"] = x
            return torch.zeros_like(x)

    T = FourierTransform(SHAPE, num_bands=3)
    path = KFlowPath(T, **kw)
    n = 4000
    x_1, x_0 = torch.randn(n, *SHAPE, dtype=torch.float64), torch.randn(n, *SHAPE, dtype=torch.float64)
    k = torch.rand(n, dtype=torch.float64)
    clean = path.sample(x_0, x_1, k)
    torch.manual_seed(1)
    out = FlowMatchingLoss(path, cond_aug=0.1)(Spy(), x_1, x_0, k)
    torch.testing.assert_close(out.per_sample, clean.dx_k.float().pow(2).flatten(1).mean(1), rtol=0, atol=0)  # targets
    d = T.analyze(seen["x"] - clean.x_k)  # (n, D) the added noise in coefficients
    done = path.finished(k)[:, T.bands]  # (n, D)
    assert d[~done].abs().max() < 1e-12  # nothing on unfinished bands (float64 round-off of the transform)
    assert done.sum() > 1000 and abs(d[done].std().item() - 0.1) < 0.005  # std 0.1 on finished ones
    with pytest.raises(ValueError, match="cond_aug"):
        FlowMatchingLoss(path, cond_aug=-1.0)
