"""Many samples to disk in resumable parts: each chunk of `batch_size` samples is written
atomically as parts/part-NNNNN.npz; a rerun with the same settings skips finished parts, so an
interrupted job continues where it stopped and ends with the same samples.npz as an
uninterrupted one (the noise of all n samples is drawn up front from the seed). For latent
models, `decode` maps the generated latents to images; the parts keep both (z and x)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.image_data import to_uint8
from ..utils.atomic import atomic_write_json, atomic_write_npz, manifest_difference, remove_temp_files
from ..utils.lock import FolderLock
from .noise import draw_x0
from .sampler import sample


def sample_to_folder(
    model,
    path,
    n: int,
    out: str | Path,
    settings: dict,
    *,
    x_0: Tensor | None = None,
    y: Tensor | None = None,
    seed: int = 0,
    batch_size: int = 500,
    log=print,
    decode: Callable[[Tensor], Tensor] | None = None,
    **sample_kw,
) -> Path:
    """Write out/samples.npz (uint8 x, and y when given) through resumable parts. `settings` (JSON-able:
    checkpoint, solver, steps, ...) must match the parts already in the folder."""
    out = Path(out)
    with FolderLock(out, "--out folder"):  # two sampling jobs never mix their parts
        return _sample_to_folder(
            model,
            path,
            n,
            out,
            settings,
            x_0=x_0,
            y=y,
            seed=seed,
            batch_size=batch_size,
            log=log,
            decode=decode,
            **sample_kw,
        )


def _sample_to_folder(model, path, n, out, settings, *, x_0, y, seed, batch_size, log, decode, **sample_kw) -> Path:
    parts = out / "parts"
    manifest = dict(settings, n=n, seed=seed, batch_size=batch_size)
    mf = parts / "manifest.json"
    remove_temp_files(parts)  # left by a sampling job killed while writing a part (the folder is ours)
    diff = manifest_difference(mf, manifest)
    if diff:
        raise ValueError(
            f"{out} holds parts of another sampling job (differs in {', '.join(diff)}); "
            "use another --out or delete its parts/ folder"
        )
    shape = tuple(path.transform.shape)
    if x_0 is None:
        x_0 = draw_x0(n, shape, seed)
    nfe, done = 0, 0
    for i, start in enumerate(range(0, n, batch_size)):
        part = parts / f"part-{i:05d}.npz"
        if part.exists():
            done += 1
            continue
        sl = slice(start, min(start + batch_size, n))
        res = sample(
            model,
            path,
            sl.stop - sl.start,
            x_0=x_0[sl],
            y=None if y is None else y[sl],
            batch_size=batch_size,
            **sample_kw,
        )
        if not torch.isfinite(res.x).all():
            raise ValueError(
                f"the sampler produced NaN/Inf values in samples {sl.start}..{sl.stop - 1}; "
                "nothing written for them (try more steps or another solver)"
            )
        nfe = res.nfe
        arrays = {"x": to_uint8(res.x if decode is None else decode(res.x)), "nfe": nfe}
        if decode is not None:
            arrays["z"] = res.x.float().numpy()
        if not mf.exists():  # written with the first part, so a failed job leaves nothing
            atomic_write_json(mf, manifest)
        atomic_write_npz(part, arrays)
    if done:
        log(f"resumed: {done} finished part(s) of {batch_size} samples reused")
    xs, zs = [], []
    for i in range((n + batch_size - 1) // batch_size):
        with np.load(parts / f"part-{i:05d}.npz", allow_pickle=False) as f:
            xs.append(f["x"])
            zs.append(f["z"] if "z" in f else None)
            nfe = int(f["nfe"])
    arrays = dict(x=np.concatenate(xs), seed=seed, nfe=nfe)
    if decode is not None:
        arrays["z"] = np.concatenate(zs)
    if y is not None:
        arrays["y"] = y.numpy()
    atomic_write_npz(out / "samples.npz", arrays)
    return out / "samples.npz"
