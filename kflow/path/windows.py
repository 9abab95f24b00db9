"""Band windows as numbers: where each band moves in k. The path and the model's k-embedding both
read a band's schedule from here, so the two can never disagree.

windows: (B, 2) tensor of [start, end] per band; k: (N,). Every function returns (N, B).
"""

from __future__ import annotations

from torch import Tensor


def local_time(k: Tensor, windows: Tensor) -> Tensor:
    """t_b = clip((k - s_b) / (e_b - s_b), 0, 1): 0 before band b's window, 1 after it."""
    s, e = windows[:, 0], windows[:, 1]
    return ((k[:, None] - s[None, :]) / (e - s)[None, :]).clamp(0, 1)


def moving(k: Tensor, windows: Tensor) -> Tensor:
    """bool: k inside band b's window [s_b, e_b) (a window that ends at 1 is closed there)."""
    s, e = windows[:, 0], windows[:, 1]
    return (k[:, None] >= s[None, :]) & ((k[:, None] < e[None, :]) | (e[None, :] >= 1))
