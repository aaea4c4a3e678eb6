"""Dual logging (TensorBoard + MLflow + vtm progress lines) for training scripts.

Importing this package imports neither mlflow nor torch; TrainingLogger does that when it starts.
The example scripts: `python -m vtm_tui.train.classification` / `vtm_tui.train.segmentation`.
"""
from vtm_tui.train.logger import TrainingLogger, TrainingTerminated

__all__ = ["TrainingLogger", "TrainingTerminated"]
