"""Train and evaluate an assembly flow (rigid FM or K-Flow) with the shared path and sampler.

x_0 is the start plus a little Gaussian noise in u (`start_noise`, Angstrom and radians), so that
repeated samples of one cluster differ and the best of several can be taken, as AssembleFlow
reports. Training keeps an EMA of the weights, follows a learning-rate schedule, writes resumable
checkpoints into a run folder (safetensors + JSON, atomically), and, with `eval_every`, scores the
EMA on validation clusters and keeps the best: the budget is chosen by the validation curve.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..config import ConfigError
from ..path import KFlowPath, draw_k
from ..sampling import FromEndpoint, sample
from ..training.batches import BATCH, derive_seed
from ..training.loop import LoopState, Validation, run_steps
from ..training.loss import LossOutput
from ..training.optimizer_step import OptimizerStep, make_adamw
from ..utils.devices import pick_device
from .clusters import Cluster, pair
from .config import AssemblyConfig
from .flow import AssemblyBatch, BoundAssembly, make_batch
from .metrics import AssemblyScores, clash_penalty, score_assemblies
from .model import make_net
from .relax import NO_RELAXATION, Relaxation, relax
from .rigid import so3_exp


def collate(items: list[AssemblyBatch]) -> AssemblyBatch:
    """Concatenate single-cluster batches, padding atoms to the largest molecule."""
    A = max(b.numbers.shape[2] for b in items)

    def pad(t, dims):  # pad the atom axis (dim 2) with zeros
        return torch.nn.functional.pad(t, (0, 0) * (dims - 3) + (0, A - t.shape[2])) if t.shape[2] < A else t

    return AssemblyBatch(
        numbers=torch.cat([pad(b.numbers, 3) for b in items]),
        local=torch.cat([pad(b.local, 4) for b in items]),
        t0=torch.cat([b.t0 for b in items]),
        R0=torch.cat([b.R0 for b in items]),
        u1=torch.cat([b.u1 for b in items]),
        target=torch.cat([pad(b.target, 4) for b in items]),
        graph_evals=torch.cat([b.graph_evals for b in items]),
        graph_basis=torch.cat([b.graph_basis for b in items]),
    )


class AssemblyLoss:
    """The flow matching loss on rigid poses, translation and rotation weighted apart, called as the
    images' FlowMatchingLoss is: loss(model, x_1, x_0, k) -> LossOutput, here with the model bound
    to its batch's molecules (BoundAssembly) and the path that batch's.

    target='velocity': || v - du_k/dk ||^2 on the path (the image models' loss), rotational part
    times rotation_weight. target='endpoint': the network's final poses against the crystal's,
    translation || t_hat - t_1 ||^2 plus rotation_weight times the chordal distance
    || R_hat - R_1 ||_F^2 / 2 (smooth at every angle, ~ the squared angle when small; a loss on
    rotation vectors would jump where log wraps at pi). Both are per molecule and coordinate means.
    steric_weight (endpoint only): plus that weight times the clash penalty of the predicted final
    atoms (metrics.clash_penalty at steric_distance)."""

    def __init__(
        self,
        path: KFlowPath,
        target: str = "velocity",
        rotation_weight: float = 1.0,
        steric_weight: float = 0.0,
        steric_distance: float = 1.5,
    ):
        self.path, self.target, self.rotation_weight = path, target, rotation_weight
        self.steric_weight, self.steric_distance = steric_weight, steric_distance

    def __call__(self, model: BoundAssembly, x_1: Tensor, x_0: Tensor, k: Tensor, y=None) -> LossOutput:
        s = self.path.sample(x_0, x_1, k)
        if self.target == "velocity":
            err = (model(s.x_k, s.k) - s.dx_k).pow(2)  # (N, M, 6)
            per = err[..., :3].mean((1, 2)) + self.rotation_weight * err[..., 3:].mean((1, 2))
        else:
            pose = model.endpoint_pose(s.x_k, s.k)
            b = model.batch
            t_1, R_1 = b.t0 + x_1[..., :3], b.R0 @ so3_exp(x_1[..., 3:])
            rot = (pose.R - R_1).pow(2).sum((-1, -2)) / 2  # (N, M)
            per = (pose.t - t_1).pow(2).mean((1, 2)) + self.rotation_weight * rot.mean(1) / 3
            if self.steric_weight:
                clash = clash_penalty(pose.atoms(b.local), b.numbers > 0, self.steric_distance)
                per = per + self.steric_weight * clash
        return LossOutput(loss=per.mean(), per_sample=per.detach(), band=s.band)


@dataclass
class AssemblyTraining:
    net: torch.nn.Module  # the weights to sample with: the best by validation, else the last (EMA)
    step: int  # steps trained
    best_step: int  # the step whose weights `net` holds
    curve: list[dict]  # validation scores: step, pm_atom, pm_center
    train_s: float


def train_assembly(
    clusters: list[Cluster],
    cfg: AssemblyConfig,
    out: str | Path | None = None,
    log=print,
    val: list[Cluster] | None = None,
    until: int | None = None,
    resume: bool = True,
    overwrite: bool = False,
) -> AssemblyTraining:
    """Train on `clusters`; with `out`, a run folder: resume from its newest checkpoint (a folder
    holding a run is refused when resume is False, unless overwrite) and write checkpoints, the
    validation curve and the selected weights there. `until` stops at that step (the schedule
    still spans cfg.train.steps), like a kill that a later call resumes."""
    from .runs import AssemblyRunFolder

    if cfg.eval_every and not val:
        raise ConfigError("eval_every > 0 needs validation clusters; pass val= or set eval_every=0")
    if cfg.pairing == "aligned":  # a rigid-overlay search per cluster: about 0.1 s each
        log(f"aligning {len(clusters)} crystal clusters with their starts (pairing=aligned)")
    clusters = pair(clusters, cfg.pairing)
    singles = [make_batch([c]) for c in clusters]
    val_set = val[: cfg.val_clusters] if val else []  # paired where they are sampled (generate)
    t = cfg.train
    torch.manual_seed(derive_seed(t.seed, -1))
    device = pick_device(t.device)
    net = make_net(cfg.net, cfg.band_windows()).to(device)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = make_adamw(net, t, device)
    folder = AssemblyRunFolder(out, cfg, resume, overwrite) if out is not None else None
    try:
        return _train(singles, val_set, cfg, net, ema, opt, folder, until, log, device)
    finally:
        if folder:
            folder.release()


class AssemblyTask:
    """Assembly training as a TrainTask of the shared loop (training/loop.py): a step's batch of
    clusters and its loss, the log line, validation on clusters (PM-atom + PM-center selects the
    weights), checkpoints into the run folder."""

    def __init__(self, singles, val_set, cfg: AssemblyConfig, net, ema, opt, folder, log, device):
        self.singles, self.val_set, self.cfg = singles, val_set, cfg
        self.net, self.ema, self.opt, self.folder, self.print, self.device = net, ema, opt, folder, log, device
        self.t0 = time.time()

    def loss(self, step: int) -> Tensor:
        cfg, t = self.cfg, self.cfg.train
        # step + 1: the seeds the measured runs (docs/molecules.md) drew their batches with
        gen = torch.Generator().manual_seed(derive_seed(t.seed, step + 1, BATCH))
        idx = torch.randint(len(self.singles), (t.batch_size,), generator=gen).tolist()
        b = collate([self.singles[i] for i in idx]).to(self.device)
        # drawn on the CPU, so a run's batches and noise are the same on any device
        x_0 = (cfg.start_noise * torch.randn(b.u1.shape, generator=gen)).to(self.device)
        k = draw_k(t.batch_size, t.k_density, gen).to(self.device)
        self.net.train()
        loss_fn = AssemblyLoss(cfg.path(b), cfg.target, cfg.rotation_weight, cfg.steric_weight, cfg.steric_distance)
        return loss_fn(BoundAssembly(self.net, b, cfg.target), b.u1, x_0, k).loss

    def log(self, step: int, loss: Tensor, lr: float, steps: int) -> None:
        took = time.time() - self.t0
        self.print(f"{self.cfg.flow} step {step}/{self.cfg.train.steps}: loss {loss.item():.4f} ({took:.0f} s)")

    def validate(self, step: int) -> Validation:
        s = evaluate_assembly(self.ema, self.val_set, self.cfg, samples=1, steps=10, seed=self.cfg.train.seed)
        self.print(f"  validation at step {step}: PM-atom {s.pm_atom:.3f}, PM-center {s.pm_center:.3f}")
        return Validation(dict(pm_atom=s.pm_atom, pm_center=s.pm_center), s.pm_atom + s.pm_center)

    def new_best(self, state: LoopState) -> None:
        if self.folder:
            self.folder.save_best(state.best_weights, state.best)

    def checkpoint(self, state: LoopState) -> None:
        if self.folder:
            self.folder.checkpoint(state, self.net, self.ema, self.opt, keep=self.cfg.train.keep_checkpoints)

    def after_step(self, step: int, logged: bool) -> bool:
        return False


def _train(singles, val_set, cfg, net, ema, opt, folder, until, log, device) -> AssemblyTraining:
    t = cfg.train
    optim = OptimizerStep(net, ema, opt, t)  # the image loop's step: lr schedule, clip, non-finite rule, EMA
    state = folder.resume(net, ema, opt) if folder else LoopState()
    task = AssemblyTask(singles, val_set, cfg, net, ema, opt, folder, log, device)
    ckpt_dir = folder.out / "checkpoints" if folder else None
    run_steps(task, optim, state, min(until or t.steps, t.steps), ckpt_dir, validate_every=cfg.eval_every)
    if state.best_weights is not None:
        ema.load_state_dict(state.best_weights)
    if folder and state.step == t.steps:
        folder.finish(ema, state.curve, state.best)
    return AssemblyTraining(
        net=ema.eval(),
        step=state.step,
        best_step=state.best["step"] if state.best else state.step,
        curve=state.curve,
        train_s=time.time() - task.t0,
    )


@torch.no_grad()
def evaluate_assembly(
    net,
    clusters: list[Cluster],
    cfg: AssemblyConfig,
    samples: int = 5,
    steps: int = 20,
    seed: int = 0,
    matched: bool = False,
    relaxation: Relaxation = NO_RELAXATION,
) -> AssemblyScores:
    """Best of `samples` per cluster (metrics.py), Euler `steps` on the band grid, then the clash
    relaxation (relax.py; off by default). Clusters are grouped by molecule size, so no padded atom
    enters a distance matrix. matched: also PM-center with the copies matched (metrics.pm_center_matched)."""
    net.eval()
    results, n_total = [], 0
    for group, u in generate(net, clusters, cfg, samples, steps, seed, relaxation):
        b = make_batch(group).to(u[0].device)
        x = torch.stack([b.atoms(x) for x in u])
        results.append((score_assemblies(x, b.target, matched=matched), len(group)))
        n_total += len(group)
    fields = ("pm_atom", "pm_center", "collision_rate", "separation_rate", *(("pm_center_matched",) if matched else ()))
    avg = {f: sum(getattr(r, f) * n for r, n in results) / n_total for f in fields}
    return AssemblyScores(**avg, clusters=n_total, samples_per_cluster=samples)


@torch.no_grad()
def generate(
    net,
    clusters: list[Cluster],
    cfg: AssemblyConfig,
    samples: int,
    steps: int,
    seed: int,
    relaxation: Relaxation = NO_RELAXATION,
):
    """Yield (clusters of one molecule size, [u (N, M, 6) per sample]): the sampled assemblies,
    relaxed (relax.py) when relaxation.steps > 0."""
    groups: dict[int, list[Cluster]] = {}
    for c in pair(clusters, cfg.pairing):
        groups.setdefault(c.numbers.shape[1], []).append(c)
    device = next(net.parameters()).device
    for _, group in sorted(groups.items()):
        b = make_batch(group).to(device)
        path = cfg.path(b)
        model = BoundAssembly(net, b, cfg.target)
        if cfg.target == "endpoint":
            model = FromEndpoint(model, path)
        outs = []
        for s in range(samples):
            x_0 = cfg.start_noise * torch.randn(b.u1.shape, generator=torch.Generator().manual_seed(seed + s))
            u = sample(model, path, len(group), x_0=x_0, steps=steps, device=device, batch_size=len(group)).x
            outs.append(relax(b, u, relaxation))
        yield group, outs
