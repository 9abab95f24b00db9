"""Image training: flow matching on a K-Flow path, DDP under torchrun, through the shared step
loop (loop.py: AdamW + warmup, clipping, EMA, the non-finite rule, atomic checkpoints and exact
resume). The run-folder policy lives in run_folder.py, the deterministic batches (what makes resume
exact) in batches.py, the device and process group in utils/devices.py.
"""

from __future__ import annotations

import copy
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
from ..runs import ToImage, refuse_other_kind
from ..utils.atomic import atomic_write_json, remove_temp_files
from ..utils.checkpoint import (
    load_optimizer,
    load_state,
)
from ..utils.devices import join_processes
from ..utils.errors import ConfigError, TrainingError
from ..utils.lock import FolderLock
from .batches import DROPOUT, INIT, BatchDrawer, derive_seed, rank_slice
from .logger import RunLogger
from .loop import LoopState, run_steps
from .loss import FlowMatchingLoss
from .memory import check_batch_fits
from .optimizer_step import OptimizerStep, make_adamw
from .previews import preview_grid, save_preview
from .run_folder import check_layout, claim_folder, resumable_checkpoint, write_checkpoint
from .stops import out_of_time


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
        """In the order a run needs them: the processes and the run folder, the data and the path,
        the model and its optimiser, the resumed state, the wrappers, the saved config."""
        self.cfg = cfg
        self._claim_folder(resume, overwrite)
        self._load_data(resume)
        self._build_model()
        self.state = LoopState()
        if resume:
            self._resume()
        self._wrap()
        if self.rank == 0:
            atomic_write_json(self.out / "config.json", cfg.to_dict())
            if cfg.transform.name == "pca" and not self.pca_file.exists():
                self.transform.save(self.pca_file)

    def _claim_folder(self, resume: bool, overwrite: bool) -> None:
        cfg = self.cfg
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
            check_layout(self.out)
            self.out.mkdir(parents=True, exist_ok=True)
            if not os.access(self.out, os.W_OK):
                raise TrainingError(f"cannot write to {self.out}; choose another out_dir")
            # one command per run folder, held until fit() ends: a second `kflow train` is refused
            # before it touches anything, and what a killed writer left can be removed safely
            self.lock = FolderLock(self.out, "out_dir").acquire()
            refuse_other_kind(self.out, "kflow train")
            remove_temp_files(self.ckpt_dir, "ckpt-")  # left by a process killed while saving
            claim_folder(self.out, resume, overwrite)

    def _load_data(self, resume: bool) -> None:
        """The training images, the transform (a PCA basis fitted or reloaded), the band scale and the
        path; settings resolved from the data ('rms', 'energy') are written into the run's config."""
        cfg, d = self.cfg, self.cfg.data
        self.data = load_dataset(d.name, "train", d.root, d.image_size, d.channels, d.limit)
        if not d.labels:
            self.data = ImageData(self.data.x, None, 0, self.data.name)
        shape = tuple(self.data.x.shape[1:])
        self.pca_file = self.out / "pca.safetensors"
        self.transform = make_transform(cfg, shape, self.data.x, self.pca_file if resume else None)
        self.scale = make_band_scale(cfg, self.transform, self.data.x)
        if self.scale is not None:  # the model learns per-band normalised data; samples are mapped back
            cfg.transform.band_scale = self.scale.rms.tolist()  # resolved: 'rms' becomes the measured values
            self.data = ImageData(self.scale.normalize(self.data.x), self.data.y, self.data.num_classes, self.data.name)
        self.to_image = ToImage(cfg, self.scale, device=self.device)
        self.path = make_path(cfg, self.transform, self.data.x)
        cfg.path.allocation = self.path.allocation  # resolved: 'energy' becomes explicit weights

    def _build_model(self) -> None:
        cfg, shape = self.cfg, tuple(self.data.x.shape[1:])
        self.loss_fn = FlowMatchingLoss(self.path, cfg.train.band_loss_weights, cfg.train.cond_aug)
        torch.manual_seed(derive_seed(cfg.train.seed, INIT))  # the initial weights depend on the seed alone
        self.model = make_model(cfg, shape, self.data.num_classes, self.path).to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        t = cfg.train
        self.opt = make_adamw(self.model, t, self.device)
        self.optim = OptimizerStep(self.model, self.ema, self.opt, t, self.distributed, self.rank)
        self.batches = BatchDrawer.for_run(cfg, self.data, self.path)

    def _resume(self) -> None:
        """The newest sound checkpoint's state, or step 0 for a run killed before its first one."""
        ck = resumable_checkpoint(self.out, self.cfg.to_dict())
        if ck is None:
            if self.rank == 0:
                print(f"no checkpoint in {self.ckpt_dir}; starting from step 0")
        else:
            self._restore(ck)

    def _wrap(self) -> None:
        """DDP and torch.compile around the model, bf16 autocast, the CPU memory check."""
        t = self.cfg.train
        self.net = self.model
        if self.distributed and t.stage_calls == "threads":
            raise ConfigError(
                "train.stage_calls=threads runs backbones on threads of one process; under torchrun use serial"
            )
        if self.distributed:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if t.compile:
            self.net = torch.compile(self.net)
        self.amp = self.device.type == "cuda" and t.amp in ("auto", "bf16") or (t.amp == "bf16")
        if self.device.type == "cpu":  # an oversized batch is killed by the OOM killer without a word
            check_batch_fits(self.model, tuple(self.data.x.shape[1:]), self.data.num_classes, t.batch_size, self.world)

    def release(self) -> None:
        """Let other commands use the run folder (fit() does this when it ends)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _restore(self, ck) -> None:
        path = ck.path
        load_state(self.model, ck.state("model"), "model")
        load_state(self.ema, ck.state("ema"), "EMA")
        load_optimizer(self.opt, ck.state("optim"), ck.meta["optimizer"])
        torch.set_rng_state(ck.tensors["rng.cpu"])
        self.state = LoopState(step=int(ck.meta["step"]))
        if self.rank == 0:
            print(f"resumed from {path} at step {self.step}")

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
        write_checkpoint(path, self.model, self.ema, self.opt, meta, self.cfg.train.keep_checkpoints)
        return path

    def sample_image_grid(self, name: str) -> Path | None:
        if self.rank != 0:
            return None
        self.ema.eval()
        png = preview_grid(self.ema, self.path, self.cfg.sample, self.data.num_classes, self.to_image, self.device)
        if png is None:
            print(f"warning: the samples at step {self.step} contain NaN/Inf; not writing {name}")
            return None
        return save_preview(png, self.out / "samples" / name)

    # ---- the TrainTask the shared loop (loop.py) drives --------------------------------------
    @property
    def step(self) -> int:
        return self.state.step

    def loss(self, step: int) -> Tensor:
        t = self.cfg.train
        torch.manual_seed(derive_seed(t.seed, step, DROPOUT, self.rank))  # dropout etc.
        x_1, x_0, k, y = rank_slice(self.batches(step), self.rank, self.world, self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.loss_fn(self.net, x_1, x_0, k, y).loss

    def log(self, step: int, loss: Tensor, lr: float, steps: int) -> None:
        if self.distributed:
            dist.all_reduce(loss)
            loss /= self.world
        sps = steps / max(time.time() - self._window_t, 1e-9)
        self._images_per_s, self._last_loss = sps * self.cfg.train.batch_size, loss.item()
        self._logger.log(step, self._last_loss, lr, sps, self._images_per_s)
        self._window_t = time.time()

    def validate(self, step: int):
        raise NotImplementedError("image runs have no validation set")

    def new_best(self, state: LoopState) -> None:
        pass

    def checkpoint(self, state: LoopState) -> None:
        self._last_ckpt = self.save() or self._last_ckpt

    def after_step(self, step: int, logged: bool) -> bool:
        t = self.cfg.train
        self._logger.stepped(step)
        if t.sample_every and step % t.sample_every == 0 and step != t.steps:
            self.sample_image_grid(f"step_{step:08d}.png")
            self.model.train()
        if logged and out_of_time(self._logger.t0, t.max_minutes, self.device, self.distributed):  # no extra sync
            if self.rank == 0:
                print(f"\nstopping at step {step}: train.max_minutes={t.max_minutes} reached")
            if step % t.ckpt_every and step != t.steps:  # else the loop has just written it
                self._last_ckpt = self.save() or self._last_ckpt
            return True
        return False

    def fit(self, until: int | None = None) -> TrainResult:
        """Train to cfg.train.steps (or stop early at step `until` without a final save, as a
        kill after the last checkpoint would)."""
        t = self.cfg.train
        end = t.steps if until is None else min(until, t.steps)
        self._logger = RunLogger(self.out, self.step, t.steps, t.max_minutes, active=self.rank == 0)
        self._window_t, self._last_ckpt, self._last_loss, self._images_per_s = time.time(), None, float("nan"), 0.0
        self.model.train()
        try:
            try:
                run_steps(self, self.optim, self.state, end, self.ckpt_dir)
            except torch.cuda.OutOfMemoryError:
                raise TrainingError(
                    f"CUDA out of memory at train.batch_size={t.batch_size} on {self.device}; lower "
                    "train.batch_size, or turn on model.dit.grad_checkpointing for DiTs"
                ) from None
            if self.step == t.steps or (t.max_minutes is not None and until is None):
                self.sample_image_grid("final.png")
        finally:
            self._logger.close()
            self.release()
        return TrainResult(
            step=self.step,
            loss=self._last_loss,
            images_per_s=self._images_per_s,
            checkpoint=self._last_ckpt,
            out_dir=self.out,
        )


def train(cfg: Config, resume: bool = False, overwrite: bool = False) -> TrainResult:
    trainer = Trainer(cfg, resume=resume, overwrite=overwrite)
    try:
        return trainer.fit()
    finally:
        if trainer.distributed and dist.is_initialized():
            dist.destroy_process_group()
