"""The shared step loop (kflow/training/loop.py): its cadence of logs, validations and checkpoints,
the selection of the best validated weights, the non-finite rules, and that image and molecule
trainings both run through it."""

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from kflow.config import TrainConfig, load_config
from kflow.training import loop
from kflow.training.loop import LoopState, TrainTask, Validation, run_steps
from kflow.training.optimizer_step import OptimizerStep, make_adamw
from kflow.utils.errors import TrainingError

ROOT = Path(__file__).resolve().parents[2]


class Toy:
    """Fit w to 3 by the squared error; validation scores are given per step."""

    def __init__(self, scores=None, nan_at=(), stop_at=None):
        self.w = torch.nn.Linear(1, 1, bias=False)
        self.ema = torch.nn.Linear(1, 1, bias=False).requires_grad_(False)
        self.ema.load_state_dict(self.w.state_dict())
        self.scores, self.nan_at, self.stop_at = scores or {}, set(nan_at), stop_at
        self.events: list[tuple] = []

    def loss(self, step):
        loss = (self.w.weight - 3).pow(2).sum()
        return loss * float("nan") if step in self.nan_at else loss

    def log(self, step, loss, lr, steps):
        self.events.append(("log", step, steps))

    def validate(self, step):
        self.events.append(("validate", step))
        return Validation(dict(s=self.scores[step]), self.scores[step])

    def new_best(self, state):
        self.events.append(("best", state.best["step"]))

    def checkpoint(self, state):
        self.events.append(("checkpoint", state.step))

    def after_step(self, step, logged):
        return step == self.stop_at


def toy_optim(task, **train):
    t = TrainConfig(**{**dict(steps=12, lr=0.1, warmup=0, ema_decay=0.0, log_every=5, ckpt_every=4), **train})
    return OptimizerStep(task.w, task.ema, make_adamw(task.w, t, torch.device("cpu")), t)


def test_cadence_and_selection_of_the_best_validated_weights():
    scores = {3: 5.0, 6: 2.0, 9: 4.0, 12: 3.0}
    task = Toy(scores)
    optim = toy_optim(task)
    emas = {}
    real_new_best = task.new_best
    task.new_best = lambda state: (emas.update({state.step: task.ema.weight.clone()}), real_new_best(state))
    state = run_steps(task, optim, LoopState(), end=100, validate_every=3)
    assert isinstance(task, TrainTask) and state.step == 12  # never past train.steps
    logs = [e[1:] for e in task.events if e[0] == "log"]
    assert logs == [(5, 5), (10, 5), (12, 2)]  # every log_every and at the end, with the window's size
    assert [e[1] for e in task.events if e[0] == "checkpoint"] == [4, 8, 12]
    assert [e[1] for e in task.events if e[0] == "best"] == [3, 6]  # lower is better
    assert state.curve == [dict(step=s, s=v) for s, v in scores.items()]
    assert state.best == dict(step=6, score=2.0)
    torch.testing.assert_close(state.best_weights["weight"], emas[6], rtol=0, atol=0)
    # the validation comes before its step's checkpoint (the checkpoint holds it)
    order = [e[:2] for e in task.events if e[0] in ("validate", "checkpoint") and e[1] == 12]
    assert order == [("validate", 12), ("checkpoint", 12)]


def test_an_earlier_end_is_a_kill_no_checkpoint_and_after_step_can_stop():
    task = Toy()
    state = run_steps(task, toy_optim(task), LoopState(), end=6)
    assert state.step == 6 and [e[1] for e in task.events if e[0] == "checkpoint"] == [4]
    assert ("log", 6, 1) in task.events  # the last step is logged
    task = Toy(stop_at=3)
    assert run_steps(task, toy_optim(task), LoopState(), end=12).step == 3


@pytest.mark.parametrize("rule", ["stop", "skip"])
def test_the_nonfinite_rules(rule, tmp_path, capsys):
    task = Toy(nan_at={2})
    optim = toy_optim(task, nonfinite=rule)
    if rule == "stop":  # stops at the next checkpoint (step 4) before writing it
        with pytest.raises(TrainingError, match="non-finite loss or gradient at step 2; stopped"):
            run_steps(task, optim, LoopState(), end=12, ckpt_dir=tmp_path)
        assert not any(e[0] == "checkpoint" for e in task.events)
    else:
        state = run_steps(task, optim, LoopState(), end=12)
        assert state.step == 12 and "step 2 (loss=nan" in capsys.readouterr().out
        assert ("log", 5, 4) in task.events  # the skipped step is not in the window


def test_images_and_molecules_train_through_the_one_loop(tmp_path, monkeypatch):
    from kflow.molecules import train as mtrain
    from kflow.training import Trainer
    from kflow.training import trainer as itrain

    seen = []

    def spy(task, optim, state, end, *args, **kwargs):
        seen.append(type(task).__name__)
        assert isinstance(task, TrainTask)
        return loop.run_steps(task, optim, state, end, *args, **kwargs)

    monkeypatch.setattr(itrain, "run_steps", spy)
    monkeypatch.setattr(mtrain, "run_steps", spy)
    over = [
        "train.steps=4",
        "train.ckpt_every=2",
        "train.device=cpu",
        "train.log_every=2",
        f"out_dir={tmp_path / 'img'}",
    ]
    r = Trainer(load_config(ROOT / "configs" / "digits_tiny.yaml", over)).fit()
    assert r.step == 4 and (tmp_path / "img" / "checkpoints" / "ckpt-00000004.safetensors").exists()
    sys.path.insert(0, str(ROOT / "tests" / "molecules"))
    from test_training import small_cfg, toy_clusters

    cfg = small_cfg(steps=4, eval_every=2, ckpt_every=2)
    m = mtrain.train_assembly(toy_clusters(2), cfg, out=tmp_path / "mol", val=toy_clusters(2, seed=1), log=print)
    assert m.step == 4 and [c["step"] for c in m.curve] == [2, 4]
    assert seen == ["Trainer", "AssemblyTask"]
    # a molecule run resumes under the image runs' rule for which settings may change
    longer = replace(cfg, train=replace(cfg.train, log_every=1))
    mtrain.train_assembly(toy_clusters(2), longer, out=tmp_path / "mol", val=toy_clusters(2, seed=1), log=print)
    with pytest.raises(TrainingError, match="--resume: train.batch_size was 2"):
        bigger = replace(cfg, train=replace(cfg.train, batch_size=4))
        mtrain.train_assembly(toy_clusters(2), bigger, out=tmp_path / "mol", val=toy_clusters(2, seed=1), log=print)
