"""models/flops.py, the source of every FLOPs figure, against a hand count."""

import pytest
import torch
from torch import nn

from kflow import KFlowPath, WaveletTransform
from kflow.models.flops import FlopTally, flops_per_stage, stage_points, training_flops_per_image
from kflow.sampling import sample
from kflow.transforms import IdentityTransform


class ConvLinear(nn.Module):
    """conv 1 -> 4 channels (3x3) on 8x8, then a linear map of the 256 features back to the 64 pixels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.lin = nn.Linear(256, 64)

    def forward(self, x, k, y=None):
        return self.lin(self.conv(x).flatten(1)).reshape(x.shape)


CONV = 2 * (1 * 4 * 3 * 3) * (8 * 8)  # 2 FLOPs per multiply-add, one per weight and output pixel
LINEAR = 2 * 256 * 64


def test_forward_and_backward_match_a_hand_count():
    path = KFlowPath(IdentityTransform((1, 8, 8)))
    model = ConvLinear()
    assert flops_per_stage(model, path) == [CONV + LINEAR]
    # backward: the linear layer's input and weight gradients, the conv's weight gradient only (the
    # input x needs none)
    assert flops_per_stage(model, path, backward=True) == [CONV + LINEAR + CONV + 2 * LINEAR]
    assert training_flops_per_image(model, path, "uniform", draws=1000) == pytest.approx(2 * CONV + 3 * LINEAR)


def test_the_tally_multiplies_calls_by_their_stage_cost():
    path = KFlowPath(IdentityTransform((1, 8, 8)))
    tally = FlopTally(ConvLinear(), path)
    out = sample(tally, path, 3, steps=5, solver="heun", grid="uniform")
    assert out.nfe == 10
    assert tally.flops == 3 * 10 * (CONV + LINEAR)  # 3 samples x 10 model calls


def test_stage_points_lie_inside_their_stages():
    T = WaveletTransform((1, 8, 8), "haar", levels=2, num_bands=3)
    path = KFlowPath(T, windows=[[0.0, 1.0], [1 / 3, 1.0], [2 / 3, 1.0]])
    pts = torch.tensor(stage_points(path), dtype=torch.float64)
    assert pts.tolist() == pytest.approx([1 / 6, 1 / 2, 5 / 6])
    assert path.stage(pts).tolist() == [0, 1, 2]
