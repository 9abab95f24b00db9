"""The trainer's memory check: the per-sample estimate is what autograd really keeps, and a batch
that cannot fit is refused in one line before the first step (instead of the OOM killer's silence)."""

import re
from pathlib import Path

import torch

from kflow.cli.main import main
from kflow.config import load_config
from kflow.recipe import make_model, make_path, make_transform
from kflow.training.memory import activation_bytes, available_bytes, training_bytes

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "digits_tiny.yaml"


def tiny_model(size=8):
    cfg = load_config(TINY, [])
    shape = (1, size, size)
    return make_model(cfg, shape, 10, make_path(cfg, make_transform(cfg, shape))), shape


def test_the_estimate_is_what_a_real_batch_keeps_for_backward():
    """Saved tensors of a real forward pass of 16 samples (kept alive until backward runs) against
    the estimate extrapolated from passes of 1 and 2 samples."""
    model, shape = tiny_model()
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    B = 16
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(torch.randn(B, *shape), torch.rand(B), torch.zeros(B, dtype=torch.long)).pow(2).mean()
    real = sum(n for ptr, n in saved.items() if ptr not in weights)
    assert abs(activation_bytes(model, shape, 10, B) - real) <= 0.01 * real
    loss.backward()
    params = sum(p.numel() * 4 for p in model.parameters())
    assert training_bytes(model, shape, 10, B) == activation_bytes(model, shape, 10, B) + 5 * params


def test_the_estimate_grows_with_the_image():
    sizes = [activation_bytes(*tiny_model(s), 10, 64) for s in (8, 16)]
    assert 3 < sizes[1] / sizes[0] < 4.5  # a conv net's activations grow about with the pixels


def test_a_batch_that_cannot_fit_is_refused_before_the_first_step(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", str(TINY), f"out_dir={out}", "train.batch_size=100000000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "train.batch_size=100000000 needs about" in err, err
    suggested = int(re.search(r"use train.batch_size=(\d+) or less", err).group(1))
    assert 1 <= suggested < 100000000
    assert not (out / "checkpoints").exists() and available_bytes() is not None
