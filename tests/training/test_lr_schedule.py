"""The learning-rate schedule every training loop shares, and what it means for --resume."""

import math

import pytest

from kflow.config import Config
from kflow.run_identity import run_difference
from kflow.training.schedule import learning_rate


def test_constant_schedule_is_the_linear_warmup_then_lr_exactly():
    lr, warmup = 2e-3, 100
    for step in range(300):
        assert learning_rate(lr, warmup, step) == lr * min(1.0, (step + 1) / warmup)  # bit for bit
    assert learning_rate(lr, 0, 0) == lr


def test_cosine_schedule_goes_from_lr_to_one_percent():
    lr, warmup, steps = 1e-3, 10, 110
    lrs = [learning_rate(lr, warmup, s, "cosine", steps) for s in range(steps)]
    assert lrs[warmup - 1] == pytest.approx(lr) and lrs[-1] == pytest.approx(0.01 * lr)
    mid = warmup - 1 + (steps - warmup) // 2  # half-way through the decay: (1 + cos(pi / 2)) / 2
    assert lrs[mid] == pytest.approx(lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5))))
    assert all(a >= b for a, b in zip(lrs[warmup - 1 :], lrs[warmup:]))


def test_resuming_with_other_steps_is_refused_only_under_a_cosine_schedule():
    saved = Config().to_dict()
    longer = Config().to_dict()
    longer["train"]["steps"] = 5000
    assert run_difference(saved, longer) is None  # constant lr: more steps continue the same run
    for d in (saved, longer):
        d["train"]["lr_schedule"] = "cosine"
    assert run_difference(saved, longer) == ("train.steps", 1000, 5000)
