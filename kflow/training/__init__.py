"""Training: the flow-matching loss (light) and the Trainer (which pulls in data, recipe and
sampling, so it is imported only when asked for: `kflow.training.loss` stays cheap)."""

from .loss import FlowMatchingLoss, LossOutput

_TRAINER = ("Trainer", "TrainResult", "train")


def __getattr__(name: str):
    if name in _TRAINER:
        from . import trainer

        return getattr(trainer, name)
    if name == "TrainingError":
        from ..utils.errors import TrainingError

        return TrainingError
    raise AttributeError(f"module 'kflow.training' has no attribute {name!r}")


__all__ = ["FlowMatchingLoss", "LossOutput", "Trainer", "TrainingError", "TrainResult", "train"]
