"""Training and fine-tuning Kronos tokenizers and predictors on your own OHLCV files."""

from .config import Config, load_config
from .dataset import WindowSet, build_windows, load_windows
from .trainer import TrainResult, train

__all__ = ["Config", "TrainResult", "WindowSet", "build_windows", "load_config", "load_windows", "train"]
