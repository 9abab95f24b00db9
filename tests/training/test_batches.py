"""Training batches drawn by stage: one stage per step with the k-density's mass, or a chosen share;
the default draws are unchanged bit for bit."""

import pytest
import torch

from kflow.data import ImageData
from kflow.path import KFlowPath, draw_k
from kflow.path.density import k_mass
from kflow.training.batches import BATCH, BatchDrawer, derive_seed
from kflow.transforms import WaveletTransform

STARTS = torch.tensor([0.0, 1 / 3, 2 / 3], dtype=torch.float64)


def drawer(**kw):
    data = ImageData(torch.randn(256, 1, 8, 8), torch.randint(3, (256,)), 3, "toy")
    return BatchDrawer(data, 64, 5, "logit_normal", torch.tensor([[0.0, 1.0]] * 3), **kw)


def stages_of(k):
    return (k.double()[:, None] >= STARTS[None, :]).sum(1) - 1


def test_default_batches_are_unchanged_bit_for_bit():
    """Without stage options the k of a step is draw_k's after the same draws as before."""
    d = drawer(stage_starts=STARTS)
    g = torch.Generator().manual_seed(derive_seed(5, 7, BATCH))
    torch.randn(64, 1, 8, 8, generator=g)  # x_0 comes first
    assert torch.equal(d(7).k, draw_k(64, "logit_normal", g))


def test_one_stage_per_step_with_the_densitys_mass():
    d = drawer(stage_starts=STARTS, stage_batches="one")
    per_step = [stages_of(d(step).k) for step in range(600)]
    assert all((s == s[0]).all() for s in per_step)  # every step one stage
    share = torch.bincount(torch.stack([s[0] for s in per_step]), minlength=3).double() / 600
    want = k_mass("logit_normal", torch.cat([STARTS, torch.ones(1, dtype=torch.float64)]))
    assert (share - want).abs().max() < 0.06  # binomial spread over 600 steps: std <= 0.02
    assert torch.equal(d(3).k, drawer(stage_starts=STARTS, stage_batches="one")(3).k)  # from the seed alone


def test_a_chosen_share_per_sample():
    d = drawer(stage_starts=STARTS, stage_share=[2.0, 1.0, 1.0])  # normalised to 0.5, 0.25, 0.25
    s = torch.cat([stages_of(d(step).k) for step in range(200)])
    share = torch.bincount(s, minlength=3).double() / len(s)
    assert (share - torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)).abs().max() < 0.02


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(stage_batches="some"), "stage_batches='some'"),
        (dict(stage_starts=STARTS, stage_share=[1.0, 1.0]), "must be 3 non-negative numbers"),
        (dict(stage_starts=STARTS, stage_share=[1.0, -1.0, 1.0]), "must be 3 non-negative numbers"),
        (dict(stage_batches="one"), "needs a path with stages"),
    ],
)
def test_bad_stage_options_are_refused(kw, msg):
    with pytest.raises(ValueError, match=msg):
        drawer(**kw)


def test_stages_of_the_path_are_the_drawers():
    path = KFlowPath(WaveletTransform((1, 16, 16), "haar", levels=2), windows=[[0, 1], [1 / 3, 1], [2 / 3, 1]])
    k = drawer(stage_starts=path.stage_starts(), stage_batches="one")(11).k
    assert torch.equal(path.stage(k.double()), stages_of(k))


def test_stratified_batches_hold_the_same_stage_counts_every_step():
    """round(p_s * 64) samples per stage at every step (largest remainders), k inside each stage."""
    d = drawer(stage_starts=STARTS, stage_batches="stratified")
    p = k_mass("logit_normal", torch.cat([STARTS, torch.ones(1, dtype=torch.float64)]))
    want = (p * 64).floor().long()
    want[torch.argsort(want - p * 64)[: 64 - int(want.sum())]] += 1
    for step in range(20):
        counts = torch.bincount(stages_of(d(step).k), minlength=3)
        assert torch.equal(counts, want) and counts.sum() == 64
    assert (want - p * 64).abs().max() < 1  # within one sample of the density's share
    d = drawer(stage_starts=STARTS, stage_batches="stratified", stage_share=[1.0, 0.0, 1.0])
    assert torch.equal(torch.bincount(stages_of(d(0).k), minlength=3), torch.tensor([32, 0, 32]))
