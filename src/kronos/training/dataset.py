"""Training windows cut from OHLCV series, split by time, normalised without look-ahead."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kronos.forecasting.schedules import ONE_DAY, bar_step
from kronos.forecasting.series import CLOSE, HIGH, LOW, OPEN, Series, normalize, time_features
from kronos.forecasting.tables import load_series
from kronos.training.config import Config, DataConfig, TrainConfig


@dataclass
class WindowSet:
    """All windows of one split: (series index, start) pairs into shared bar and stamp arrays.

    A window is `window` consecutive bars, normalised (`kronos.forecasting.series.normalize`) on
    the statistics of its first `history` bars only, so no statistic comes from bars after the
    history part. The windows of series flagged in `mirrored` that start at an odd bar are
    mirrored (`mirror_window`).
    """

    bars: list[np.ndarray]
    stamps: list[np.ndarray]
    index: np.ndarray
    window: int
    history: int
    clip: float
    mirrored: np.ndarray  # [series] bool

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised bars [B, window, 6] and time features [B, window, 5] of the given windows."""
        x = np.empty((len(rows), self.window, 6), dtype=np.float32)
        stamps = np.empty((len(rows), self.window, 5), dtype=np.float32)
        for out_row, (series, start) in enumerate(self.index[rows]):
            x[out_row] = normalize(self.bars[series][start : start + self.window], self.clip, self.history)[0]
            if self.mirrored[series] and start % 2:
                x[out_row] = mirror_window(x[out_row])
            stamps[out_row] = self.stamps[series][start : start + self.window]
        return x, stamps


def mirror_window(x: np.ndarray) -> np.ndarray:
    """A normalised window [L, 6] with its prices reflected about the history's mean: open and
    close negated, high and low negated and swapped, volume and amount as they were.

    A market that falls as this one rose, with the same volatility and volume. Mirroring half of
    the windows leaves the data no average direction to learn, so a model trained on it invents
    none: for intraday bars, whose drift per bar is far below their noise, that is the truth.
    """
    out = x.copy()
    out[:, [OPEN, CLOSE]] = -x[:, [OPEN, CLOSE]]
    out[:, HIGH], out[:, LOW] = -x[:, LOW], -x[:, HIGH]
    return out


def mirrored_series(series: list[Series], mirror: str) -> np.ndarray:
    """Which series' windows `mirror` (config train.mirror) mirrors: none, those with bars less
    than a day apart ("intraday"), or all."""
    if mirror == "all":
        return np.ones(len(series), dtype=bool)
    if mirror == "intraday":
        steps = [bar_step(s.timestamps) for s in series]
        return np.array([step is not None and step < ONE_DAY for step in steps], dtype=bool)
    return np.zeros(len(series), dtype=bool)


def expand_paths(patterns: list[str], config: Config | None = None) -> list[Path]:
    """Files named by paths or glob patterns (relative to the config file's directory)."""
    files: list[Path] = []
    for pattern in patterns:
        resolved = config.resolve_path(pattern) if config is not None else pattern
        if any(ch in resolved for ch in "*?["):
            matches = sorted(glob.glob(resolved))
            if not matches:
                raise FileNotFoundError(f"data pattern {pattern!r} matches no file")
            files.extend(Path(m) for m in matches)
        else:
            files.append(Path(resolved))
    return files


def validation_rows(n_windows: int, cfg: TrainConfig) -> np.ndarray:
    """A fixed, evenly spread subset of validation windows (all when val_samples is 0)."""
    if 0 < cfg.val_samples < n_windows:
        return np.unique(np.linspace(0, n_windows - 1, cfg.val_samples).round().astype(np.int64))
    return np.arange(n_windows)


def split_point(length: int, val_fraction: float) -> int:
    """Index of the first validation bar: the final `val_fraction` of a series is held out."""
    return length - int(round(length * val_fraction))


def build_windows(
    series: list[Series], data: DataConfig, mirror: str = "none"
) -> tuple[WindowSet, WindowSet | None]:
    """Train and validation windows over all series, split by time per series, those of the series
    `mirror` names (`mirrored_series`) mirrored every other window.

    Training windows lie wholly before each series' split point, validation windows wholly after
    it. A series too short for one window on each side is an error naming it.
    """
    window, stride, history = data.window, data.stride, data.history_len()
    bars = [np.ascontiguousarray(s.bars, dtype=np.float32) for s in series]  # as the model computes
    stamps = [time_features(s.timestamps) for s in series]
    train_index, val_index = [], []
    for i, s in enumerate(series):
        split = split_point(len(s), data.val_fraction)
        needed = (
            window
            if data.val_fraction == 0
            else int(np.ceil(window / min(data.val_fraction, 1 - data.val_fraction)))
        )
        if split < window or (data.val_fraction > 0 and len(s) - split < window):
            raise ValueError(
                f"series {s.name!r} is too short: {len(s)} bars, but a window of {window} bars in the training "
                f"part and in the validation part (the last {data.val_fraction:.0%}) needs about {needed}; "
                f"use more data, a smaller data.window or a larger data.val_fraction"
            )
        starts = np.arange(0, split - window + 1, stride)
        train_index.append(np.stack([np.full_like(starts, i), starts], axis=1))
        if data.val_fraction > 0:
            starts = np.arange(split, len(s) - window + 1, stride)
            val_index.append(np.stack([np.full_like(starts, i), starts], axis=1))
    mirrored = mirrored_series(series, mirror)
    train = WindowSet(bars, stamps, np.concatenate(train_index), window, history, data.clip, mirrored)
    val = (
        WindowSet(bars, stamps, np.concatenate(val_index), window, history, data.clip, mirrored)
        if val_index
        else None
    )
    return train, val


def load_windows(config: Config, mirror: str = "none") -> tuple[list[Series], WindowSet, WindowSet | None]:
    """Read and validate every data file named in the config, then cut the windows (`build_windows`)."""
    data = config.data
    if not data.paths:
        raise ValueError("no training data: set data.paths in the config or pass --data FILE")
    files = expand_paths(data.paths, config)
    series = load_series(files, data.layout())
    train, val = build_windows(series, data, mirror)
    return series, train, val
