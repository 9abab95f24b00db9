"""Band-by-band pictures of generation: for a few samples, x_k at every band boundary, what has
been generated after each band, and each band's contribution to the final sample alone."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..sampling import sample
from ..sampling.sampler import SampleOutput


@dataclass
class BandStrip:
    states: Tensor  # (M + 1, n, *shape): x_k at each path boundary, k = 0 (noise) .. 1 (the sample)
    generated: Tensor  # (M, n, *shape): at each boundary after 0, x_k filtered onto the settled bands
    bands: Tensor  # (B, n, *shape): band b alone of the final sample (indexed by band, coarse first)
    boundaries: Tensor  # (M + 1,) the path's boundaries on the k axis (every window edge)

    def grid(self, what: str = "all") -> tuple[Tensor, list[str]]:
        """Images row-major (one row per sample) and the column titles. what: 'states' (x_k at each
        band boundary), 'generated' (noise, then what is generated after each band), 'bands' (the
        sample, then each band alone) or 'all' (states, then each band alone)."""
        ks = [f"x_k, k={k:.2f}" for k in self.boundaries.tolist()]
        B = len(self.bands)
        alone = [(self.bands[b], f"band {b} alone") for b in range(B)]
        cols = {
            "states": list(zip(self.states, ks)),
            "generated": [(self.states[0], ks[0])]
            + [(g, f"settled at k={k:.2f}") for g, k in zip(self.generated, self.boundaries[1:].tolist())],
            "bands": [(self.states[-1], "sample")] + alone,
            "all": list(zip(self.states, ks)) + alone,
        }
        if what not in cols:
            raise ValueError(f"unknown strip {what!r}; use one of {', '.join(cols)}")
        images = torch.stack([c for c, _ in cols[what]], 1)
        return images.reshape(-1, *images.shape[2:]), [t for _, t in cols[what]]


def band_strip(
    model, path, n: int = 8, steps: int = 50, seed: int = 0, y: Tensor | None = None, device=None
) -> BandStrip:
    out = sample(model, path, n, steps=steps, grid="band", seed=seed, record_bands=True, y=y, device=device)
    return strip_of(path, out)


def strip_of(path, out: SampleOutput) -> BandStrip:
    """The strip of a batch sampled with record_bands=True (on a band-aware grid)."""
    if out.band_states is None:
        raise ValueError("a band strip needs the states at the band boundaries: sample with record_bands=True")
    B = path.num_bands
    edges = path.boundaries()
    done = path.finished(edges[1:]).to(out.x.dtype)  # (M, B): bands settled at each boundary
    generated = [path.transform.filter(out.band_states[j + 1], done[j]) for j in range(len(done))]
    eye = torch.eye(B, dtype=out.x.dtype)
    bands = [path.transform.filter(out.x, eye[b]) for b in range(B)]
    return BandStrip(
        states=out.band_states, generated=torch.stack(generated), bands=torch.stack(bands), boundaries=edges
    )
