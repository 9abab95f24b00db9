"""Latent datasets: encode images once with a pretrained VAE (a diffusers AutoencoderKL in a local
folder), keep the scaled latents as safetensors shards with a JSON manifest, train K-Flow on them
like on images (data.name=latents, data.root=<folder>), and decode samples back to pixels.

A latent folder:
    manifest.json            the plan (source, VAE folder and hash, scale, store mode, latent shape,
                             shard size, classes) and, once every shard exists, "complete": true
    shard-00000.safetensors  z (n, c, h, w) float32 = scale * mean (or a sampled latent),
                             std (n, c, h, w) = scale * std when store=mean_std, y (n,) labels

Encoding resumes at shard granularity: each shard is written atomically, so a kill leaves whole
shards only, and a rerun with the same plan skips them. Under torchrun the shards are dealt out
round-robin over the ranks (one GPU each). Sampled latents (store=sample) draw their noise from
seed + shard index, so a resumed or distributed encoding writes the same bytes as a plain one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..utils.atomic import (
    atomic_write,
    atomic_write_json,
    file_sha256,
    manifest_difference,
    open_safetensors,
    remove_temp_files,
)
from ..utils.devices import join_processes
from ..utils.errors import DataError
from .image_data import ImageData

STORES = ("mean_std", "mean", "sample")
MANIFEST = "manifest.json"


def vae_files(folder: str | Path) -> tuple[Path, Path]:
    """config.json and the safetensors weights of a diffusers AutoencoderKL folder, or a DataError."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise DataError(
            f"VAE folder {folder} has no config.json; give --vae a local diffusers AutoencoderKL folder "
            "(config.json + diffusion_pytorch_model.safetensors); nothing is downloaded"
        )
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise DataError(
            f"VAE folder {folder} has no .safetensors weights; kflow never loads pickled .bin weights, "
            "convert them to safetensors first"
        )
    return folder / "config.json", weights[0]


def load_vae(folder: str | Path, device="cpu"):
    """The AutoencoderKL of a local folder (safetensors weights only), in eval mode."""
    vae_files(folder)
    try:
        from diffusers import AutoencoderKL
    except ImportError:
        raise ImportError("latent datasets need diffusers: pip install 'kflow[latent]'") from None
    vae = AutoencoderKL.from_pretrained(str(folder), use_safetensors=True, low_cpu_mem_usage=False)
    return vae.to(device).eval().requires_grad_(False)


