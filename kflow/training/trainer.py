"""The training loop: flow matching on a K-Flow path with AdamW + warmup, clipping, EMA,
atomic checkpoints and exact resume, DDP under torchrun. The run-folder policy lives in
run_folder.py, the deterministic batches (what makes resume exact) in batches.py, the device and
process group in utils/devices.py.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from ..config import Config
from ..data import ImageData, load_dataset
from ..recipe import make_band_scale, make_model, make_path, make_transform
from ..runs import ToImage
from ..sampling.sampler import sample
from ..steering.guidance import classes_in_turn, guided
from ..utils.atomic import atomic_write_json, remove_temp_files
from ..utils.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_latest_checkpoint,
    load_optimizer,
    load_state,
    save_checkpoint,
)
from ..utils.devices import join_processes
from ..utils.errors import TrainingError
from ..utils.lock import FolderLock
from .batches import DROPOUT, INIT, BatchDrawer, derive_seed
from .logger import RunLogger
from .loss import FlowMatchingLoss
from .run_folder import check_same_run, claim_folder


@dataclass
class TrainResult:
    step: int
    loss: float  # mean loss over the last log window
    images_per_s: float
    checkpoint: Path | None
    out_dir: Path


class Trainer:
    def __init__(self, cfg: Config, resume: bool = False, overwrite: bool = False):
        """resume: continue the run in cfg.out_dir (its settings must match, but for RESUMABLE ones);
        overwrite: delete the run in cfg.out_dir first. Without either, a folder that already holds
        a run is refused: a run folder belongs to one run."""
        self.lock = None
        try:
            self._build(copy.deepcopy(cfg), resume, overwrite)  # resolved settings go into the run's own copy
        except BaseException:
            self.release()  # a refused run leaves the folder to the next command
            raise

    def _build(self, cfg: Config, resume: bool, overwrite: bool) -> None:
        self.cfg = cfg
        procs = join_processes(cfg.train.device)  # under torchrun: the process group, DDP below
        self.device, self.rank, self.world, self.distributed = procs.device, procs.rank, procs.world, procs.distributed
        if cfg.train.batch_size % self.world:
            raise TrainingError(
                f"train.batch_size={cfg.train.batch_size} is not divisible by the {self.world} processes; "
                "choose a multiple"
            )
        self.out = Path(cfg.out_dir)
        self.ckpt_dir = self.out / "checkpoints"
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            if not os.access(self.out, os.W_OK):
                raise TrainingError(f"cannot write to {self.out}; choose another out_dir")
            # one command per run folder, held until fit() ends: a second `kflow train` is refused
            # before it touches anything, and what a killed writer left can be removed safely
            self.lock = FolderLock(self.out, "out_dir").acquire()
            remove_temp_files(self.ckpt_dir, "ckpt-")  # left by a process killed while saving
            claim_folder(self.out, resume, overwrite)

        d = cfg.data
        self.data = load_dataset(d.name, "train", d.root, d.image_size, d.channels, d.limit)
        if not d.labels:
            self.data = ImageData(self.data.x, None, 0, self.data.name)
        shape = tuple(self.data.x.shape[1:])
        pca_file = self.out / "pca.safetensors"
        self.transform = make_transform(cfg, shape, self.data.x, pca_file if resume else None)
        self.scale = make_band_scale(cfg, self.transform, self.data.x)
        if self.scale is not None:  # the model learns per-band normalised data; samples are mapped back
            cfg.transform.band_scale = self.scale.rms.tolist()  # resolved: 'rms' becomes the measured values
            self.data = ImageData(self.scale.normalize(self.data.x), self.data.y, self.data.num_classes, self.data.name)
        self.to_image = ToImage(cfg, self.scale, device=self.device)
        self.path = make_path(cfg, self.transform, self.data.x)
        cfg.path.allocation = self.path.allocation  # resolved: 'energy' becomes explicit weights
        self.loss_fn = FlowMatchingLoss(self.path, cfg.train.band_loss_weights, cfg.train.cond_aug)
        torch.manual_seed(derive_seed(cfg.train.seed, INIT))  # the initial weights depend on the seed alone
        self.model = make_model(cfg, shape, self.data.num_classes, self.path).to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        t = cfg.train
        fused = self.device.type == "cuda"
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay, fused=fused or None
        )
        self.batches = BatchDrawer(
            self.data, t.batch_size, t.seed, t.k_density, self.path.windows(), t.label_dropout, cfg.data.hflip
        )
        self.step = 0
        if resume:
            ck = load_latest_checkpoint(self.ckpt_dir)  # verified: a corrupted newest one is skipped
            if ck is None:
                others = sorted(p.name for p in self.ckpt_dir.glob("*.safetensors"))
                if others:  # renamed or foreign files: resuming from step 0 beside them would be a surprise
                    raise TrainingError(
                        f"--resume: {self.ckpt_dir} holds {', '.join(others[:3])} but no ckpt-<8-digit step>"
                        ".safetensors; rename the checkpoint back to that form, or train into a new out_dir"
                    )
                if (self.out / "config.json").exists():  # killed before its first checkpoint
                    try:
                        saved = json.loads((self.out / "config.json").read_text(encoding="utf-8"))
                    except ValueError:  # not UTF-8, or not JSON
                        raise TrainingError(
                            f"{self.out / 'config.json'} is not readable JSON; restore it or train into a new out_dir"
                        ) from None
                    check_same_run(saved, cfg.to_dict(), "config.json")
                if self.rank == 0:
                    print(f"no checkpoint in {self.ckpt_dir}; starting from step 0")
            else:
                self._restore(ck)
        self.net = self.model
        if self.distributed:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if t.compile:
            self.net = torch.compile(self.net)
        self.amp = self.device.type == "cuda" and t.amp in ("auto", "bf16") or (t.amp == "bf16")
        if self.device.type == "cpu":  # an oversized batch is killed by the OOM killer without a word
            self._check_memory(shape)
        if self.rank == 0:
            atomic_write_json(self.out / "config.json", cfg.to_dict())
            if cfg.transform.name == "pca" and not pca_file.exists():
                self.transform.save(pca_file)

    def release(self) -> None:
        """Let other commands use the run folder (fit() does this when it ends)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _check_memory(self, shape) -> None:
        from .memory import available_bytes, training_bytes

        free = available_bytes()
        if free is None:
            return
        procs = int(os.environ.get("LOCAL_WORLD_SIZE", 1))  # processes of this run sharing the machine
        batch = self.cfg.train.batch_size // self.world
        need = procs * training_bytes(self.model, shape, self.data.num_classes, batch)
        if need > free:
            per = need / batch
            fits = max(1, int(free / per)) * self.world // procs
            raise TrainingError(
                f"train.batch_size={self.cfg.train.batch_size} needs about {need / 2**30:.1f} GiB for one step, "
                f"this machine has {free / 2**30:.1f} GiB available; use train.batch_size={fits} or less"
            )

    def _restore(self, ck) -> None:
        path = ck.path
        check_same_run(ck.meta.get("config", {}), self.cfg.to_dict(), path.name)
        load_state(self.model, ck.state("model"), "model")
        load_state(self.ema, ck.state("ema"), "EMA")
        load_optimizer(self.opt, ck.state("optim"), ck.meta["optimizer"])
        torch.set_rng_state(ck.tensors["rng.cpu"])
        self.step = int(ck.meta["step"])
        if self.rank == 0:
            print(f"resumed from {path} at step {self.step}")

    def _batch(self, step: int):
        """This rank's slice of the global batch of `step`, on the device."""
        b = self.batches(step)
        B = self.cfg.train.batch_size
        lo, hi = self.rank * B // self.world, (self.rank + 1) * B // self.world
        return tuple(None if a is None else self._to_device(a[lo:hi]) for a in (b.x_1, b.x_0, b.k, b.y))

    def _to_device(self, a: Tensor) -> Tensor:
        """The batch is drawn on the CPU (the same numbers on any device and rank). On CUDA it goes
        through pinned memory without blocking, so the host prepares step s + 1 while the GPU runs s."""
        if self.device.type != "cuda":
            return a
        return a.pin_memory().to(self.device, non_blocking=True)

    def _lr(self, step: int) -> float:
        t = self.cfg.train
        return t.lr * min(1.0, (step + 1) / t.warmup) if t.warmup > 0 else t.lr

    @torch.no_grad()
    def _update_ema(self) -> None:
        d = min(self.cfg.train.ema_decay, (1 + self.step) / (10 + self.step))
        torch._foreach_lerp_(list(self.ema.parameters()), [p.detach() for p in self.model.parameters()], 1 - d)
        for e, b in zip(self.ema.buffers(), self.model.buffers()):
            e.copy_(b)

    def _check_finite(self, first_bad: Tensor) -> None:
        """Stop (keeping the last good checkpoint) if any step since the last check was non-finite."""
        flag = first_bad.clone()
        if self.distributed:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() >= 0:
            ck = latest_checkpoint(self.ckpt_dir)
            raise TrainingError(
                f"non-finite loss or gradient at step {flag.item()}; stopped. Last good checkpoint: "
                f"{ck or 'none'}. Lower train.lr or check the data, or set train.nonfinite=skip"
            )

    def save(self) -> Path | None:
        if self.rank != 0:
            return None
        path = self.ckpt_dir / f"ckpt-{self.step:08d}.safetensors"
        epoch, offset = divmod(self.step * self.cfg.train.batch_size, len(self.data))
        meta = {
            "step": self.step,
            "epoch": epoch,
            "position": offset,
            "config": self.cfg.to_dict(),
            "num_classes": self.data.num_classes,
            "shape": list(self.transform.shape),
        }
        try:
            save_checkpoint(path, self.model, self.ema, self.opt, meta)
        except OSError as e:  # disk full, quota, permissions: the previous checkpoint is untouched
            last = list_checkpoints(self.ckpt_dir)
            raise TrainingError(
                f"could not write checkpoint {path.name} ({e.strerror or e}); free space or choose another "
                f"out_dir, then --resume from {last[-1].name if last else 'the start'}"
            ) from None
        for old in list_checkpoints(self.ckpt_dir)[: -self.cfg.train.keep_checkpoints]:
            old.unlink(missing_ok=True)
        return path

    def sample_image_grid(self, name: str) -> Path | None:
        if self.rank != 0:
            return None
        from ..viz.images import save_image_grid

        s = self.cfg.sample
        n = s.num_grid
        y = classes_in_turn(n, self.data.num_classes)
        self.ema.eval()
        velocity = guided(self.ema, y, s.guidance, s.keep_class_until) if y is not None else None  # else ignored
        out = sample(
            self.ema,
            self.path,
            n,
            solver=s.solver,
            steps=s.steps,
            grid=s.grid,
            project=s.project,
            y=y,
            seed=1234,
            device=self.device,
            velocity_for=velocity,
        )
        if not torch.isfinite(out.x).all():
            print(f"warning: the samples at step {self.step} contain NaN/Inf; not writing {name}")
            return None
        return save_image_grid(self.to_image(out.x), self.out / "samples" / name)

    # ---------------------------------------------------------------------------------------
    def _step(self) -> tuple[Tensor, bool]:
        """One optimisation step at self.step: (the loss on the device, whether it was skipped as
        non-finite under train.nonfinite=skip). Under 'stop' a non-finite step is only remembered
        (on the device, no sync) and looked at before the next log or save."""
        t = self.cfg.train
        torch.manual_seed(derive_seed(t.seed, self.step, DROPOUT, self.rank))  # dropout etc.
        x_1, x_0, k, y = self._batch(self.step)
        for group in self.opt.param_groups:
            group["lr"] = self._lr(self.step)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.loss_fn(self.net, x_1, x_0, k, y)
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip if t.grad_clip > 0 else math.inf)
        bad = torch.stack([out.loss.detach(), gnorm.detach()]).isfinite().all().logical_not()
        if t.nonfinite == "skip":  # deciding per step needs the flag on the host: one sync per step
            bad = bad.float()
            if self.distributed:
                dist.all_reduce(bad)
            if bad.item() > 0:
                if self.rank == 0:
                    print(
                        f"warning: non-finite loss or gradient at step {self.step} "
                        f"(loss={out.loss.item():.4g}, grad norm={gnorm.item():.4g}); step skipped"
                    )
                self.step += 1
                return out.loss.detach(), True
        else:
            self.first_bad = torch.where(bad & (self.first_bad < 0), self.step, self.first_bad)
        self.opt.step()
        self._update_ema()
        self.step += 1
        return out.loss.detach(), False

    def _out_of_time(self, started: float) -> bool:
        """The wall-clock stop rule (train.max_minutes), agreed by all ranks so they stop together."""
        limit = self.cfg.train.max_minutes
        if limit is None:
            return False
        stop = torch.tensor(float(time.time() - started > 60 * limit), device=self.device)
        if self.distributed:
            dist.all_reduce(stop)
        return stop.item() > 0

    def fit(self, until: int | None = None) -> TrainResult:
        """Train to cfg.train.steps (or stop early at step `until` without a final save, as a
        kill after the last checkpoint would)."""
        t = self.cfg.train
        end = t.steps if until is None else min(until, t.steps)
        logger = RunLogger(self.out, self.step, t.steps, t.max_minutes, active=self.rank == 0)
        window, window_t, window_steps = [], time.time(), 0
        last_ckpt, last_loss, images_per_s = None, float("nan"), 0.0
        self.model.train()
        self.first_bad = torch.tensor(-1, device=self.device)  # step of the first non-finite loss/gradient
        try:
            while self.step < end:
                try:
                    loss, skipped = self._step()
                except torch.cuda.OutOfMemoryError:
                    raise TrainingError(
                        f"CUDA out of memory at train.batch_size={t.batch_size} on {self.device}; lower "
                        "train.batch_size, or turn on model.dit.grad_checkpointing for DiTs"
                    ) from None
                if skipped:
                    continue
                window.append(loss)
                window_steps += 1
                logger.stepped(self.step)
                at_log = self.step % t.log_every == 0 or self.step == end
                if t.nonfinite == "stop" and (at_log or self.step % t.ckpt_every == 0 or self.step == t.steps):
                    self._check_finite(self.first_bad)
                if at_log:
                    mean = torch.stack(window).mean()
                    if self.distributed:
                        dist.all_reduce(mean)
                        mean /= self.world
                    sps = window_steps / max(time.time() - window_t, 1e-9)
                    images_per_s = sps * t.batch_size
                    last_loss = mean.item()
                    logger.log(self.step, last_loss, self._lr(self.step - 1), sps, images_per_s)
                    window, window_t, window_steps = [], time.time(), 0
                if self.step % t.ckpt_every == 0 or self.step == t.steps:
                    last_ckpt = self.save() or last_ckpt
                if t.sample_every and self.step % t.sample_every == 0 and self.step != t.steps:
                    self.sample_image_grid(f"step_{self.step:08d}.png")
                    self.model.train()
                if at_log and self._out_of_time(logger.t0):  # checked with the logs: no extra sync
                    if self.rank == 0:
                        print(f"\nstopping at step {self.step}: train.max_minutes={t.max_minutes} reached")
                    last_ckpt = self.save() or last_ckpt
                    break
            if self.step == t.steps or (t.max_minutes is not None and until is None):
                self.sample_image_grid("final.png")
        finally:
            logger.close()
            self.release()
        return TrainResult(
            step=self.step, loss=last_loss, images_per_s=images_per_s, checkpoint=last_ckpt, out_dir=self.out
        )


def train(cfg: Config, resume: bool = False, overwrite: bool = False) -> TrainResult:
    trainer = Trainer(cfg, resume=resume, overwrite=overwrite)
    try:
        return trainer.fit()
    finally:
        if trainer.distributed and dist.is_initialized():
            dist.destroy_process_group()
