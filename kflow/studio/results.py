"""What a studio job returns: the panels the page shows, a one-line message, the .npz arrays."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from torch import Tensor


@dataclass
class Panel:
    title: str
    images: Tensor  # (rows * cols, C, H, W) in [-1, 1], row-major
    rows: int


@dataclass
class Result:
    kind: str  # generate | edit | restore
    panels: list[Panel]  # what the page shows, the main output first
    message: str  # one line: what was done (NFE, PSNR, seconds)
    arrays: dict  # the .npz download
    noise: Tensor | None = None  # (N, D) float64 noise coefficients of a generated batch

    def png(self, i: int, scale: int = 3) -> bytes:
        from ..viz.images import grid_image

        buf = io.BytesIO()
        grid_image(self.panels[i].images, self.panels[i].rows, scale).save(buf, format="PNG")
        return buf.getvalue()

    def npz(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: v.numpy() if isinstance(v, Tensor) else v for k, v in self.arrays.items()})
        return buf.getvalue()
