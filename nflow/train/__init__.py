"""Training, evaluation and sample hooks for any model with ``log_prob``, ``parameters`` and state dicts."""
from nflow.train.config import MAX_CONSECUTIVE_SKIPS, TrainConfig
from nflow.train.evaluate import evaluate
from nflow.train.hooks import make_eval_hook, make_sample_hook, save_samples_png
from nflow.train.runlog import read_log
from nflow.train.schedule import warmup_lr
from nflow.train.trainer import (CHECKPOINT_NAME, CURVE_NAME, LOG_NAME, ResumeError, Trainer, TrainingDiverged,
                                 TrainResult)

__all__ = [
    "TrainConfig", "MAX_CONSECUTIVE_SKIPS", "Trainer", "TrainResult", "TrainingDiverged", "ResumeError", "evaluate",
    "make_sample_hook", "make_eval_hook", "save_samples_png", "read_log", "warmup_lr", "CHECKPOINT_NAME",
    "LOG_NAME", "CURVE_NAME",
]
