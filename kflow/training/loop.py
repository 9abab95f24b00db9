"""The step loop every kflow training runs: images (trainer.py) and molecular assembly
(molecules/train.py) alike. What differs between tasks a TrainTask says: the loss of a step on its
batch, how a log line and a checkpoint are written, what a validation scores, what else follows a
step. What does not differ lives here: one OptimizerStep per step (schedule, clipping, the
non-finite rule, AdamW, EMA), when to log, validate and checkpoint, and which validated weights are
kept (the EMA's at the lowest score), so resume and selection follow one rule for every task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from .optimizer_step import OptimizerStep


@dataclass
class Validation:
    scores: dict  # what the validation curve records (e.g. pm_atom, pm_center)
    score: float  # what selects the weights: lower is better


@dataclass
class LoopState:
    """What a checkpoint holds beside the weights: the loop's place and its selection so far."""

    step: int = 0  # steps taken
    curve: list[dict] = field(default_factory=list)  # {"step", **scores} per validation
    best: dict | None = None  # {"step", "score"} of the best validation so far
    best_weights: dict | None = None  # the EMA's weights at that step


@runtime_checkable
class TrainTask(Protocol):
    def loss(self, step: int) -> Tensor:
        """The scalar loss of (0-based) step `step` on its batch, with the graph to backpropagate."""

    def log(self, step: int, loss: Tensor, lr: float, steps: int) -> None:
        """Report the mean loss of the `steps` steps taken since the last log (on the device)."""

    def validate(self, step: int) -> Validation:
        """Score the EMA weights (called every `validate_every` steps and at the last)."""

    def new_best(self, state: LoopState) -> None:
        """state.best_weights were just chosen (e.g. write them to the run folder)."""

    def checkpoint(self, state: LoopState) -> None:
        """Write a resumable checkpoint of the weights, the optimiser and `state`."""

    def after_step(self, step: int, logged: bool) -> bool:
        """Anything else after a step (previews, progress, time limits); True stops the loop."""


def run_steps(
    task: TrainTask,
    optim: OptimizerStep,
    state: LoopState,
    end: int,
    ckpt_dir: Path | None = None,
    validate_every: int = 0,
) -> LoopState:
    """Train from state.step to `end` (at most train.steps). A log every train.log_every steps and
    at `end`; a checkpoint every train.ckpt_every steps and at train.steps (none at an earlier
    `end`: stopping there is a kill the next run resumes from the last checkpoint); with
    validate_every, a validation at its multiples and at train.steps, before that step's checkpoint
    so the checkpoint holds its result. Under train.nonfinite=stop a non-finite step stops the run
    at the next log, validation or checkpoint, naming the last good checkpoint."""
    t = optim.t
    end = min(end, t.steps)
    window: list[Tensor] = []
    while state.step < end:
        loss = task.loss(state.step)
        skipped = optim(loss, state.step)
        state.step += 1
        if skipped:  # train.nonfinite=skip
            continue
        window.append(loss.detach())
        step = state.step
        at_log = step % t.log_every == 0 or step == end
        at_ckpt = step % t.ckpt_every == 0 or step == t.steps
        at_val = bool(validate_every) and (step % validate_every == 0 or step == t.steps)
        if at_log or at_ckpt or at_val:
            optim.check(ckpt_dir)
        if at_log:
            task.log(step, torch.stack(window).mean(), optim.lr(step - 1), len(window))
            window = []
        if at_val:
            v = task.validate(step)
            state.curve.append(dict(step=step, **v.scores))
            if state.best is None or v.score < state.best["score"]:
                state.best = dict(step=step, score=v.score)
                state.best_weights = {k: w.detach().clone() for k, w in optim.ema.state_dict().items()}
                task.new_best(state)
        if at_ckpt:
            task.checkpoint(state)
        if task.after_step(step, at_log):
            break
    return state
