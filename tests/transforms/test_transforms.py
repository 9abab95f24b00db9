"""Identities every K-amplitude decomposition must satisfy, in float64."""

import numpy as np
import pytest
import torch

from kflow import FourierTransform, IdentityTransform, PCATransform, WaveletTransform

SHAPE = (2, 16, 16)


def make(name, shape=SHAPE):
    if name == "fourier":
        return FourierTransform(shape, num_bands=3)
    if name == "fourier_edges":
        return FourierTransform(shape, edges=[2.5, 5.0])
    if name == "wavelet_db6":
        return WaveletTransform(shape, "db6", levels=2)
    if name == "wavelet_haar":
        return WaveletTransform(shape, "haar", num_bands=2)
    if name == "pca":
        return PCATransform.fit(torch.randn(300, *shape, dtype=torch.float64).cumsum(-1), num_bands=3)
    if name == "pca_few":  # fewer samples than dimensions: basis must still be complete
        return PCATransform.fit(torch.randn(20, *shape, dtype=torch.float64), num_bands=2)
    return IdentityTransform(shape)


ALL = ["fourier", "fourier_edges", "wavelet_db6", "wavelet_haar", "pca", "pca_few", "identity"]


@pytest.mark.parametrize("name", ALL)
def test_round_trip_and_energy(name):
    T = make(name)
    x = torch.randn(4, *SHAPE, dtype=torch.float64)
    c = T.analyze(x)
    assert c.shape == (4, T.dim) and T.bands.shape == (T.dim,)
    torch.testing.assert_close(T.synthesize(c), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(c.pow(2).sum(1), x.pow(2).flatten(1).sum(1), rtol=1e-12, atol=0)
    # synthesize is the transpose of analyze: <F x, c> = <x, F^T c>
    c2 = torch.randn_like(c)
    torch.testing.assert_close((c * c2).sum(), (x * T.synthesize(c2)).sum(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_noise_stays_white(name):
    T = make(name, (1, 8, 8))
    eps = torch.randn(20000, 1, 8, 8, dtype=torch.float64)
    c = T.analyze(eps)
    cov = c.T @ c / len(c)
    assert (cov - torch.eye(64, dtype=torch.float64)).abs().max() < 0.06


@pytest.mark.parametrize("name", ALL)
def test_filter_matches_coefficient_scaling(name):
    T = make(name)
    x = torch.randn(3, *SHAPE, dtype=torch.float64)
    w = torch.rand(3, T.num_bands, dtype=torch.float64)
    expect = T.synthesize(T.analyze(x) * w[:, T.bands])
    torch.testing.assert_close(T.filter(x, w), expect, rtol=0, atol=1e-12)
    torch.testing.assert_close(T.filter(x, w[0]), T.synthesize(T.analyze(x) * w[0][T.bands]), rtol=0, atol=1e-12)
    wc = torch.rand(T.dim, dtype=torch.float64)  # per-coefficient weights
    torch.testing.assert_close(T.filter(x, wc), T.synthesize(T.analyze(x) * wc), rtol=0, atol=1e-12)
    # band projections sum to the identity and are orthogonal
    parts = [
        T.filter(x, torch.nn.functional.one_hot(torch.tensor(b), T.num_bands).double()) for b in range(T.num_bands)
    ]
    torch.testing.assert_close(sum(parts), x, rtol=0, atol=1e-12)
    if len(parts) > 1:
        assert abs(float((parts[0] * parts[-1]).sum())) < 1e-9


@pytest.mark.parametrize("wavelet", ["haar", "db2", "db6", "sym4", "coif1"])
@pytest.mark.parametrize("shape", [(1, 16, 16), (1, 32, 16)])
def test_wavelet_matches_pywavelets(wavelet, shape):
    pywt = pytest.importorskip("pywt")
    levels = 2
    T = WaveletTransform(shape, wavelet, levels=levels)
    x = torch.randn(1, *shape, dtype=torch.float64)
    with pytest.warns(None) if False else np.errstate():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = pywt.wavedec2(x[0, 0].numpy(), wavelet, mode="periodization", level=levels)
    flat = np.concatenate([ref[0].ravel()] + [np.concatenate([d.ravel() for d in lv]) for lv in ref[1:]])
    np.testing.assert_allclose(T.analyze(x)[0].numpy(), flat, rtol=0, atol=1e-12)
    # band 0 is the approximation, the last band the finest detail level
    sizes = T.band_sizes().tolist()
    assert sizes == [ref[0].size] + [3 * lv[0].size for lv in ref[1:]]


def test_wavelet_grouping_keeps_finest_levels_separate():
    T = WaveletTransform((1, 32, 32), "haar", levels=3, num_bands=2)
    assert T.band_sizes().tolist() == [256, 768]  # 16x16 image, then the finest details
    # the low band of the haar transform is exactly the 2x2 box-downsampled image (scaled by 2)
    x = torch.randn(2, 1, 32, 32, dtype=torch.float64)
    low = T.filter(x, torch.tensor([1.0, 0.0], dtype=torch.float64))
    box = torch.nn.functional.avg_pool2d(x, 2)
    torch.testing.assert_close(
        low, torch.nn.functional.interpolate(box, scale_factor=2, mode="nearest"), rtol=0, atol=1e-12
    )


def test_wavelet_autograd_and_float32():
    T = WaveletTransform((1, 16, 16), "db6", levels=2)
    x = torch.randn(2, 1, 16, 16, requires_grad=True)
    y = T.filter(x, torch.tensor([1.0, 0.5, 0.0]))
    y.pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert y.dtype == torch.float32


def test_fourier_filter_equals_numpy_radial_mask():
    H, W = 16, 12
    T = FourierTransform((1, H, W), edges=[3.0, 5.5])
    x = np.random.default_rng(0).standard_normal((2, 1, H, W))
    w = np.array([1.0, 0.3, 0.0])
    r = np.sqrt((np.fft.fftfreq(H) * H)[:, None] ** 2 + (np.fft.fftfreq(W) * W)[None, :] ** 2)
    mask = w[np.searchsorted([3.0, 5.5], r, side="right")]
    ref = np.fft.ifft2(np.fft.fft2(x) * mask).real
    out = T.filter(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)
    # the flat real coefficients carry the same radial labels
    c = T.analyze(torch.from_numpy(x))
    np.testing.assert_allclose(T.synthesize(c * torch.from_numpy(w)[T.bands]).numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 7, 9), (3, 6, 5)])
def test_fourier_odd_sizes_and_band_counts(shape):
    T = FourierTransform(shape, num_bands=2, split="count")
    x = torch.randn(2, *shape, dtype=torch.float64)
    torch.testing.assert_close(T.synthesize(T.analyze(x)), x, rtol=0, atol=1e-12)
    sizes = T.band_sizes()
    assert sizes.sum() == T.dim and (sizes > 0).all()


def test_fourier_dyadic_edges():
    T = FourierTransform((1, 32, 32), num_bands=3)
    assert T.edges == [4.0, 8.0]


def test_pca_matches_sklearn_up_to_sign():
    sk = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(0)
    data = rng.standard_normal((500, 1, 4, 4)) @ np.diag(np.linspace(3, 0.1, 4))
    T = PCATransform.fit(torch.from_numpy(data), num_bands=2)
    ref = sk.PCA().fit(data.reshape(500, -1))
    ours = T.basis.T.numpy()  # rows = components
    np.testing.assert_allclose(np.abs((ours * ref.components_).sum(1)), 1.0, atol=1e-8)
    np.testing.assert_allclose(T.variance.numpy(), ref.explained_variance_, rtol=1e-8)


def test_pca_few_samples_complete_basis_and_save_load(tmp_path):
    x = torch.randn(10, 1, 6, 6, dtype=torch.float64)
    T = PCATransform.fit(x, num_bands=2)
    U = T.basis
    torch.testing.assert_close(U.T @ U, torch.eye(36, dtype=torch.float64), rtol=0, atol=1e-12)
    assert (T.variance[9:] < 1e-10).all() and (T.variance[:9] > 1e-3).all()
    T.save(tmp_path / "pca.safetensors")
    T2 = PCATransform.load(tmp_path / "pca.safetensors")
    assert T2.sizes == T.sizes and T2.shape == T.shape
    torch.testing.assert_close(T2.analyze(x), T.analyze(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: WaveletTransform((1, 20, 20), "haar", levels=3), "divisible by 2"),
        (lambda: WaveletTransform((1, 16, 16), "nope"), "unknown wavelet"),
        (lambda: WaveletTransform((1, 16, 16), "bior2.2"), "not orthogonal"),
        (lambda: WaveletTransform((1, 16, 16), "haar", levels=2, num_bands=4), "num_bands=4"),
        (lambda: FourierTransform((1, 4, 4), num_bands=40), "num_bands"),
        (lambda: FourierTransform((1, 8, 8), edges=[3.0, 2.0]), "strictly increasing"),
        (lambda: FourierTransform((1, 8, 8), edges=[100.0]), "empty band"),
        (lambda: PCATransform.fit(torch.randn(5, 1, 2, 2), num_bands=9), "num_bands"),
        (lambda: PCATransform.fit(torch.full((5, 1, 2, 2), float("nan"))), "NaN"),
    ],
)
def test_bad_arguments_say_what_to_change(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_shape_mismatch_is_a_clear_error():
    T = FourierTransform((1, 8, 8))
    with pytest.raises(ValueError, match="shape=\\(3, 8, 8\\)"):
        T.analyze(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="filter weights"):
        T.filter(torch.randn(2, 1, 8, 8), torch.ones(5))


def test_pca_load_refuses_pickle(tmp_path):
    p = tmp_path / "evil.safetensors"
    import pickle

    p.write_bytes(pickle.dumps({"basis": 1}, protocol=4))
    with pytest.raises(ValueError, match="pickle"):
        PCATransform.load(p)


def test_pca_band_skipping_filter_equals_the_dense_one():
    from kflow.transforms.base import Transform

    x = torch.randn(300, 1, 8, 8, dtype=torch.float64).cumsum(-1)
    T = PCATransform.fit(x, num_bands=3)
    batch = torch.randn(40, 1, 8, 8, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    w1 = torch.rand(40, 3, generator=g, dtype=torch.float64)
    w1[torch.rand(40, 3, generator=g) < 0.4] = 0  # arbitrary zero patterns, also all-zero rows
    w2 = torch.zeros(40, 3, dtype=torch.float64)
    w2[torch.arange(40), torch.randint(0, 3, (40,), generator=g)] = 2.0  # one band per sample, like dx_k
    fast = T.filter_many(batch, [w1, w2, torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)])
    dense = Transform.filter_many(T, batch, [w1, w2, torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)])
    for a, b in zip(fast, dense):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
