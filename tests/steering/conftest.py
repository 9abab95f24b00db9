import pytest
import torch

from kflow.models import UNet, UNetConfig


@pytest.fixture
def tiny_model():
    """A small class-conditional UNet with every weight random (no zero-initialised output), so
    that the label and the input visibly change the velocity."""
    torch.manual_seed(0)
    m = (
        UNet(
            UNetConfig(
                in_channels=1,
                image_size=8,
                channels=8,
                channel_mult=[1, 2],
                num_res_blocks=1,
                attention_resolutions=[],
                num_classes=3,
            )
        )
        .double()
        .eval()
    )
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.15)
    return m
