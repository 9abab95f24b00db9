"""The optimisation schedule of a training loop: linear learning-rate warm-up, then a constant or
a cosine learning rate, and the EMA whose decay warms up too ((1 + step) / (10 + step), capped): a
fixed 0.999 would leave a short run's EMA near its initial weights."""

from __future__ import annotations

import math

import torch


def learning_rate(lr: float, warmup: int, step: int, schedule: str = "constant", steps: int = 1) -> float:
    """The learning rate of (0-based) `step` of `steps`: lr * (step + 1) / warmup during the
    warm-up, then lr (constant) or lr * (0.01 + 0.99 * (1 + cos(pi * done)) / 2) (cosine)."""
    s = step + 1
    if warmup > 0 and s < warmup:
        return lr * min(1.0, s / warmup)
    if schedule == "constant":
        return lr
    if schedule != "cosine":
        raise ValueError(f"lr_schedule={schedule!r} is not one of constant, cosine")
    done = (s - warmup) / max(steps - warmup, 1)
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))


def ema_decay(step: int, cap: float) -> float:
    return min(cap, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, in one foreach op; buffers are copied."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)