@dataclass
class LatentInfo:
    """What manifest.json says, with the folder it came from."""

    folder: Path
    manifest: dict

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["latent_shape"])

    @property
    def scale(self) -> float:
        return float(self.manifest["scale"])

    @property
    def num_shards(self) -> int:
        return -(-self.manifest["n"] // self.manifest["shard_size"])

    def shard(self, i: int) -> Path:
        return self.folder / f"shard-{i:05d}.safetensors"


def read_manifest(folder: str | Path) -> LatentInfo:
    folder = Path(folder)
    mf = folder / MANIFEST
    if not mf.is_file():
        raise DataError(f"{folder} is not a latent folder (no {MANIFEST}); make one with `kflow data encode`")
    try:
        return LatentInfo(folder, json.loads(mf.read_text()))
    except json.JSONDecodeError as e:
        raise DataError(f"{mf} is not valid JSON ({e.msg}); re-run `kflow data encode` into a fresh folder") from None


def _shard_ok(path: Path, n: int) -> bool:
    """A shard on disk that opens and holds the expected number of latents."""
    try:
        with open_safetensors(path) as f:
            return f.get_slice("z").get_shape()[0] == n
    except (ValueError, FileNotFoundError, OSError):
        return False


def encode_dataset(
    data: ImageData,
    vae_dir: str | Path,
    out: str | Path,
    *,
    store: str = "mean_std",
    scale: float | None = None,
    batch_size: int = 64,
    shard_size: int = 4096,
    seed: int = 0,
    device: str = "auto",
    source: dict | None = None,
    log=print,
) -> LatentInfo:
    """Encode `data` into latent shards under `out`; resumes a previous run of the same plan."""
    if store not in STORES:
        raise DataError(f"store={store!r} is not one of {', '.join(STORES)}")
    if batch_size < 1 or shard_size < 1:
        raise DataError(f"batch_size={batch_size} and shard_size={shard_size} must be >= 1")
    out = Path(out)
    procs = join_processes(str(device))
    device, rank, world = procs.device, procs.rank, procs.world
    config_file, weights = vae_files(vae_dir)
    vae = load_vae(vae_dir, device)
    vae_cfg = json.loads(config_file.read_text())
    scale = float(vae_cfg.get("scaling_factor", 0.18215)) if scale is None else float(scale)
    C_vae = int(vae_cfg.get("in_channels", 3))
    C, H, W = data.x.shape[1:]
    if C not in (1, C_vae):
        raise DataError(f"the images have {C} channels and the VAE takes {C_vae}; convert the images first")
    with torch.no_grad():  # the latent shape, from one image
        probe = vae.encode(_to_vae(data.x[:1], C_vae).to(device)).latent_dist.mean
    plan = dict(
        format="kflow-latents-1",
        source=source or {"name": data.name},
        n=len(data),
        image_shape=[C, H, W],
        vae=str(Path(vae_dir).resolve()),
        vae_config_sha256=file_sha256(config_file),
        vae_weights_sha256=file_sha256(weights),
        scale=scale,
        store=store,
        seed=seed,
        shard_size=shard_size,
        latent_shape=list(probe.shape[1:]),
        num_classes=data.num_classes,
        labels=data.y is not None,
    )
    mf = out / MANIFEST
    if mf.exists():
        diff = manifest_difference(mf, plan, ignore=("vae",))  # the VAE's folder may move
        if diff:
            raise DataError(
                f"{out} holds latents of another encoding (differs in {', '.join(diff)}); use another "
                "--out or delete that folder"
            )
    elif rank == 0:
        atomic_write_json(mf, dict(plan, complete=False))
    if rank == 0:
        remove_temp_files(out, "shard-")  # temp files of a killed writer
    if world > 1:  # nobody writes before rank 0 has cleaned up (else it removes another rank's temp file)
        torch.distributed.barrier()
    info = LatentInfo(out, plan)
    todo = [i for i in range(info.num_shards) if i % world == rank]
    t0, done, skipped = time.time(), 0, 0
    for i in todo:
        lo, hi = i * shard_size, min((i + 1) * shard_size, len(data))
        if _shard_ok(info.shard(i), hi - lo):
            skipped += 1
            continue
        tensors = _encode_shard(vae, data, lo, hi, C_vae, store, scale, seed + i, batch_size, device)
        from safetensors.torch import save_file

        atomic_write(info.shard(i), lambda tmp, t=tensors: save_file(t, str(tmp), metadata={"lo": str(lo)}))
        done += hi - lo
        rate = done / max(time.time() - t0, 1e-9)
        log(f"[rank {rank}] shard {i + 1}/{info.num_shards}: images {lo}..{hi - 1} encoded ({rate:.1f} img/s)")
    if skipped:
        log(f"[rank {rank}] resumed: {skipped} finished shard(s) reused")
    if world > 1:
        torch.distributed.barrier()
    if rank == 0:
        missing = [i for i in range(info.num_shards) if not info.shard(i).exists()]
        if missing:
            raise DataError(f"shards {missing[:5]} are missing after encoding; rerun the same command to finish")
        atomic_write_json(mf, dict(plan, complete=True))
    if procs.owns_group:
        torch.distributed.destroy_process_group()
    return read_manifest(out)


def _to_vae(x: Tensor, channels: int) -> Tensor:
    return x.expand(-1, channels, -1, -1) if x.shape[1] == 1 and channels != 1 else x


@torch.no_grad()
def _encode_shard(
    vae, data: ImageData, lo: int, hi: int, C_vae: int, store: str, scale: float, seed: int, batch_size: int, device
) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    zs, stds = [], []
    for a in range(lo, hi, batch_size):
        x = _to_vae(data.x[a : min(a + batch_size, hi)], C_vae).to(device)  # (B, C, H, W) in [-1, 1]
        dist = vae.encode(x).latent_dist
        mean, std = dist.mean.float().cpu(), dist.std.float().cpu()
        if store == "sample":  # the noise comes from the CPU generator: identical on any device
            mean = mean + std * torch.randn(mean.shape, generator=gen)
        zs.append(scale * mean)
        stds.append(scale * std)
    out = {"z": torch.cat(zs).contiguous()}
    if store == "mean_std":
        out["std"] = torch.cat(stds).contiguous()
    if data.y is not None:
        out["y"] = data.y[lo:hi].clone()
    return out


def load_latents(folder: str | Path, draw: str = "mean", seed: int = 0) -> ImageData:
    """All shards of a finished encoding as an ImageData whose x are scaled latents (N, c, h, w).
    draw="sample" on a mean_std folder draws z = mean + std * eps once (seeded)."""
    info = read_manifest(folder)
    m = info.manifest
    if not m.get("complete"):
        raise DataError(
            f"{info.folder} is an unfinished encoding; rerun the same `kflow data encode` command to finish it"
        )
    if draw not in ("mean", "sample"):
        raise DataError(f"draw={draw!r}: use mean or sample")
    zs, ys = [], []
    gen = torch.Generator().manual_seed(seed)
    for i in range(info.num_shards):
        try:
            with open_safetensors(info.shard(i)) as f:
                z = f.get_tensor("z")
                if draw == "sample" and "std" in f.keys():
                    z = z + f.get_tensor("std") * torch.randn(z.shape, generator=gen)
                ys.append(f.get_tensor("y") if "y" in f.keys() else None)
        except (ValueError, FileNotFoundError) as e:
            raise DataError(f"latent shard {i}: {e}") from None
        zs.append(z)
    x = torch.cat(zs)
    if len(x) != m["n"] or tuple(x.shape[1:]) != info.shape:
        raise DataError(
            f"{info.folder}: shards hold {tuple(x.shape)}, the manifest says {m['n']} x {info.shape}; "
            "re-encode into a fresh folder"
        )
    y = torch.cat(ys) if m["labels"] else None
    name = (m.get("source") or {}).get("name", "latents")
    return ImageData(x, y, int(m["num_classes"]), f"latents:{name}")


class LatentDecoder:
    """Scaled latents -> images in [-1, 1] with the VAE an encoding used (or another folder)."""

    def __init__(self, folder: str | Path, vae_dir: str | Path | None = None, device="cpu", batch_size: int = 64):
        self.info = read_manifest(folder)
        self.vae_dir = Path(vae_dir or self.info.manifest["vae"])
        self.vae = load_vae(self.vae_dir, device)
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def __call__(self, z: Tensor) -> Tensor:
        out = []
        for a in range(0, len(z), self.batch_size):
            zb = z[a : a + self.batch_size].to(self.device) / self.info.scale
            out.append(self.vae.decode(zb).sample.float().cpu().clamp(-1, 1))
        x = torch.cat(out)
        C = self.info.manifest["image_shape"][0]
        return x.mean(1, keepdim=True) if C == 1 and x.shape[1] != 1 else x
