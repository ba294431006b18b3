"""Training, evaluation and site calibration of the vision anomaly detector (wrapped by the CLI)."""

from .calibrate import calibrate_vision
from .evaluate import evaluate_vision
from .train import train_vision

__all__ = ["calibrate_vision", "evaluate_vision", "train_vision"]
