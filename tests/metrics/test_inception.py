"""The Inception-v3 FID loading path, exercised with a randomly initialised network (real weights
are never downloaded). Parity with pytorch-fid's own network: benchmarks/inception_parity.py."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

from kflow.metrics.inception import InceptionFeatures, convert_inception_weights


@pytest.fixture(scope="module")
def net_and_file(tmp_path_factory):
    torch.manual_seed(3)
    net = InceptionFeatures()
    for m in net.modules():  # non-trivial batch-norm statistics, so a wrong load shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("inc") / "inception.safetensors"
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.randn(1008, 2048), torch.randn(1008)  # the FID file's head
    save_file(state, str(path))
    return net, path


def test_loaded_network_gives_the_same_features(net_and_file):
    net, path = net_and_file
    loaded = InceptionFeatures.load(path)
    x = torch.rand(3, 1, 28, 28) * 2 - 1  # grey, any size: resized to 299 and repeated to RGB
    with torch.no_grad():
        a = net(x)
    b = loaded.embed(x, batch_size=2)
    assert a.shape == (3, 2048)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert loaded(x[:1]).std() > 0


def test_missing_weights_name_the_option(tmp_path):
    with pytest.raises(FileNotFoundError, match="--inception"):
        InceptionFeatures.load(tmp_path / "nope.safetensors")


def test_wrong_state_dict_is_one_clear_error(tmp_path):
    p = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(3, 3)}, str(p))
    with pytest.raises(ValueError, match="not an Inception-v3 FID state dict"):
        InceptionFeatures.load(p)


def test_pth_conversion_is_weights_only(tmp_path, net_and_file):
    net, _ = net_and_file
    good = tmp_path / "pt_inception.pth"
    torch.save(net.state_dict(), good)
    out = convert_inception_weights(good, tmp_path / "w.safetensors")
    x = torch.rand(2, 3, 40, 40) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(InceptionFeatures.load(out)(x), net(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="pickle/zip"):  # the .pth itself is never read by the metric
        InceptionFeatures.load(good)

    class Boom:
        def __reduce__(self):
            return (exec, ("open('" + str(tmp_path / "pwned") + "', 'w').write('x')",))

    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps({"w": Boom()}))
    with pytest.raises(ValueError, match="refusing to load"):
        convert_inception_weights(bad, tmp_path / "evil.safetensors")
    assert not (tmp_path / "pwned").exists()
