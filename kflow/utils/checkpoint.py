"""Checkpoints: one safetensors file per save (model, EMA, optimizer moments, RNG state) with
the run's JSON (config, step, data position, optimizer hyper-parameters) in its metadata.
Written atomically; loaded without pickle."""

from __future__ import annotations

import errno
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .atomic import atomic_write, disk_full, open_safetensors
from .errors import CheckpointError

CKPT_RE = re.compile(r"^ckpt-(\d{8})\.safetensors$")


@dataclass
class Checkpoint:
    tensors: dict[str, Tensor]
    meta: dict  # step, epoch, position, config, optimizer param_groups, checksums, ...
    path: Path | None = None

    def state(self, prefix: str) -> dict[str, Tensor]:
        n = len(prefix) + 1
        return {k[n:]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{pid}.{name}"] = t.detach().cpu().contiguous()
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict) -> None:
    state: dict = {}
    for key, t in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = t
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    path: Path, model: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer, meta: dict
) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    otensors, ometa = optimizer_tensors(opt)
    tensors.update({f"optim.{k}": v for k, v in otensors.items()})
    tensors["rng.cpu"] = torch.get_rng_state()
    save_tensors(path, tensors, dict(meta, optimizer=ometa, format="kflow-checkpoint-1"))


def save_tensors(path: Path, tensors: dict[str, Tensor], meta: dict) -> None:
    """Tensors with JSON metadata (under 'kflow') and a checksum per tensor, written atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = dict(meta, checksums={k: digest(v) for k, v in tensors.items()})

    def write(tmp: Path) -> None:
        from safetensors import SafetensorError

        try:
            save_file(tensors, str(tmp), metadata={"kflow": json.dumps(meta)})
        except SafetensorError as e:  # a full disk becomes atomic_write's one message; the rest an OSError
            if disk_full(e):
                raise
            raise OSError(errno.EIO, str(e)) from None

    atomic_write(path, write)


def digest(t: Tensor) -> str:
    """Checksum of a tensor's bytes (blake2b, 128 bits): what was saved is what is loaded."""
    return hashlib.blake2b(t.contiguous().reshape(-1).view(torch.uint8).numpy(), digest_size=16).hexdigest()


def load_tensors(path: str | Path, fix: str = "use an earlier checkpoint") -> tuple[dict[str, Tensor], dict]:
    """(tensors, metadata) of a save_tensors file, every checksum verified (`fix`: what the message
    advises when one fails)."""
    with open_safetensors(path) as f:
        meta = (f.metadata() or {}).get("kflow")
        if meta is None:
            raise CheckpointError(f"{path} is a safetensors file but not a kflow checkpoint (no 'kflow' metadata)")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta = json.loads(meta)
    for name, want in meta.get("checksums", {}).items():  # files older than checksums have none
        if name not in tensors or digest(tensors[name]) != want:
            raise CheckpointError(f"{path} is corrupted (tensor {name} does not match its checksum); {fix}")
    return tensors, meta


def load_checkpoint(path: str | Path) -> Checkpoint:
    tensors, meta = load_tensors(path)
    return Checkpoint(tensors=tensors, meta=meta, path=Path(path))


def load_latest_checkpoint(folder: Path) -> Checkpoint | None:
    """The newest checkpoint that loads and passes its checksums; corrupted newer ones are skipped
    with a warning (they stay on disk for inspection)."""
    for p in reversed(list_checkpoints(folder)):
        try:
            ck = load_checkpoint(p)
        except (ValueError, FileNotFoundError) as e:  # CheckpointError is a ValueError
            print(f"warning: skipping unusable checkpoint {p.name}: {e}")
            continue
        return ck
    return None


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if CKPT_RE.match(p.name)), key=lambda p: p.name)


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that loads (a corrupted newest one is skipped with a warning)."""
    for p in reversed(list_checkpoints(folder)):
        try:
            with open_safetensors(p) as f:
                if "kflow" in (f.metadata() or {}):
                    return p
        except (ValueError, FileNotFoundError) as e:
            print(f"warning: skipping unreadable checkpoint {p.name}: {e}")
    return None


def load_state(module: torch.nn.Module, state: dict[str, Tensor], what: str) -> None:
    """load_state_dict with a one-line error when the architecture differs."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or extra or shapes:
        detail = (
            f"missing {missing[0]}"
            if missing
            else f"unexpected {extra[0]}"
            if extra
            else f"{shapes[0]} has shape {tuple(state[shapes[0]].shape)}, model has {tuple(own[shapes[0]].shape)}"
        )
        raise CheckpointError(
            f"the {what} weights do not fit this model ({detail}); use the config the checkpoint was trained with"
        )
    module.load_state_dict(state)
