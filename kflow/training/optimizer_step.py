"""One optimisation step, as every kflow training loop (images, molecules) takes it: the step's
learning rate (train.lr_schedule), backward, gradient clipping (train.grad_clip), the non-finite
rule (train.nonfinite), AdamW and the EMA (train.ema_decay)."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor

from .schedule import ema_decay, learning_rate, update_ema
from .stops import stop_if_nonfinite


def make_adamw(model: torch.nn.Module, train, device: torch.device) -> torch.optim.AdamW:
    """AdamW with the train section's settings; the fused kernel on CUDA or with train.adamw=fused."""
    fused = device.type == "cuda" or train.adamw == "fused"
    return torch.optim.AdamW(
        model.parameters(), lr=train.lr, betas=tuple(train.betas), weight_decay=train.weight_decay, fused=fused or None
    )


class OptimizerStep:
    def __init__(self, model: torch.nn.Module, ema: torch.nn.Module, opt, train, distributed: bool = False, rank=0):
        """train: a TrainConfig (lr, warmup, lr_schedule, steps, grad_clip, ema_decay, nonfinite)."""
        self.model, self.ema, self.opt, self.t = model, ema, opt, train
        self.distributed, self.rank = distributed, rank
        self.first_bad: Tensor | None = None  # step of the first non-finite loss/gradient, on the device

    def lr(self, step: int) -> float:
        t = self.t
        return learning_rate(t.lr, t.warmup, step, t.lr_schedule, t.steps)

    def __call__(self, loss: Tensor, step: int) -> bool:
        """Step on `loss` at (0-based) `step`; True when the step was skipped as non-finite
        (train.nonfinite=skip). Under 'stop' a non-finite step is only remembered (on the device,
        no sync) until check() looks at it before the next log or save."""
        t = self.t
        for group in self.opt.param_groups:
            group["lr"] = self.lr(step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip if t.grad_clip > 0 else math.inf)
        bad = torch.stack([loss.detach(), gnorm.detach()]).isfinite().all().logical_not()
        if t.nonfinite == "skip":  # deciding per step needs the flag on the host: one sync per step
            bad = bad.float()
            if self.distributed:
                dist.all_reduce(bad)
            if bad.item() > 0:
                if self.rank == 0:
                    print(
                        f"warning: non-finite loss or gradient at step {step} "
                        f"(loss={loss.item():.4g}, grad norm={gnorm.item():.4g}); step skipped"
                    )
                return True
        else:
            if self.first_bad is None:
                self.first_bad = torch.tensor(-1, device=loss.device)
            self.first_bad = torch.where(bad & (self.first_bad < 0), step, self.first_bad)
        self.opt.step()
        update_ema(self.ema, self.model, ema_decay(step, t.ema_decay))
        return False

    def check(self, ckpt_dir) -> None:
        """Under train.nonfinite=stop: stop the run if any step since the start was non-finite."""
        if self.first_bad is not None:
            stop_if_nonfinite(self.first_bad, self.distributed, ckpt_dir)
