"""Will a training batch fit in memory? On a CPU an oversized batch grows until the kernel's OOM
killer ends the process without a word, so the trainer measures first: one forward pass of a
single sample, summing the outputs of every leaf module (what backward keeps), scaled by the
batch and by the ratio of real peak memory to that sum (1.66 measured for the UNet on the CPU,
forward + backward, tests/training/test_memory.py)."""

from __future__ import annotations

import torch

PEAK_OVER_LEAF_OUTPUTS = 1.6  # slightly below the measured 1.66: refuse only what clearly cannot fit


def activation_bytes_per_sample(model: torch.nn.Module, shape, num_classes: int) -> int:
    """Bytes of leaf-module outputs in a forward pass of one sample of `shape` (C, H, W)."""
    total = 0

    def hook(_mod, _inp, out):
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel() * out.element_size()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    p = next(model.parameters())
    try:
        with torch.no_grad():
            y = torch.zeros(1, dtype=torch.long, device=p.device) if num_classes else None
            model(torch.zeros(1, *shape, device=p.device, dtype=p.dtype), torch.full((1,), 0.5, device=p.device), y)
    finally:
        for h in handles:
            h.remove()
    return total


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
    """Estimated peak bytes of one training step at `batch`: activations, plus weights, gradients,
    Adam's two moments and the EMA copy (5 copies of the parameters)."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    per_sample = activation_bytes_per_sample(model, shape, num_classes)
    return int(PEAK_OVER_LEAF_OUTPUTS * per_sample * batch) + 5 * params
