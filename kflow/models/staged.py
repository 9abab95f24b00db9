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

stage_calls='threads' splits a mixed batch's calls over CPU threads, forward and backward, one core
each (`_ThreadedCalls`): small stage images keep a second core busy poorly inside one call, so a
training step's wall-clock then follows its FLOPs. The gradients are summed in a fixed order (a run
resumes exactly). With one thread, on a GPU (which runs each call on all of itself) or where the
caller asks for a gradient in x, the calls run in turn.

full_from=s runs stages s.. on the full image instead (resolution='coarse': full_from=1, only the
coarse stage at its own size): the backbone then sees x_k as it is, and its output is projected onto
the started bands, so the function is still exactly zero where the target is. Stages that run at full
resolution on one backbone are one call (one shape), whatever their stage.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor, nn

from ..utils.tensors import per_sample
from . import STAGE_CALLS, STAGE_ENTRIES


class StagedModel(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        path,
        own: list[nn.Module] | None = None,
        groups: list[int] | None = None,
        full_from: int | None = None,
        entry: str = "input",
        stage_calls: str = "serial",
    ):
        """backbone: the network of every stage; own: networks of their own instead (backbone is then
        stage 0's), one per stage or, with groups (stage -> index into own), fewer. full_from: the
        first stage that runs at full resolution (default: none does). entry: 'input' (every image at
        the backbone's first layer) or 'level' (at the UNet level of its size). stage_calls: 'serial' or 'threads'
        (a mixed batch's calls split over CPU threads)."""
        super().__init__()
        self.path = path
        self.full_from = path.num_bands if full_from is None else full_from
        if not 1 <= self.full_from <= path.num_bands:
            raise ValueError(f"full_from={full_from}: give a stage in 1..{path.num_bands}")
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
        # stage -> its backbone call: its own, or the first full-resolution stage on the same backbone
        groups = self.groups if own is not None else [0] * path.num_bands
        full = range(self.full_from, path.num_bands)
        self.calls = [
            s if s < self.full_from else min(t for t in full if groups[t] == groups[s]) for s in range(path.num_bands)
        ]
        self.cfg = backbone.cfg  # what wrappers read (num_classes) passes through
        if stage_calls not in STAGE_CALLS:
            raise ValueError(f"stage_calls={stage_calls!r}: use one of {', '.join(STAGE_CALLS)}")
        self.stage_calls = stage_calls
        T = path.transform
        path.stage_starts()  # refuses paths whose bands do not start coarse to fine
        # the image each stage's backbone sees (refuses transforms without stage images)
        self.shapes = [T.stage_shape(s) if s < self.full_from else tuple(T.shape) for s in range(T.num_bands)]
        if entry not in STAGE_ENTRIES:
            raise ValueError(f"entry={entry!r}: use one of {', '.join(STAGE_ENTRIES)}")
        self.levels = entry_levels(self.shapes, groups) if entry == "level" else [0] * T.num_bands
        # per sample, what a call of each stage costs on a thread (pixels x its backbone's parameters)
        size = [sum(p.numel() for p in self._net(s).parameters()) for s in range(T.num_bands)]
        self.call_cost = [math.prod(self.shapes[s][-2:]) * size[s] for s in range(T.num_bands)]
        for s, lv in enumerate(self.levels):
            net = self._net(s)
            if lv and lv not in getattr(net.cfg, "entry_levels", []):
                raise ValueError(
                    f"stage {s} enters its backbone at level {lv}, which takes no image there: "
                    f"build it with entry_levels={sorted({v for v in self.levels if v})} (a UNet)"
                )
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

    def _call(self, stage: Tensor) -> Tensor:
        """(N,) which backbone call a sample joins (self.calls)."""
        if self.full_from == self.path.num_bands:
            return stage
        return torch.as_tensor(self.calls, device=stage.device)[stage]

    def forward(self, x: Tensor, k: Tensor, y: Tensor | None = None) -> Tensor:
        k = per_sample(k, x)
        stage = self.stage_of(k)
        call = self._call(stage)
        if bool((call == call[0]).all()):  # sampling: one stage per call, no gather
            return self._run(x, k, y, int(call[0]), stage)
        # threads for the weights' gradients (training); a caller differentiating through x gets serial calls
        threads = self.stage_calls == "threads" and x.device.type == "cpu" and not x.requires_grad
        plan = _thread_plan(self, call) if threads else None
        if plan is not None:
            if torch.is_grad_enabled():
                return _ThreadedCalls.apply(self, x, k, y, stage, plan, _ANCHOR)
            return _threaded_forward(self, x, k, y, stage, plan)[0]
        out = torch.zeros_like(x)
        for c in torch.unique(call).tolist():
            idx = (call == c).nonzero().flatten()
            out[idx] = self._run(x[idx], k[idx], None if y is None else y[idx], c, stage[idx]).to(out.dtype)
        return out

    def _net(self, s: int) -> nn.Module:
        return self.backbones[self.groups[s]] if "backbones" in self._modules else self.backbone  # keys as saved

    def _run(self, x: Tensor, k: Tensor, y: Tensor | None, s: int, stage: Tensor) -> Tensor:
        T = self.path.transform
        net = self._net(s)
        if s < self.full_from:
            z = T.to_stage(x, s)  # (n, C, h, w)
            v = net(z, k, y, level=self.levels[s]) if self.levels[s] else net(z, k, y)
            return T.from_stage(v, s)
        v = net(x, k, y)  # (n, C, H, W): stages s.. of this backbone, at full resolution
        out = v.clone() if bool((stage < T.num_bands - 1).any()) else v
        for t in torch.unique(stage).tolist():
            if t < T.num_bands - 1:  # keep the started bands 0..t; the last stage has them all
                idx = (stage == t).nonzero().flatten()
                out[idx] = T.from_stage(T.to_stage(v[idx], t), t)
        return out


