"""Training and fine-tuning Kronos tokenizers and predictors on your own OHLCV files."""

from kronos.training.config import Config, load_config
from kronos.training.dataset import WindowSet, build_windows, load_windows
from kronos.training.trainer import Selection, TrainResult, train

__all__ = [
    "Config",
    "Selection",
    "TrainResult",
    "WindowSet",
    "build_windows",
    "load_config",
    "load_windows",
    "train",
]
