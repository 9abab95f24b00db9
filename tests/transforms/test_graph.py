"""The graph Fourier transform: orthonormal, exact round trip, bands by graph frequency, DCT-II on
a path graph (scipy), per-sample graphs."""

import numpy as np
import pytest
import torch

from kflow.path import KFlowPath
from kflow.transforms.graph import GraphTransform, gaussian_weights, laplacian


def path_graph(V):
    W = torch.zeros(V, V, dtype=torch.float64)
    i = torch.arange(V - 1)
    W[i, i + 1] = W[i + 1, i] = 1
    return W


def test_orthonormal_round_trip_and_numpy_eigh():
    torch.manual_seed(0)
    P = torch.randn(17, 3, dtype=torch.float64)
    W = gaussian_weights(P)
    T = GraphTransform(W, features=6, num_bands=3)
    assert T.shape == (17, 6) and T.dim == 102 and T.band_sizes().tolist() == [6 * s for s in T.sizes]
    x = torch.randn(5, 17, 6, dtype=torch.float64)
    c = T.analyze(x)
    torch.testing.assert_close(T.synthesize(c), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(c.pow(2).sum(1), x.pow(2).flatten(1).sum(1), rtol=1e-12, atol=0)
    # the basis diagonalises numpy's Laplacian with numpy's eigenvalues, in ascending order
    L = np.diag(W.numpy().sum(1)) - W.numpy()
    evals = np.linalg.eigvalsh(L)
    U = T.basis.numpy()
    np.testing.assert_allclose(U.T @ L @ U, np.diag(evals), atol=1e-10)
    assert abs(evals[0]) < 1e-10  # connected graph: frequency 0 is the constant vector
    np.testing.assert_allclose(np.abs(U[:, 0]), np.full(17, 17**-0.5), atol=1e-10)


def test_path_graph_is_the_dct():
    from scipy.fft import dct

    V = 12
    T = GraphTransform(path_graph(V), features=1, num_bands=2)
    x = torch.randn(4, V, 1, dtype=torch.float64)
    ref = dct(x[..., 0].numpy(), type=2, norm="ortho", axis=-1)
    np.testing.assert_allclose(np.abs(T.analyze(x).numpy()), np.abs(ref), atol=1e-10)


def test_band_localisation():
    """An eigenvector placed on one feature lies in its own band only; the band filters sum to 1."""
    T = GraphTransform(gaussian_weights(torch.randn(17, 3, dtype=torch.float64)), features=2, num_bands=3)
    for j in (0, 5, 16):
        x = torch.zeros(1, 17, 2, dtype=torch.float64)
        x[0, :, 1] = T.basis[:, j]
        c = T.analyze(x)[0]
        band = T.bands[c.abs() > 1e-9].unique()
        assert band.tolist() == [T.bands[2 * j + 1].item()]
    x = torch.randn(3, 17, 2, dtype=torch.float64)
    parts = [T.filter(x, torch.nn.functional.one_hot(torch.tensor(b), 3).double()) for b in range(3)]
    torch.testing.assert_close(sum(parts), x, rtol=0, atol=1e-12)


def test_per_sample_graphs_and_the_path():
    """A batch of graphs: each sample uses its own basis; the K-Flow path runs on it unchanged."""
    P = torch.randn(4, 17, 3, dtype=torch.float64)
    T = GraphTransform(gaussian_weights(P), features=6, num_bands=3)
    x = torch.randn(4, 17, 6, dtype=torch.float64)
    c = T.analyze(x)
    for i in range(4):
        Ti = GraphTransform(gaussian_weights(P[i]), features=6, num_bands=3)
        torch.testing.assert_close(c[i : i + 1], Ti.analyze(x[i : i + 1]), rtol=0, atol=1e-12)
    path = KFlowPath(T, bump="linear")
    x_0, x_1 = torch.randn_like(x), torch.randn_like(x)
    s0 = path.sample(x_0, x_1, torch.zeros(4, dtype=torch.float64))
    s1 = path.sample(x_0, x_1, torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(s0.x_k, x_0, rtol=0, atol=1e-12)
    torch.testing.assert_close(s1.x_k, x_1, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="holds 4 per-sample graphs but got a batch of 2"):
        T.analyze(x[:2])


def test_normalized_laplacian_and_bad_weights():
    W = gaussian_weights(torch.randn(9, 3, dtype=torch.float64))
    L = laplacian(W, normalized=True)
    assert torch.linalg.eigvalsh(L).min() > -1e-12 and torch.linalg.eigvalsh(L).max() < 2 + 1e-12
    T = GraphTransform(W, normalized=True, num_bands=2, split="count")
    assert T.sizes == [5, 4]
    with pytest.raises(ValueError, match="symmetric and non-negative"):
        GraphTransform(torch.randn(5, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="split='radial'"):
        GraphTransform(W, split="radial")


def test_own_band_features():
    """Features kept out of the graph bands form one more band holding all their frequencies: the
    basis (and so the round trip) is unchanged, filtering that band keeps exactly those features."""
    W = gaussian_weights(torch.randn(17, 3, dtype=torch.float64))
    plain = GraphTransform(W, features=6, num_bands=3)
    T = GraphTransform(W, features=6, num_bands=3, own_band_features=(3, 4, 5))
    assert T.num_bands == 4 and T.band_sizes().tolist() == [3 * s for s in T.sizes] + [17 * 3]
    x = torch.randn(4, 17, 6, dtype=torch.float64)
    torch.testing.assert_close(T.analyze(x), plain.analyze(x), rtol=0, atol=0)
    torch.testing.assert_close(T.synthesize(T.analyze(x)), x, rtol=0, atol=1e-12)
    own = T.filter(x, torch.tensor([0.0, 0, 0, 1], dtype=torch.float64))
    torch.testing.assert_close(own[..., 3:], x[..., 3:], rtol=0, atol=1e-12)
    assert own[..., :3].abs().max() < 1e-12
    for bad in [(6,), (0, 1, 2, 3, 4, 5)]:
        with pytest.raises(ValueError, match="own_band_features"):
            GraphTransform(W, features=6, num_bands=3, own_band_features=bad)
