"""DiT: patchify, transformer blocks with adaLN-Zero conditioning on the k (+ class) embedding,
and an optional mixture-of-experts feed-forward (top-k routing over expert MLPs)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils.tensors import per_sample
from .embeddings import ClassEmbedding, KEmbedding

DIT_SIZES = {"S": (384, 12, 6), "B": (768, 12, 12), "L": (1024, 24, 16), "XS": (192, 6, 3)}  # width, depth, heads


@dataclass
class DiTConfig:
    in_channels: int = 4
    image_size: int = 32
    patch_size: int = 2
    size: str = "B"  # XS (tests), S, B, L
    mlp_ratio: float = 4.0
    num_classes: int = 0
    num_experts: int = 0  # 0: dense MLP; > 1: mixture of experts
    experts_per_token: int = 2
    grad_checkpointing: bool = False
    band_edges: list[float] = field(default_factory=list)  # set from the path when model.k_embedding=band
    band_windows: list[list[float]] = field(default_factory=list)  # set from the path when model.k_embedding=window


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class MoE(nn.Module):
    """Top-k token routing. Each expert runs only on the tokens routed to it (index_add scatter)."""

    def __init__(self, dim: int, hidden: int, num_experts: int, top_k: int):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"experts_per_token={top_k} must be in 1..num_experts={num_experts}")
        self.router = nn.Linear(dim, num_experts, bias=False)
        self.experts = nn.ModuleList(MLP(dim, hidden) for _ in range(num_experts))
        self.top_k = top_k

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        gates = self.router(x).softmax(-1)
        w, idx = gates.topk(self.top_k, dim=-1)
        w = w / w.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            tok, slot = (idx == e).nonzero(as_tuple=True)
            if tok.numel():
                out.index_add_(0, tok, expert(x[tok]) * w[tok, slot, None].to(x.dtype))
        return out.reshape(shape)


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, cfg: DiTConfig):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * cfg.mlp_ratio)
        self.mlp = MoE(dim, hidden, cfg.num_experts, cfg.experts_per_token) if cfg.num_experts > 1 else MLP(dim, hidden)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[-1].weight)  # adaLN-Zero: every block starts as the identity
        nn.init.zeros_(self.ada[-1].bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        s1, sc1, g1, s2, sc2, g2 = self.ada(c).chunk(6, dim=-1)
        B, T, D = x.shape
        q, k, v = (
            self.qkv(modulate(self.norm1(x), s1, sc1))
            .reshape(B, T, 3, self.heads, D // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, D)
        x = x + g1[:, None] * self.proj(a)
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), s2, sc2))


class DiT(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        if cfg.size not in DIT_SIZES:
            raise ValueError(f"unknown DiT size {cfg.size!r}; use one of {', '.join(DIT_SIZES)}")
        if cfg.image_size % cfg.patch_size:
            raise ValueError(f"image_size {cfg.image_size} is not divisible by patch_size {cfg.patch_size}")
        self.cfg = cfg
        dim, depth, heads = DIT_SIZES[cfg.size]
        p, n = cfg.patch_size, cfg.image_size // cfg.patch_size
        self.patch = nn.Conv2d(cfg.in_channels, dim, p, stride=p)
        self.register_buffer("pos", self._pos_embed(dim, n), persistent=False)
        self._coarse: dict[int, Tensor] = {}  # staged models: embeddings of the coarser token grids
        self.k_emb = KEmbedding(dim, freq_dim=256, band_edges=cfg.band_edges, band_windows=cfg.band_windows)
        self.y_emb = ClassEmbedding(cfg.num_classes, dim) if cfg.num_classes > 0 else None
        self.blocks = nn.ModuleList(DiTBlock(dim, heads, cfg) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.out = nn.Linear(dim, p * p * cfg.in_channels)
        for m in (self.ada[-1], self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    @staticmethod
    def _pos_embed(dim: int, n: int, full: int | None = None) -> Tensor:
        """Fixed 2D sin-cos position embedding (n*n, dim). A coarser grid of a staged model (n < full
        tokens a side) puts each token at the centre of the full-grid tokens it covers, so a token
        carries the same place in the image at every stage; n = full gives positions 0..n-1."""
        q = dim // 4
        omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
        step = 1.0 if full is None else full / n
        coord = (torch.arange(n, dtype=torch.float64) + 0.5) * step - 0.5
        yy, xx = torch.meshgrid(coord, coord, indexing="ij")
        parts = []
        for g in (yy.flatten(), xx.flatten()):
            a = g[:, None] * omega[None]
            parts += [a.sin(), a.cos()]
        return torch.cat(parts, dim=1).float()[None]

    def _pos_for(self, n: int, m: int) -> Tensor:
        """The position embedding of an n x m token grid: the built one, or a staged model's coarser one."""
        full = self.cfg.image_size // self.cfg.patch_size
        if n == m == full:
            return self.pos
        if n != m or n > full:
            raise ValueError(f"a DiT for {full}x{full} tokens got a {n}x{m} grid; give square images up to its size")
        if n not in self._coarse:
            self._coarse[n] = self._pos_embed(self.pos.shape[-1], n, full).to(self.pos.device)
        return self._coarse[n].to(self.pos.device)

    def forward(self, x: Tensor, k, y: Tensor | None = None) -> Tensor:
        B, C, H, W = x.shape
        p = self.cfg.patch_size
        h = self.patch(x).flatten(2).transpose(1, 2) + self._pos_for(H // p, W // p)  # (B, T, D)
        c = self.k_emb(per_sample(k, x).float())  # (B,) k in float32 for the embedding
        if self.y_emb is not None:
            c = c + self.y_emb(y, B, x.device)
        for blk in self.blocks:
            if self.cfg.grad_checkpointing and self.training:
                h = torch.utils.checkpoint.checkpoint(blk, h, c, use_reentrant=False)
            else:
                h = blk(h, c)
        shift, scale = self.ada(c).chunk(2, dim=-1)
        h = self.out(modulate(self.norm(h), shift, scale))  # (B, T, p*p*C)
        h = h.reshape(B, H // p, W // p, p, p, C).permute(0, 5, 1, 3, 2, 4)
        return h.reshape(B, C, H, W)
