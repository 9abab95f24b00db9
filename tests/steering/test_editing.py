import torch

from kflow import KFlowPath, WaveletTransform
from kflow.metrics.psnr import psnr
from kflow.steering import edit_bands, integrate, invert


def test_backward_then_forward_reconstructs(tiny_model):
    path = KFlowPath(WaveletTransform((1, 8, 8), "haar", levels=2), bump="cosine")
    x_1 = torch.rand(4, 1, 8, 8, dtype=torch.float64) * 2 - 1
    x_0 = invert(tiny_model, path, x_1, steps=30, solver="rk4")
    rec = integrate(tiny_model, path, x_0, steps=30, solver="rk4")
    assert psnr(rec, x_1).min() > 60  # dB
    assert (x_0 - x_1).abs().max() > 0.1  # the noise really is somewhere else


def test_kept_bands_keep_their_noise_and_edits_change_the_image(tiny_model):
    T = WaveletTransform((1, 8, 8), "haar", levels=2)
    path = KFlowPath(T, bump="cosine")
    x_1 = torch.rand(3, 1, 8, 8, dtype=torch.float64) * 2 - 1
    out = edit_bands(tiny_model, path, x_1, keep_bands=[0], seed=1, steps=12)
    low = T.bands == 0
    c0, ce = T.analyze(out.x_0), T.analyze(out.x_0_edited)
    torch.testing.assert_close(ce[:, low], c0[:, low], rtol=0, atol=1e-12)
    assert (ce[:, ~low] - c0[:, ~low]).abs().max() > 0.5
    assert psnr(out.reconstruction, x_1).min() > 40
    assert psnr(out.x, x_1).max() < 40  # redrawn fine bands change the image
    swap = edit_bands(tiny_model, path, x_1, keep_bands=[0], donor=x_1.flip(0), steps=12)
    torch.testing.assert_close(
        T.analyze(swap.x_0_edited)[:, ~low], T.analyze(out.x_0.flip(0))[:, ~low], rtol=0, atol=1e-9
    )
