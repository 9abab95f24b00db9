"""Deterministic batches: every random number of a training step comes from a seed derived from
(run seed, step, purpose), and the data order from (run seed, epoch). A resumed run therefore
replays exactly the steps it missed, and every DDP rank draws the whole global batch's
randomness and keeps its own slice (the same global batch as one process would see)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..data import ImageData
from ..path import draw_k
from ..path.density import STAGE_BATCHES, draw_k_between, k_mass
from ..utils.errors import ConfigError
from ..utils.tensors import append_dims

# purposes mixed into a step's seed, so that the draws of one step never share a stream
INIT, BATCH, DROPOUT = -1, 1, 2


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers: the FNV-1a hash (offset basis 1469598103934665603, prime
    1099511628211) over each part's low 48 bits. Cheap, deterministic across platforms and Python
    versions (unlike hash()), and neighbouring steps give unrelated seeds."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


@dataclass
class Batch:
    x_1: Tensor  # (B, C, H, W) data
    x_0: Tensor  # (B, C, H, W) noise
    k: Tensor  # (B,)
    y: Tensor | None  # (B,) labels, the null class where dropped


class BatchDrawer:
    """The global batch of any step, drawn on the CPU from the seed alone."""

    def __init__(
        self,
        data: ImageData,
        batch_size: int,
        seed: int,
        k_density: str,
        windows: Tensor,
        label_dropout: float = 0.0,
        hflip: bool = False,
        stage_starts: Tensor | None = None,
        stage_batches: str = "mixed",
        stage_share: list[float] | None = None,
    ):
        """stage_starts (S,): where each stage of a staged model begins. Stage probabilities p are
        stage_share, by default the k-density's mass of each stage; k is then drawn from the density
        inside the stage. 'one': every step draws one stage (one resolution per step); 'stratified':
        every step holds round(p_s * batch) samples of stage s (the same shapes every step);
        'mixed' with stage_share: each sample's stage drawn with p."""
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.k_density, self.windows, self.label_dropout, self.hflip = k_density, windows, label_dropout, hflip
        if stage_batches not in STAGE_BATCHES:
            raise ValueError(f"stage_batches={stage_batches!r}: use one of {', '.join(STAGE_BATCHES)}")
        self.stage_batches, self.stage_edges, self.stage_p = stage_batches, None, None
        if stage_batches != "mixed" or stage_share is not None:
            if stage_starts is None:
                raise ValueError("drawing k by stage needs a path with stages (model.resolution=stage or coarse)")
            edges = torch.cat([stage_starts.double(), torch.ones(1, dtype=torch.float64)])
            p = k_mass(k_density, edges) if stage_share is None else torch.as_tensor(stage_share, dtype=torch.float64)
            if len(p) != len(stage_starts) or not torch.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
                raise ValueError(
                    f"stage_share {p.tolist()} must be {len(stage_starts)} non-negative numbers, one per stage"
                )
            self.stage_edges, self.stage_p = edges, p / p.sum()

    @classmethod
    def for_run(cls, cfg, data: ImageData, path) -> BatchDrawer:
        """The drawer of a run's config (a staged model's stages from its path)."""
        t = cfg.train
        stages = path.stage_starts() if cfg.model.resolution != "full" else None
        try:
            return cls(
                data,
                t.batch_size,
                t.seed,
                t.k_density,
                path.windows(),
                t.label_dropout,
                cfg.data.hflip,
                stage_starts=stages,
                stage_batches=t.stage_batches,
                stage_share=t.stage_share,
            )
        except ValueError as e:
            raise ConfigError(f"train.stage_batches / train.stage_share: {e}") from None

    def indices(self, step: int) -> Tensor:
        """Dataset indices of the global batch of `step` (epoch permutations from the seed)."""
        N, B = len(self.data), self.batch_size
        start = step * B
        out, filled = [], 0
        while filled < B:
            epoch, offset = divmod(start + filled, N)
            perm = torch.randperm(N, generator=torch.Generator().manual_seed(derive_seed(self.seed, epoch)))
            take = perm[offset : offset + B - filled]
            out.append(take)
            filled += len(take)
        return torch.cat(out)

    def __call__(self, step: int) -> Batch:
        B = self.batch_size
        g = torch.Generator().manual_seed(derive_seed(self.seed, step, BATCH))
        idx = self.indices(step)
        x_1 = self.data.x[idx]
        if self.hflip:
            flip = torch.rand(B, generator=g) < 0.5
            x_1 = torch.where(append_dims(flip, x_1.dim()), x_1.flip(-1), x_1)
        x_0 = torch.randn(x_1.shape, generator=g)
        k = self._draw_k(B, g)
        y = None
        if self.data.num_classes > 0 and self.data.y is not None:
            y = self.data.y[idx].clone()
            y[torch.rand(B, generator=g) < self.label_dropout] = self.data.num_classes  # null class
        return Batch(x_1, x_0, k, y)

    def _draw_k(self, n: int, g: torch.Generator) -> Tensor:
        if self.stage_p is None:
            return draw_k(n, self.k_density, g, windows=self.windows)
        if self.stage_batches == "stratified":  # round(p_s n) samples of stage s, largest remainders up
            want = self.stage_p * n
            counts = want.floor().long()
            counts[torch.argsort(counts - want)[: n - int(counts.sum())]] += 1
            s = torch.repeat_interleave(torch.arange(len(counts)), counts)
        else:
            one = self.stage_batches == "one"
            s = torch.multinomial(self.stage_p, 1 if one else n, replacement=True, generator=g).expand(n)
        return draw_k_between(n, self.k_density, self.stage_edges[s], self.stage_edges[s + 1], g)


def rank_slice(batch, rank: int, world: int, device) -> tuple:
    """(x_1, x_0, k, y) of this rank's slice of a global batch, on the device. The batch is drawn on
    the CPU (the same numbers on any device and rank); on CUDA it goes through pinned memory without
    blocking, so the host prepares step s + 1 while the GPU runs s."""
    n = len(batch.x_1)
    lo, hi = rank * n // world, (rank + 1) * n // world

    def move(a):
        if a is None or torch.device(device).type != "cuda":
            return None if a is None else a[lo:hi]
        return a[lo:hi].pin_memory().to(device, non_blocking=True)

    return tuple(move(a) for a in (batch.x_1, batch.x_0, batch.k, batch.y))
