"""Where a process runs: the device a name asks for, and the process group under torchrun.

One rule for every command that can run on several processes (training, latent encoding): under
torchrun (WORLD_SIZE and RANK set, a world of one included) the process joins a group, NCCL on
CUDA and gloo on the CPU, and a CUDA process takes the GPU of its LOCAL_RANK.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import ConfigError


def pick_device(name: str) -> torch.device:
    """'auto' (CUDA when there is one), 'cpu', 'cuda' or 'cuda:N'; anything else, or a GPU this
    machine lacks, is a one-line ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r}: kflow runs on cpu or cuda; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: this torch build or machine has no CUDA GPU; use cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: there are only {torch.cuda.device_count()} GPUs (cuda:0 ..)")
    return dev


@dataclass
class Processes:
    device: torch.device  # this process's device
    rank: int = 0
    world: int = 1
    distributed: bool = False  # under torchrun
    owns_group: bool = False  # this call started the process group (and should end it)


def under_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def join_processes(device_name: str) -> Processes:
    """The device for `device_name` and, under torchrun, the process group (started if needed)."""
    device = pick_device(device_name)
    if not under_torchrun():
        return Processes(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return Processes(device, dist.get_rank(), dist.get_world_size(), True, owns)
