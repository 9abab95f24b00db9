import numpy as np
import pytest
import torch

from kflow.metrics import FeatureStats, cdr, frechet_distance, precision_recall
from kflow.metrics.classifier import ClassifierInfo, FeatureClassifier


def fd_scipy(a, b):
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    return ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)


@pytest.mark.parametrize("d", [2, 16, 64])
def test_fd_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    a = rng.standard_normal((500, d)) @ rng.standard_normal((d, d))
    b = rng.standard_normal((400, d)) * 1.3 + 0.5
    ours = frechet_distance(FeatureStats.of(a), FeatureStats.of(b))
    assert ours == pytest.approx(fd_scipy(a, b), rel=1e-6)


def test_fd_closed_form_and_zero():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2000, 3))
    assert frechet_distance(FeatureStats.of(a), FeatureStats.of(a)) == pytest.approx(0, abs=1e-9)
    # isotropic Gaussians: FD = |dmu|^2 + d (s1 - s2)^2 for covariances s^2 I
    s1 = FeatureStats(np.zeros(3), np.eye(3) * 4.0, 10)
    s2 = FeatureStats(np.ones(3), np.eye(3) * 1.0, 10)
    assert frechet_distance(s1, s2) == pytest.approx(3 + 3 * (2 - 1) ** 2)


def brute_pr(real, fake, k):
    def radii(x):
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]

    rr, rf = radii(real), radii(fake)
    d_fr = np.linalg.norm(fake[:, None] - real[None], axis=-1)
    precision = np.mean([(d_fr[i] <= rr).any() for i in range(len(fake))])
    recall = np.mean([(d_fr[:, j] <= rf).any() for j in range(len(real))])
    return precision, recall


def test_precision_recall_matches_brute_force():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((150, 5))
    fake = rng.standard_normal((120, 5)) * 0.5 + 0.7
    pr = precision_recall(real, fake, k=3)
    p, r = brute_pr(real, fake, 3)
    assert pr.precision == pytest.approx(p) and pr.recall == pytest.approx(r)
    assert 0 < pr.recall < pr.precision < 1  # narrow fake set: precise, poor coverage


def test_cdr():
    assert cdr({0: 2.0, 1: 3.0}, {0: 1.0, 1: 3.0}) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        cdr({0: 1.0}, {1: 1.0})


def test_classifier_save_load(tmp_path):
    m = FeatureClassifier(ClassifierInfo("digits", 1, 8, 10, width=8, feature_dim=16, test_accuracy=0.5))
    x = torch.randn(5, 1, 8, 8)
    m.eval()
    m.save(tmp_path / "c.safetensors")
    m2 = FeatureClassifier.load(tmp_path / "c.safetensors")
    assert m2.info == m.info
    torch.testing.assert_close(m2.embed(x), m.embed(x), rtol=0, atol=0)
    assert m2.embed(x).shape == (5, 16)


def test_classifier_learns_digits(tmp_path):
    from kflow.metrics import train_classifier

    m = train_classifier("digits", tmp_path / "c.safetensors", epochs=4, image_size=8, log=lambda s: None)
    assert m.info.test_accuracy > 0.85
    assert FeatureClassifier.load(tmp_path / "c.safetensors").info.test_accuracy == m.info.test_accuracy


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_reference_caches_are_recomputed_not_used(tmp_path, monkeypatch, capsys, damage):
    """Altered bytes would change the FD without a word; a truncated file would be a library error."""
    from kflow.metrics import reference_features, train_classifier

    monkeypatch.setenv("KFLOW_CACHE", str(tmp_path / "cache"))
    m = train_classifier("digits", tmp_path / "c.safetensors", epochs=1, image_size=8, log=lambda s: None)
    ref, _ = reference_features(m, tmp_path / "c.safetensors", "digits", "test", image_size=8)
    (cached,) = (tmp_path / "cache" / "refstats").glob("*.safetensors")
    data = bytearray(cached.read_bytes())
    if damage == "flip":
        data[-7] ^= 0x40  # one bit of one feature
    else:
        data = data[: len(data) // 2]
    cached.write_bytes(bytes(data))
    capsys.readouterr()
    again, _ = reference_features(m, tmp_path / "c.safetensors", "digits", "test", image_size=8)
    assert "damaged; recomputing" in capsys.readouterr().out
    assert torch.equal(again, ref)
    third, _ = reference_features(m, tmp_path / "c.safetensors", "digits", "test", image_size=8)  # cached again
    assert torch.equal(third, ref) and "damaged" not in capsys.readouterr().out
