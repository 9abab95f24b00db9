"""The run-folder policy: a folder holds one run. A new run refuses a folder that holds one (unless
told to overwrite it); --resume continues it only with the settings it was started with (which
settings make a run: run_identity.run_difference)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..run_identity import run_difference
from ..utils.errors import TrainingError

# what a run writes into its folder
RUN_FILES = ("checkpoints", "config.json", "log.csv", "samples", "tensorboard", "pca.safetensors")


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
    """--resume continues the same run: every setting but the RESUMABLE ones as it was saved."""
    diff = run_difference(saved, now)
    if diff:
        key, old, new = diff
        raise TrainingError(
            f"--resume: {key} was {old!r} in this run ({where}), the config now says {new!r}; "
            "resume with the run's own settings or train into a new out_dir"
        )
