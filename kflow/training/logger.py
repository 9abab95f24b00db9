"""What a training run reports: log.csv (always), TensorBoard (when installed) and a progress
bar (rank 0, unless KFLOW_PROGRESS=0). A run with a wall-clock limit shows its bar in time, since
its step count says nothing about when it will stop."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

COLUMNS = ["step", "loss", "lr", "steps_per_s", "images_per_s", "elapsed_s"]


def keep_rows(path: Path, step: int) -> None:
    """Keep the header and the rows of log.csv up to `step` (rewritten atomically)."""
    from ..utils.atomic import atomic_write

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    if len(kept) == len(rows) - 1:
        return

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(rows[:1] + kept)

    atomic_write(path, write)


class RunLogger:
    def __init__(self, out: Path, step: int, total_steps: int, max_minutes: float | None = None, active: bool = True):
        self.t0 = time.time()
        self.max_s = None if max_minutes is None else 60 * max_minutes
        self.file = self.writer = self.tb = self.bar = None
        if not active:  # DDP ranks other than 0 report nothing
            return
        path = out / "log.csv"
        if path.exists():  # a resumed run replays the steps after its checkpoint: drop their old rows
            keep_rows(path, step)
        new = not path.exists() or path.stat().st_size == 0  # an empty file (killed at creation) gets its header
        self.file = open(path, "a", newline="")
        self.writer = csv.writer(self.file)
        if new:
            self.writer.writerow(COLUMNS)
        try:  # TensorBoard only when it is installed
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            pass
        if os.environ.get("KFLOW_PROGRESS", "1") != "0":
            try:
                from tqdm import tqdm
            except ImportError:
                return
            if self.max_s is None:
                self.bar = tqdm(total=total_steps, initial=step, dynamic_ncols=True, mininterval=1.0, unit="step")
            else:  # in seconds of the time limit; the step count rides along in the postfix
                fmt = "{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]"
                self.bar = tqdm(total=round(self.max_s), dynamic_ncols=True, mininterval=1.0, bar_format=fmt)

    def elapsed(self) -> float:
        return time.time() - self.t0

    def stepped(self, step: int) -> None:
        if self.bar is None:
            return
        if self.max_s is None:
            self.bar.update(1)
        else:
            self.bar.n = min(self.elapsed(), self.max_s)
            self.bar.set_postfix_str(f"step {step}", refresh=step % 10 == 0)

    def log(self, step: int, loss: float, lr: float, steps_per_s: float, images_per_s: float) -> None:
        if self.writer:
            row = [
                step,
                f"{loss:.6f}",
                f"{lr:.3g}",
                f"{steps_per_s:.3f}",
                f"{images_per_s:.1f}",
                f"{self.elapsed():.1f}",
            ]
            self.writer.writerow(row)
            self.file.flush()
        if self.tb:
            self.tb.add_scalar("loss", loss, step)
            self.tb.add_scalar("images_per_s", images_per_s, step)
        if self.bar and self.max_s is None:
            self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_s:.0f}")

    def close(self) -> None:
        for thing in (self.bar, self.file, self.tb):
            if thing is not None:
                thing.close()
