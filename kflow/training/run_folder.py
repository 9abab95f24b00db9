"""The run-folder policy: a folder holds one run. A new run refuses a folder that holds one (unless
told to overwrite it); --resume continues it only with the settings it was started with."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..utils.errors import TrainingError

# settings a resumed run may change: when and where it runs, how it reports, how long it goes on
RESUMABLE = (
    "out_dir",
    "train.steps",
    "train.max_minutes",
    "train.log_every",
    "train.ckpt_every",
    "train.sample_every",
    "train.keep_checkpoints",
    "train.device",
    "train.compile",
    "train.amp",
    "train.nonfinite",
    "sample.",
)
# filled in from the data and the path when the model is built, not chosen by the user
DERIVED = ("in_channels", "image_size", "num_classes", "band_edges", "band_windows")
# what a run writes into its folder
RUN_FILES = ("checkpoints", "config.json", "log.csv", "samples", "tensorboard", "pca.safetensors")


def flat(d: dict, prefix: str = "") -> dict:
    """{"train": {"lr": 1}} -> {"train.lr": 1}, the form overrides and RESUMABLE use."""
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def claim_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a folder that holds a run, unless resuming it or told to overwrite it (then delete it)."""
    held = [name for name in RUN_FILES if (out / name).exists()]
    if not held or resume:
        return
    if not overwrite:
        raise TrainingError(
            f"{out} already holds a run ({', '.join(held)}); continue it with --resume, train into another "
            f"out_dir, or replace it with --overwrite {out}"
        )
    for name in held:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    print(f"overwrote the run in {out}")


def check_same_run(saved: dict, now: dict, where: str) -> None:
    """--resume continues the same run: every setting but the RESUMABLE ones as it was saved.
    Keys newer than the run (absent from `saved`) take their defaults."""
    old, new = flat(saved), flat(now)
    for key, value in new.items():
        if key not in old or key.startswith(RESUMABLE) or key.rsplit(".", 1)[-1] in DERIVED:
            continue
        if old[key] != value:
            raise TrainingError(
                f"--resume: {key} was {old[key]!r} in this run ({where}), the config now says {value!r}; "
                "resume with the run's own settings or train into a new out_dir"
            )
