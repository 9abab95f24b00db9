"""What makes two configs the same run: every setting but those a resumed run may change and those
derived from the data. Used by `--resume`, by the check that a checkpoint belongs to its run
folder, and by the molecule runs."""

from __future__ import annotations

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
    "train.stage_calls",  # how the backbones run, not what they compute
    "train.amp",
    "train.nonfinite",
    "sample.",
    "eval_every",  # molecular assembly: how often and on how many clusters it validates
    "val_clusters",
)
# filled in from the data and the path when the model is built, not chosen by the user
DERIVED = ("in_channels", "image_size", "num_classes", "band_edges", "band_windows", "entry_levels")


def flat(d: dict, prefix: str = "") -> dict:
    """{"train": {"lr": 1}} -> {"train.lr": 1}, the form overrides and RESUMABLE use."""
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def run_difference(saved: dict, now: dict) -> tuple[str, object, object] | None:
    """The first setting (key, saved value, value now) in which two configs are different runs, or
    None. RESUMABLE and DERIVED keys never count; keys newer than `saved` take their defaults."""
    old, new = flat(saved), flat(now)
    # a cosine learning rate is spread over train.steps: changing them changes the steps already taken
    fixed = ("train.steps",) if new.get("train.lr_schedule") == "cosine" else ()
    for key, value in new.items():
        if key not in old or key.rsplit(".", 1)[-1] in DERIVED:
            continue
        if key.startswith(RESUMABLE) and key not in fixed:
            continue
        if old[key] != value:
            return key, old[key], value
    return None


def run_kind(saved) -> str | None:
    """'image' or 'molecule' for a run folder's config.json contents (None: neither)."""
    if not isinstance(saved, dict):
        return None
    if "flow" in saved and "model" not in saved:
        return "molecule"
    return "image" if "model" in saved else None
