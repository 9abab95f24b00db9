"""The run-folder policy: a folder holds one run. A new run refuses a folder that holds one (unless
told to overwrite it); --resume continues it only with the settings it was started with (which
settings make a run: run_identity.run_difference)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..run_identity import run_difference
from ..utils.errors import TrainingError

# what a run writes into its folder
RUN_FILES = ("checkpoints", "config.json", "log.csv", "samples", "tensorboard", "pca.safetensors")


def check_layout(out: Path) -> None:
    """Refuse, before any work, a run folder whose parts are of the wrong kind (the folder or its
    samples/ or checkpoints/ a file, config.json a folder): training would fail at its first write."""
    for where in (out, out / "samples", out / "checkpoints"):
        if where.exists() and not where.is_dir():
            raise TrainingError(f"{where} is a file, not a folder; move it away or choose another out_dir")
    if (out / "config.json").is_dir():
        raise TrainingError(f"{out / 'config.json'} is a folder, not the run's config file; move it away")


def claim_folder(
    out: Path, resume: bool, overwrite: bool, run_files=RUN_FILES, overwrite_flag: str | None = None
) -> None:
    """Refuse a folder that holds a run, unless resuming it or told to overwrite it (then delete
    every file of `run_files`, what such a run writes). overwrite_flag: how the command says it."""
    held = [name for name in run_files if (out / name).exists()]
    if not held or resume:
        return
    if not overwrite:
        flag = overwrite_flag or f"--overwrite {out}"
        raise TrainingError(
            f"{out} already holds a run ({', '.join(held)}); continue it with --resume, train into another "
            f"folder, or replace it with {flag}"
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


def resumable_checkpoint(out: Path, now: dict):
    """The newest sound checkpoint of the run in `out` (a corrupted newest one is skipped) for
    --resume, after checking it is this run's; None for a run killed before its first checkpoint.
    Refused in one line: checkpoints under other names, an unreadable config.json."""
    from ..utils.checkpoint import load_latest_checkpoint

    ckpt_dir = out / "checkpoints"
    ck = load_latest_checkpoint(ckpt_dir)
    if ck is not None:
        check_same_run(ck.meta.get("config", {}), now, ck.path.name)
        return ck
    others = sorted(p.name for p in ckpt_dir.glob("*.safetensors"))
    if others:  # renamed or foreign files: resuming from step 0 beside them would be a surprise
        raise TrainingError(
            f"--resume: {ckpt_dir} holds {', '.join(others[:3])} but no ckpt-<8-digit step>"
            ".safetensors; rename the checkpoint back to that form, or train into a new out_dir"
        )
    if (out / "config.json").exists():  # killed before its first checkpoint
        try:
            saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
        except ValueError:  # not UTF-8, or not JSON
            raise TrainingError(
                f"{out / 'config.json'} is not readable JSON; restore it or train into a new out_dir"
            ) from None
        check_same_run(saved, now, "config.json")
    return None


def write_checkpoint(path: Path, model, ema, opt, meta: dict, keep: int) -> None:
    """Save a checkpoint atomically and prune all but the newest `keep`; a failed write (disk full,
    quota, permissions) leaves the previous checkpoint untouched and says how to go on."""
    from ..utils.checkpoint import list_checkpoints, save_checkpoint

    try:
        save_checkpoint(path, model, ema, opt, meta)
    except OSError as e:
        last = list_checkpoints(path.parent)
        raise TrainingError(
            f"could not write checkpoint {path.name} ({e.strerror or e}); free space or choose another "
            f"out_dir, then --resume from {last[-1].name if last else 'the start'}"
        ) from None
    for old in list_checkpoints(path.parent)[:-keep]:
        old.unlink(missing_ok=True)
