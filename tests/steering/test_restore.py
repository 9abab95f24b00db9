import pytest
import torch
import torch.nn.functional as F

from kflow import IdentityTransform, KFlowPath, WaveletTransform
from kflow.metrics.psnr import psnr
from kflow.steering.degradations import baseline, make_degradation
from kflow.steering.restore import restore


def images(n=4, size=8):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, 1, size, size, generator=g, dtype=torch.float64)
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="circular"), 3, stride=1).clamp(-1, 1)  # smooth-ish


def test_degradation_matrices_match_the_operators():
    x = images()
    A = make_degradation("sr_box", (1, 8, 8), factor=2)
    torch.testing.assert_close(A(x), F.avg_pool2d(x, 2))
    torch.testing.assert_close(
        (A(x).flatten(1) @ A.pinv().T).reshape(x.shape),
        F.avg_pool2d(x, 2).repeat_interleave(2, -1).repeat_interleave(2, -2),
    )  # A^+ = nearest up
    B = make_degradation("blur", (1, 8, 8), sigma=1.0)
    assert B(x).shape == x.shape and torch.allclose(B(x).mean((1, 2, 3)), x.mean((1, 2, 3)))  # mass preserved
    C = make_degradation("sr_bicubic", (1, 8, 8), factor=2)
    torch.testing.assert_close(C(x), F.interpolate(x, size=(4, 4), mode="bicubic", antialias=True))
    m = make_degradation("inpaint", (1, 8, 8))
    assert m.matrix.shape == (48, 64)
    with pytest.raises(ValueError, match="cannot be downsampled by 3"):
        make_degradation("sr_box", (1, 8, 8), factor=3)


def test_band_determined_degradation_keeps_the_observed_bands_exactly(tiny_model):
    """Box x2 downsampling observes the Haar level-1 approximation: bands 0..2 of 4. They must be
    the observation's exactly, whatever the model generates for the finest band."""
    T = WaveletTransform((1, 8, 8), "haar", levels=3)
    path = KFlowPath(T, bump="smoothstep")
    model = tiny_model.float()
    x = images().float()
    A = make_degradation("sr_box", (1, 8, 8), factor=2)
    out = restore(model, path, A(x), A, steps=16, seed=1)
    c, c_true = T.analyze(out.x), T.analyze(x)
    obs = T.bands < 3
    torch.testing.assert_close(c[:, obs], c_true[:, obs], rtol=0, atol=2e-5)
    assert (c[:, ~obs] - c_true[:, ~obs]).abs().max() > 1e-3  # the finest band is generated, not copied
    assert out.nfe == 16


@pytest.mark.parametrize("task", ["sr_bicubic", "blur", "inpaint"])
def test_restorations_are_measurement_consistent(tiny_model, task):
    model = tiny_model.float()
    x = images().float()
    A = make_degradation(task, (1, 8, 8), factor=2, sigma=1.0)
    y = A(x)
    for path in (KFlowPath(WaveletTransform((1, 8, 8), "haar", levels=2)), KFlowPath(IdentityTransform((1, 8, 8)))):
        out = restore(model, path, y, A, steps=12)
        assert (A(out.x) - y).abs().max() < 1e-3 * (10 if task == "blur" else 1)


def test_wiener_baseline_inverts_a_mild_blur():
    x = images().float()
    A = make_degradation("blur", (1, 8, 8), sigma=1.0)
    assert psnr(baseline(A(x), A), x).min() > 30
    assert psnr(baseline(A(x), A), x).mean() > psnr(A(x), x).mean() + 5


def test_inpainting_correction_through_the_coarse_band_is_bounded():
    """Seen through a mask, a db6 coarse coefficient that barely touches the visible pixels has a tiny
    singular value; inverting it exactly filled the hole with extreme values (the band schedule's
    inpainting fell below zero fill). Inpainting leaves directions with s < 0.1 to the model, so the
    correction's gain is at most 10; blur keeps exact inversion."""
    T = WaveletTransform((1, 16, 16), "db6", levels=1)
    A = make_degradation("inpaint", (1, 16, 16))
    rows = A.matrix.reshape(-1, 1, 16, 16)
    through_band0 = T.filter(rows, torch.tensor([1.0, 0.0], dtype=torch.float64)).flatten(1)
    s = torch.linalg.svdvals(through_band0)
    assert s.min() < 1e-2 < s.max()  # the ill-conditioned directions exist
    assert torch.linalg.matrix_norm(A.pinv(through_band0), 2) <= 10 + 1e-9
    B = make_degradation("blur", (1, 16, 16), sigma=1.0)
    x = images(size=16)
    torch.testing.assert_close((B(x).flatten(1) @ B.pinv().T).reshape(x.shape), x, atol=1e-6, rtol=0)
