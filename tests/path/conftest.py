"""The transforms every path test runs on: Fourier, wavelet and PCA with three bands on (1, 16, 16)."""

import pytest
import torch

from kflow import FourierTransform, PCATransform, WaveletTransform

SHAPE = (1, 16, 16)


def make_transforms():
    return {
        "fourier": FourierTransform(SHAPE, num_bands=3),
        "wavelet": WaveletTransform(SHAPE, "db2", levels=2),
        "pca": PCATransform.fit(torch.randn(100, *SHAPE, dtype=torch.float64).cumsum(-1), num_bands=3),
    }


@pytest.fixture(params=["fourier", "wavelet", "pca"])
def transform(request):
    return make_transforms()[request.param]
