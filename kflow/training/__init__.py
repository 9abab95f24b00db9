from .loss import FlowMatchingLoss, LossOutput, draw_k
from .trainer import Trainer, TrainingError, TrainResult, train

__all__ = ["FlowMatchingLoss", "LossOutput", "draw_k", "Trainer", "TrainingError", "TrainResult", "train"]
