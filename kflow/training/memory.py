"""Will a training batch fit in memory? On a CPU an oversized batch grows until the kernel's OOM
killer ends the process without a word, so the trainer measures first: the bytes autograd keeps
for backward after a forward pass of one sample (distinct storages, weights excluded), times the
batch, plus the weights, their gradients, Adam's two moments and the EMA copy. That is a lower
bound of the step's peak (backward adds transients: the peak RSS of a UNet step was about 1.25x
these bytes), so only a batch that certainly cannot fit is refused."""

from __future__ import annotations

import os

import torch

from ..utils.errors import TrainingError


def saved_bytes(model: torch.nn.Module, shape, num_classes: int, batch: int) -> int:
    """Bytes of the tensors autograd saves for backward in a forward pass of `batch` samples of `shape`."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        saved[s.data_ptr()] = s.nbytes()
        return t

    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    p = next(model.parameters())
    y = torch.zeros(batch, dtype=torch.long, device=p.device) if num_classes else None
    x = torch.zeros(batch, *shape, device=p.device, dtype=p.dtype)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x, torch.full((batch,), 0.5, device=p.device), y)
    return sum(n for ptr, n in saved.items() if ptr not in weights)


def activation_bytes(model: torch.nn.Module, shape, num_classes: int, batch: int) -> int:
    """Saved bytes at `batch`, from passes of 2 and 3 samples (a per-sample part and a fixed part;
    a batch of 1 is not used: some of its saved tensors are views that larger batches copy)."""
    two, three = saved_bytes(model, shape, num_classes, 2), saved_bytes(model, shape, num_classes, 3)
    return max(two + (three - two) * (batch - 2), 0)


def available_bytes() -> int | None:
    """MemAvailable of this machine (Linux), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def training_bytes(model: torch.nn.Module, shape, num_classes: int, batch: int) -> int:
    """At least the bytes one training step at `batch` needs: saved activations, plus weights,
    gradients, Adam's two moments and the EMA copy (5 copies of the parameters)."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return activation_bytes(model, shape, num_classes, batch) + 5 * params


def check_batch_fits(model, shape, num_classes: int, batch_size: int, world: int) -> None:
    """Refuse, in one line with the batch size that fits, a batch one step of which needs more memory
    than this machine has available (an oversized batch is killed by the OOM killer without a word)."""
    free = available_bytes()
    if free is None:
        return
    procs = int(os.environ.get("LOCAL_WORLD_SIZE", 1))  # processes of this run sharing the machine
    batch = batch_size // world
    need = procs * training_bytes(model, shape, num_classes, batch)
    if need > free:
        fits = max(1, int(free / (need / batch))) * world // procs
        raise TrainingError(
            f"train.batch_size={batch_size} needs about {need / 2**30:.1f} GiB for one step, "
            f"this machine has {free / 2**30:.1f} GiB available; use train.batch_size={fits} or less"
        )
