"""An assembly run folder, with the image runs' rules: one run per folder (locked while it trains),
resumable checkpoints (safetensors + JSON metadata, written atomically, checksummed), a resume only
with the settings the run started with, and the selected weights with their config at the end.

    config.json                the AssemblyConfig (typed; reloads exactly)
    checkpoints/ckpt-*.safetensors   weights, EMA, optimizer, RNG; the validation curve in metadata
    best.safetensors           the EMA weights of the best validation step so far
    model.safetensors          the weights to sample with (written when training finishes)
    curve.json                 the validation curve and the chosen step
"""

from __future__ import annotations

import json
from pathlib import Path

from ..run_identity import run_difference, run_kind
from ..training.loop import LoopState
from ..training.run_folder import claim_folder, resumable_checkpoint, write_checkpoint
from ..utils.atomic import atomic_write_json, remove_temp_files
from ..utils.checkpoint import load_optimizer, load_state, load_tensors, save_tensors
from ..utils.errors import CheckpointError
from ..utils.lock import FolderLock

# which settings a resumed run may change: the image runs' rule (run_identity.RESUMABLE)
RUN_FILES = ("config.json", "checkpoints", "best.safetensors", "model.safetensors", "curve.json")


class AssemblyRunFolder:
    def __init__(self, out: str | Path, cfg, resume: bool = True, overwrite: bool = False):
        self.out, self.cfg = Path(out), cfg
        self.lock = FolderLock(self.out, "run folder").acquire()
        try:
            claim_folder(self.out, resume, overwrite, RUN_FILES, overwrite_flag=f"--overwrite {self.out}")
            remove_temp_files(self.out)
            remove_temp_files(self.out / "checkpoints")
            now = cfg.to_dict()
            self.ck = resumable_checkpoint(self.out, now) if resume else None  # refuses another run's
            atomic_write_json(self.out / "config.json", now)
        except BaseException:
            self.lock.release()
            raise

    def resume(self, net, ema, opt) -> LoopState:
        """Load the newest good checkpoint into net, ema and opt; the loop's state it saved (step,
        curve, best, and the best weights from best.safetensors)."""
        ck = self.ck
        if ck is None:
            return LoopState()
        load_state(net, ck.state("model"), "model")
        load_state(ema, ck.state("ema"), "EMA")
        load_optimizer(opt, ck.state("optim"), ck.meta["optimizer"])
        print(f"resuming {self.out} from step {ck.meta['step']}")
        best = ck.meta["best"]
        # best.safetensors may be newer than the checkpoint (a kill between the two): the resumed
        # steps are the same steps, so they reach and overwrite that selection again
        weights = self.best_weights() if best else None
        return LoopState(step=int(ck.meta["step"]), curve=ck.meta["curve"], best=best, best_weights=weights)

    def checkpoint(self, state: LoopState, net, ema, opt, keep: int = 2) -> None:
        folder = self.out / "checkpoints"
        folder.mkdir(exist_ok=True)
        meta = dict(step=state.step, curve=state.curve, best=state.best, config=self.cfg.to_dict())
        write_checkpoint(folder / f"ckpt-{state.step:08d}.safetensors", net, ema, opt, meta, keep)

    def save_best(self, weights: dict, best: dict) -> None:
        save_weights(self.out / "best.safetensors", weights, dict(best=best, config=self.cfg.to_dict()))

    def best_weights(self) -> dict | None:
        p = self.out / "best.safetensors"
        if not p.exists():
            return None
        return read_weights(p)[0]

    def finish(self, ema, curve: list, best: dict | None) -> None:
        chosen = best["step"] if best else None
        save_weights(self.out / "model.safetensors", ema.state_dict(), dict(best=best, config=self.cfg.to_dict()))
        atomic_write_json(self.out / "curve.json", dict(curve=curve, chosen_step=chosen))

    def release(self) -> None:
        self.lock.release()


def save_weights(path: Path, weights: dict, meta: dict) -> None:
    save_tensors(path, weights, meta)


def read_weights(path: Path) -> tuple[dict, dict]:
    """(tensors, metadata) of a save_weights file; a tensor whose bytes changed is refused."""
    return load_tensors(path, fix="train the run again (or resume it from a checkpoint)")


def read_run_config(folder: Path) -> dict:
    """config.json of an assembly run folder, refused in one line when it is unreadable or an image run's."""
    f = folder / "config.json"
    try:
        saved = json.loads(f.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{f} is not readable JSON; restore it from the run's checkpoints or retrain") from None
    if not isinstance(saved, dict) or run_kind(saved) == "image":
        raise CheckpointError(f"{folder} is an image run (kflow train); use kflow sample / kflow eval on it")
    return saved


def load_assembly_run(folder: str | Path):
    """(net, config) of a finished run folder: model.safetensors under its config.json."""
    from .config import AssemblyConfig
    from .model import make_net

    folder = Path(folder)
    saved = read_run_config(folder) if (folder / "config.json").is_file() else None
    weights = folder / "model.safetensors"
    if not weights.exists():
        hint = "resume it to finish" if (folder / "checkpoints").exists() else "train one with `kflow molecules train`"
        raise CheckpointError(f"{folder} holds no finished assembly run (no model.safetensors); {hint}")
    cfg = AssemblyConfig.from_dict(saved)
    net = make_net(cfg.net, cfg.band_windows())
    tensors, meta = read_weights(weights)
    # keys added to the config since the run was written take their defaults (run_difference)
    written, now = meta.get("config"), cfg.to_dict()
    if not isinstance(written, dict) or run_difference(written, now) or run_difference(now, written):
        raise CheckpointError(f"{weights} was not written by the run in {folder} (its config differs)")
    load_state(net, tensors, "model")
    return net.eval(), cfg
