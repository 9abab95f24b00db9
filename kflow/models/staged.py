"""Band-localized compute: run the network at the resolution of the bands that have started.

While band b has not started (k before its window), its coefficients in x_k are the noise's,
independent of the data and of every other coefficient, and its target velocity is zero; so the
marginal velocity E[dx_k | x_k] depends on the started bands alone. For wavelet bands those span a
lower-resolution image (bands 0..s of B on H x W: the (H / 2^(B-1-s))-square approximation). This
wrapper maps x_k to that image, runs the backbone there, and lifts its output back (zero on the
bands not started): the same function the full-resolution network must learn, at a fraction of its
cost. It keeps the model interface model(x, k, y), so training, guidance, editing, restoration and
the studio run unchanged on top of it.

A batch with several stages (training draws k per sample) is grouped by stage, one backbone call
per group, all inside one forward (one DDP forward per step). stage_weights='own' gives every stage
a backbone of its own (same architecture, its own weights): each sees one image size and one
stretch of k only; 'coarse' gives stage 0 its own and the later stages one shared backbone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..utils.tensors import per_sample


class StagedModel(nn.Module):
    def __init__(self, backbone: nn.Module, path, own: list[nn.Module] | None = None, groups: list[int] | None = None):
        """backbone: the network of every stage; own: networks of their own instead (backbone is then
        stage 0's), one per stage or, with groups (stage -> index into own), fewer."""
        super().__init__()
        self.path = path
        if own is None:
            self.backbone = backbone
        else:
            groups = list(range(path.num_bands)) if groups is None else list(groups)
            if len(groups) != path.num_bands or sorted(set(groups)) != list(range(len(own))):
                raise ValueError(
                    f"{len(own)} backbones for {path.num_bands} stages (stage groups {groups}); "
                    "give one backbone per group and a group per stage"
                )
            self.backbones = nn.ModuleList(own)
            self.groups = groups
        self.cfg = backbone.cfg  # what wrappers read (num_classes) passes through
        T = path.transform
        path.stage_starts()  # refuses paths whose bands do not start coarse to fine
        self.shapes = [T.stage_shape(s) for s in range(T.num_bands)]  # refuses transforms without stage images
        patch = getattr(backbone.cfg, "patch_size", None)
        if patch is not None:  # a DiT patchifies every stage image
            bad = [shape for shape in self.shapes if shape[-1] % patch or shape[-2] % patch]
            if bad:
                raise ValueError(
                    f"stage 0 is a {bad[0][-2]}x{bad[0][-1]} image, not divisible by the DiT's patch size {patch}; "
                    "use a smaller model.dit.patch_size or fewer bands"
                )
        mult = getattr(backbone.cfg, "channel_mult", None)
        if mult is not None:  # a UNet halves the image len(mult) - 1 times
            f = 2 ** (len(mult) - 1)
            bad = [shape for shape in self.shapes if shape[-1] % f or shape[-2] % f]
            if bad:
                raise ValueError(
                    f"stage 0 is a {bad[0][-2]}x{bad[0][-1]} image and the UNet halves it {len(mult) - 1} times "
                    f"(it needs a multiple of {f}); use fewer model.unet.channel_mult levels or fewer bands"
                )

    def stage_of(self, k: Tensor) -> Tensor:
        return self.path.stage(k)

    def forward(self, x: Tensor, k: Tensor, y: Tensor | None = None) -> Tensor:
        k = per_sample(k, x)
        stage = self.stage_of(k)
        if bool((stage == stage[0]).all()):  # sampling: one stage per call, no gather
            return self._run(x, k, y, int(stage[0]))
        out = torch.zeros_like(x)
        for s in torch.unique(stage).tolist():
            idx = (stage == s).nonzero().flatten()
            out[idx] = self._run(x[idx], k[idx], None if y is None else y[idx], s).to(out.dtype)
        return out

    def _run(self, x: Tensor, k: Tensor, y: Tensor | None, s: int) -> Tensor:
        T = self.path.transform
        net = self.backbones[self.groups[s]] if "backbones" in self._modules else self.backbone  # keys as saved
        z = T.to_stage(x, s)  # (n, C, h, w)
        return T.from_stage(net(z, k, y), s)