def entry_levels(shapes: list[tuple], groups: list[int] | None = None) -> list[int]:
    """Stage -> the UNet level its image enters its backbone at (groups: stage -> backbone; None: one
    backbone): log2 of how much smaller it is than the largest image that backbone sees."""
    groups = [0] * len(shapes) if groups is None else groups
    top = {g: max(shapes[s][-1] for s in range(len(shapes)) if groups[s] == g) for g in set(groups)}
    levels = [(top[groups[s]] // shape[-1]).bit_length() - 1 for s, shape in enumerate(shapes)]
    if any(top[groups[s]] != shape[-1] << lv for s, (shape, lv) in enumerate(zip(shapes, levels))):
        raise ValueError(f"stage images {[shape[-1] for shape in shapes]} are not halvings of each other")
    return levels


# The calls on threads (stage_calls='threads'). One custom autograd node spans the batch: the calls
# are shared out over the threads by cost (_thread_plan) and each thread builds its own graph; the
# node's backward differentiates each graph on its own thread (the CPU autograd engine works on the
# thread that asks, so the backward passes proceed at once) into per-thread gradients, which the
# calling thread adds up in thread order: a fixed summation order, so a run resumes exactly, and
# weights used by several threads are no problem.
_POOL: ThreadPoolExecutor | None = None
_ANCHOR = torch.zeros((), requires_grad=True)  # makes the node's output require grad (x does not)


def _submit(fn, autocast: tuple):
    """Run fn on a worker thread with one core (under OpenMP a thread's count is its own)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max(2, os.cpu_count() or 2), thread_name_prefix="kflow-stage")

    def work():
        torch.set_num_threads(1)
        dev, on, dtype = autocast  # autocast and grad mode are per thread: carried over
        with torch.enable_grad(), torch.autocast(dev, dtype=dtype, enabled=on):
            return fn()

    return _POOL.submit(work)


def _thread_plan(model: StagedModel, call: Tensor) -> list[list[tuple[int, Tensor]]] | None:
    """Per thread, [(call, sample index)]: the calls, costliest first, poured into get_num_threads()
    threads of equal cost (samples x pixels x parameters of the call's backbone, which FLOPs follow),
    a call split where a thread fills up: equal work with the fewest extra calls (each call has a
    fixed cost of its own). None with one thread."""
    n = torch.get_num_threads()
    if n < 2:
        return None
    idx = {c: (call == c).nonzero().flatten() for c in torch.unique(call).tolist()}
    per = {c: model.call_cost[c] for c in idx}
    target = sum(len(i) * per[c] for c, i in idx.items()) / n
    plan: list[list[tuple[int, Tensor]]] = [[]]
    load = 0.0
    for c in sorted(idx, key=lambda c: -len(idx[c]) * per[c]):
        i = idx[c]
        while len(i):
            m = len(i) if len(plan) == n else min(len(i), round((target - load) / per[c]))
            if m > 0:
                plan[-1].append((c, i[:m]))
                load += m * per[c]
                i = i[m:]
            if len(i):  # this thread is full
                plan.append([])
                load = 0.0
    plan = [p for p in plan if p]
    return plan if len(plan) > 1 else None


def _threaded_forward(model: StagedModel, x, k, y, stage, plan):
    """-> (out, per thread [(output, sample index)]): each thread's calls in turn, one core each."""
    dev = x.device.type
    autocast = (dev, torch.is_autocast_enabled(dev), torch.get_autocast_dtype(dev))

    def run(calls):
        return [(model._run(x[i], k[i], None if y is None else y[i], c, stage[i]), i) for c, i in calls]

    parts = [f.result() for f in [_submit(lambda p=p: run(p), autocast) for p in plan]]
    out = torch.zeros_like(x)
    for part in parts:
        for v, i in part:
            out[i] = v.detach().to(out.dtype)
    return out, parts


class _ThreadedCalls(torch.autograd.Function):
    @staticmethod
    def forward(ctx, model, x, k, y, stage, plan, anchor):
        out, ctx.parts = _threaded_forward(model, x, k, y, stage, plan)
        ctx.params = [p for p in model.parameters() if p.requires_grad]
        return out

    @staticmethod
    def backward(ctx, grad):
        params, no_autocast = ctx.params, (grad.device.type, False, torch.float32)

        def differentiate(part):
            outs, grads = [v for v, _ in part], [grad[i].to(v.dtype) for v, i in part]
            return torch.autograd.grad(outs, params, grads, allow_unused=True)

        per_thread = [j.result() for j in [_submit(lambda p=p: differentiate(p), no_autocast) for p in ctx.parts]]
        ctx.parts = None  # the graphs are spent
        for p, gs in zip(params, zip(*per_thread)):
            gs = [g for g in gs if g is not None]
            if gs:
                total = gs[0]
                for g in gs[1:]:  # in thread order: the same sum every step
                    total = total + g
                p.grad = total if p.grad is None else p.grad + total
        return (None,) * 7
