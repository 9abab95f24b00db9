import pytest
import torch

from kflow.models import DiT, DiTConfig, UNet, UNetConfig


def test_unet_shapes_conditioning_and_gradients():
    m = UNet(UNetConfig(in_channels=3, image_size=16, channels=16, channel_mult=[1, 2], num_res_blocks=1,
                        attention_resolutions=[8], num_classes=5))
    x, k, y = torch.randn(4, 3, 16, 16), torch.rand(4), torch.tensor([0, 1, 4, 5])  # 5 = null class
    out = m(x, k, y)
    assert out.shape == x.shape
    # zero-initialised output layer: the untrained model predicts 0; after one step it depends on y and k
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    target = torch.randn_like(x)
    for _ in range(3):  # zero-initialised layers: gradients reach the inner layers from step 2 on
        opt.zero_grad()
        (m(x, k, y) - target).pow(2).mean().backward()
        opt.step()
    assert not torch.allclose(m(x, k, y), m(x, k, None))
    assert not torch.allclose(m(x, k, y), m(x, k.flip(0), y))
    assert m(x, 0.5, None).shape == x.shape  # scalar k broadcast
    with pytest.raises(ValueError, match="class labels"):
        m(x, k, torch.tensor([0, 1, 2, 9]))


@pytest.mark.parametrize("experts", [0, 4])
def test_dit_forward_backward(experts):
    cfg = DiTConfig(in_channels=4, image_size=8, patch_size=2, size="XS", num_classes=3, num_experts=experts)
    m = DiT(cfg)
    x = torch.randn(2, 4, 8, 8)
    out = m(x, torch.rand(2), torch.tensor([0, 3]))
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # adaLN-Zero + zero output layer start at 0
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for _ in range(3):  # zero-initialised gates: experts see gradients from step 3 on
        opt.zero_grad()
        (m(x, torch.rand(2)) - x).pow(2).mean().backward()
        opt.step()
    assert torch.count_nonzero(m(x, torch.rand(2))) > 0
    if experts:
        assert any(e.fc1.weight.grad is not None and e.fc1.weight.grad.abs().sum() > 0 for e in m.blocks[0].mlp.experts)


def test_dit_bad_sizes():
    with pytest.raises(ValueError, match="unknown DiT size"):
        DiT(DiTConfig(size="XXL"))
    with pytest.raises(ValueError, match="divisible"):
        DiT(DiTConfig(image_size=10, patch_size=4))
