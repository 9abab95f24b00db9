from .loss import FlowMatchingLoss, LossOutput
from .trainer import Trainer, TrainingError, TrainResult, train

__all__ = ["FlowMatchingLoss", "LossOutput", "Trainer", "TrainingError", "TrainResult", "train"]
