import pytest
import torch

from kflow import FourierTransform, PCATransform, WaveletTransform
from kflow.steering import split_noise


def transforms():
    x = torch.randn(200, 1, 8, 8, dtype=torch.float64).cumsum(-1)  # some structure for PCA
    return [
        WaveletTransform((1, 8, 8), "haar", levels=2),
        FourierTransform((1, 8, 8), num_bands=3),
        PCATransform.fit(x, num_bands=3),
    ]


@pytest.mark.parametrize("T", transforms(), ids=["wavelet", "fourier", "pca"])
def test_fixed_bands_shared_varied_bands_fresh(T):
    x_0 = split_noise(T, 6, fix_bands=[0], seed=3, dtype=torch.float64)
    c = T.analyze(x_0)
    fixed = T.bands == 0
    torch.testing.assert_close(c[:, fixed], c[:1, fixed].expand(6, -1), rtol=0, atol=1e-12)
    assert (c[1:, ~fixed] - c[:1, ~fixed]).abs().min() > 0  # every varied coefficient differs
    # vary_bands is the complement; shared_seed keeps the shared part across calls
    y_0 = split_noise(T, 6, vary_bands=[1, 2], seed=9, shared_seed=3, dtype=torch.float64)
    torch.testing.assert_close(T.analyze(y_0)[:, fixed], c[:, fixed], rtol=0, atol=1e-12)


def test_split_noise_is_standard_normal():
    T = WaveletTransform((1, 8, 8), "haar", levels=2)
    x_0 = torch.stack([split_noise(T, 2, fix_bands=[1], seed=s, dtype=torch.float64)[1] for s in range(1000)])
    flat = x_0.flatten(1)
    cov = flat.T @ flat / len(flat)
    assert (cov - torch.eye(64, dtype=torch.float64)).abs().max() < 0.2


def test_bad_bands_are_clear():
    T = WaveletTransform((1, 8, 8), "haar", levels=2)
    with pytest.raises(ValueError, match="bands 0..2"):
        split_noise(T, 2, fix_bands=[3])
    with pytest.raises(ValueError, match="exactly one"):
        split_noise(T, 2, fix_bands=[0], vary_bands=[1])
