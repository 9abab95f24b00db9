import pytest
import torch

from kflow import KFlowPath, WaveletTransform
from kflow.models import UNet, UNetConfig
from kflow.sampling import sample
from kflow.steering import ClassConditional, class_conditional


def inputs(n=4):
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64),
        torch.rand(n, generator=g, dtype=torch.float64),
        torch.tensor([0, 1, 2, 1][:n]),
    )


def test_scale_one_is_the_conditional_model(tiny_model):
    x, k, y = inputs()
    torch.testing.assert_close(ClassConditional(tiny_model, y, scale=1.0)(x, k), tiny_model(x, k, y), rtol=0, atol=0)


def test_guidance_extrapolates_from_unconditional(tiny_model):
    x, k, y = inputs()
    null = torch.full_like(y, 3)
    vc, vu = tiny_model(x, k, y), tiny_model(x, k, null)
    assert (vc - vu).abs().max() > 1e-3  # the label matters
    torch.testing.assert_close(
        ClassConditional(tiny_model, y, scale=2.5)(x, k), vu + 2.5 * (vc - vu), rtol=1e-10, atol=1e-10
    )
    torch.testing.assert_close(ClassConditional(tiny_model, y, scale=0.0)(x, k), vu, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_condition_dropping_endpoints(tiny_model, scale):
    path = KFlowPath(WaveletTransform((1, 8, 8), "haar", levels=2))
    y = torch.tensor([0, 1, 2])
    x_0 = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    run = lambda f: sample(tiny_model, path, 3, steps=9, x_0=x_0, y=y, velocity_for=f).x
    full = run(class_conditional(tiny_model, scale, keep_until=1.0))
    guided = run(lambda yb: ClassConditional(tiny_model, yb, scale))
    torch.testing.assert_close(full, guided, rtol=0, atol=0)
    uncond = sample(tiny_model, path, 3, steps=9, x_0=x_0).x  # y=None: the null class
    torch.testing.assert_close(run(class_conditional(tiny_model, scale, keep_until=0.0)), uncond, rtol=0, atol=0)
    mid = run(class_conditional(tiny_model, scale, keep_until=0.3))
    assert (mid - full).abs().max() > 1e-4 and (mid - uncond).abs().max() > 1e-4


def test_dropping_switches_exactly_at_keep_until(tiny_model):
    x, _, y = inputs(3)
    f = ClassConditional(tiny_model, y, scale=1.0, keep_until=0.3)
    k = torch.tensor([0.1, 0.3, 0.9], dtype=torch.float64)
    want = torch.cat([tiny_model(x[:1], k[:1], y[:1]), tiny_model(x[1:], k[1:], torch.full((2,), 3))])
    torch.testing.assert_close(f(x, k), want, rtol=1e-12, atol=1e-12)


def test_bad_uses_are_clear():
    unc = UNet(UNetConfig(image_size=8, channels=8, channel_mult=[1], num_res_blocks=1, attention_resolutions=[]))
    with pytest.raises(ValueError, match="unconditional"):
        ClassConditional(unc, torch.tensor([0]))
    cond = UNet(
        UNetConfig(
            image_size=8, channels=8, channel_mult=[1], num_res_blocks=1, attention_resolutions=[], num_classes=3
        )
    )
    with pytest.raises(ValueError, match="class 3 does not exist: classes are 0..2; labels given 3..3"):
        ClassConditional(cond, torch.tensor([3]))
    with pytest.raises(ValueError, match="keep_until"):
        ClassConditional(cond, torch.tensor([0]), keep_until=1.5)
