"""A compact ADM-style UNet: residual blocks with group norm, scale-shift conditioning on the
k (+ class) embedding, optional self-attention at chosen resolutions.

entry_levels lets a smaller image enter at the level of its own size (an image 2^l times smaller at
level l) and leave there, through an input conv and an output head of that level's own: the levels
below are the same weights the full-size image passes through, so every weight sees one spatial
scale whatever the image's size (a nested UNet: stages of a staged model share one backbone)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils.tensors import per_sample
from .embeddings import ClassEmbedding, KEmbedding


@dataclass
class UNetConfig:
    in_channels: int = 1
    image_size: int = 32
    channels: int = 32
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 2])
    num_res_blocks: int = 2
    attention_resolutions: list[int] = field(default_factory=lambda: [8])
    num_heads: int = 4
    dropout: float = 0.0
    num_classes: int = 0  # 0: unconditional
    band_edges: list[float] = field(default_factory=list)  # set from the path when model.k_embedding=band
    band_windows: list[list[float]] = field(default_factory=list)  # set from the path when model.k_embedding=window
    entry_levels: list[int] = field(default_factory=list)  # set from the path when model.stage_entry=level


def _norm(c: int) -> nn.GroupNorm:
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if c % g == 0 and c // g >= 2 or g == 1)
    return nn.GroupNorm(groups, c)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, c: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm, self.qkv, self.out = _norm(c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
        return x + self.out(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch, emb_dim = cfg.channels, 4 * cfg.channels
        self.k_emb = KEmbedding(emb_dim, band_edges=cfg.band_edges, band_windows=cfg.band_windows)
        self.y_emb = ClassEmbedding(cfg.num_classes, emb_dim) if cfg.num_classes > 0 else None
        self.inp = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.down, skips, res, c = nn.ModuleList(), [ch], cfg.image_size, ch
        for i, m in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                blk = nn.ModuleList([ResBlock(c, ch * m, emb_dim, cfg.dropout)])
                c = ch * m
                if res in cfg.attention_resolutions:
                    blk.append(Attention(c, cfg.num_heads))
                self.down.append(blk)
                skips.append(c)
            if i < len(cfg.channel_mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))
                skips.append(c)
                res //= 2
        self.mid = nn.ModuleList(
            [ResBlock(c, c, emb_dim, cfg.dropout), Attention(c, cfg.num_heads), ResBlock(c, c, emb_dim, cfg.dropout)]
        )
        self.up = nn.ModuleList()
        for i, m in reversed(list(enumerate(cfg.channel_mult))):
            for j in range(cfg.num_res_blocks + 1):
                blk = nn.ModuleList([ResBlock(c + skips.pop(), ch * m, emb_dim, cfg.dropout)])
                c = ch * m
                if res in cfg.attention_resolutions:
                    blk.append(Attention(c, cfg.num_heads))
                if i > 0 and j == cfg.num_res_blocks:
                    blk.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    blk.append(nn.Conv2d(c, c, 3, padding=1))
                    res *= 2
                self.up.append(blk)
        self.out = self._head(c)
        # built last, so a UNet without them draws its weights exactly as before
        L, mult = len(cfg.channel_mult), cfg.channel_mult
        bad = [lv for lv in cfg.entry_levels if not 1 <= lv < L]
        if bad:
            raise ValueError(f"entry level {bad[0]}: a UNet with {L} levels takes images at levels 1..{L - 1}")
        self.entries = nn.ModuleDict(
            {str(lv): nn.Conv2d(cfg.in_channels, ch * mult[lv - 1], 3, padding=1) for lv in cfg.entry_levels}
        )
        self.exits = nn.ModuleDict({str(lv): self._head(ch * mult[lv]) for lv in cfg.entry_levels})

    def _head(self, c: int) -> nn.Sequential:
        head = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, self.cfg.in_channels, 3, padding=1))
        nn.init.zeros_(head[-1].weight)
        nn.init.zeros_(head[-1].bias)
        return head

    @staticmethod
    def _run(blk: nn.ModuleList, h: Tensor, emb: Tensor) -> Tensor:
        for layer in blk:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        return h

    def forward(self, x: Tensor, k, y: Tensor | None = None, level: int = 0) -> Tensor:
        """x (B, C, H, W), k (B,) or scalar in [0, 1], y (B,) labels or None -> velocity (B, C, H, W).
        level l > 0 (one of cfg.entry_levels): x is (B, C, H / 2^l, W / 2^l) and enters at level l."""
        emb = self.k_emb(per_sample(k, x).float())  # (B,) k in float32 for the embedding
        if self.y_emb is not None:
            emb = emb + self.y_emb(y, x.shape[0], x.device)
        emb = emb.to(x.dtype) if not torch.is_autocast_enabled() else emb
        if level and str(level) not in self.entries:
            raise ValueError(f"level={level}: this UNet takes images at levels {[0, *self.cfg.entry_levels]}")
        per_level = self.cfg.num_res_blocks + 1  # blocks per level, down (res blocks, downsample) and up
        down, up = self.down[level * per_level :], self.up[: len(self.up) - level * per_level]
        h = self.entries[str(level)](x) if level else self.inp(x)  # level l: what level l - 1 hands down
        hs = [h]
        for blk in down:
            h = self._run(blk, h, emb)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        for i, blk in enumerate(up):
            if level and i == len(up) - 1:  # level l's last block: no upsampling to level l - 1
                blk = [layer for layer in blk if isinstance(layer, (ResBlock, Attention))]
            h = self._run(blk, torch.cat([h, hs.pop()], dim=1), emb)
        return self.exits[str(level)](h) if level else self.out(h)
