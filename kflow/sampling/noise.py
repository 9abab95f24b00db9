"""The one rule that turns a seed into the noise x_0 a sample starts from.

`kflow sample`, the studio, band strips, editing, restoration and noise splitting all draw x_0
here, so one seed gives one x_0 (and one image) wherever it is used. The draw is in pixel space,
in float32 on the CPU (the same numbers on any device), then cast: a float64 run starts from the
same noise as a float32 one. Code that needs the noise per band analyses this x_0 (the transform
is orthonormal, so its coefficients are white noise too).
"""

from __future__ import annotations

import torch
from torch import Tensor


def draw_x0(n: int, shape, seed: int = 0, dtype=torch.float32) -> Tensor:
    """(n, *shape) standard Gaussian noise from `seed`, on the CPU."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, *shape, generator=g, dtype=torch.float32).to(dtype)
