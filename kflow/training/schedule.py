"""The optimisation schedule of a training loop: linear learning-rate warm-up, and the EMA whose
decay warms up too ((1 + step) / (10 + step), capped): a fixed 0.999 would leave a short run's
EMA near its initial weights."""

from __future__ import annotations

import torch


def warmup_lr(lr: float, warmup: int, step: int) -> float:
    """The learning rate at `step`: lr * (step + 1) / warmup during the warm-up, lr after."""
    return lr * min(1.0, (step + 1) / warmup) if warmup > 0 else lr


def ema_decay(step: int, cap: float) -> float:
    return min(cap, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, in one foreach op; buffers are copied."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)
