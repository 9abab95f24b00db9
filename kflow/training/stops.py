"""When training stops early: a non-finite loss or gradient (under train.nonfinite=stop), or the
wall-clock limit (train.max_minutes). Both are agreed by every rank, so DDP processes stop together."""

from __future__ import annotations

import time

import torch
import torch.distributed as dist
from torch import Tensor

from ..utils.checkpoint import latest_checkpoint
from ..utils.errors import TrainingError


def stop_if_nonfinite(first_bad: Tensor, distributed: bool, ckpt_dir) -> None:
    """Stop (keeping the last good checkpoint) if any step since the last check was non-finite;
    first_bad is the step of the first such step on the device, -1 for none (no sync until here)."""
    flag = first_bad.clone()
    if distributed:
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if flag.item() >= 0:
        ck = latest_checkpoint(ckpt_dir) if ckpt_dir is not None else None
        raise TrainingError(
            f"non-finite loss or gradient at step {flag.item()}; stopped. Last good checkpoint: "
            f"{ck or 'none'}. Lower train.lr or check the data, or set train.nonfinite=skip"
        )


def out_of_time(started: float, limit_minutes: float | None, device, distributed: bool) -> bool:
    """The wall-clock stop rule, agreed by all ranks."""
    if limit_minutes is None:
        return False
    stop = torch.tensor(float(time.time() - started > 60 * limit_minutes), device=device)
    if distributed:
        dist.all_reduce(stop)
    return stop.item() > 0
