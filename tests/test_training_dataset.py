"""kronos.training.dataset: windows split by time and normalised on their history only."""

from __future__ import annotations

import numpy as np
import torch

from kronos.forecasting.tables import load_series
from kronos.training import build_windows
from kronos.training.config import config_from_dict

torch.set_num_threads(1)


def test_windows_split_by_time_and_normalised_on_history_only(csv_files):
    series = load_series(csv_files)
    cfg = config_from_dict({"data": {"window": 24, "history": 20, "val_fraction": 0.2, "stride": 1}})
    train_set, val_set = build_windows(series, cfg.data)
    split = 300 - 60
    assert train_set.index[:, 1].max() + 24 <= split
    assert val_set.index[:, 1].min() >= split
    assert len(train_set) == 2 * (split - 24 + 1)
    row = int(np.nonzero((train_set.index[:, 0] == 1) & (train_set.index[:, 1] == 100))[0][0])
    x, stamp = train_set.batch(np.array([row]))
    raw = series[1].bars[100:124].astype(np.float32)  # the model computes in float32
    mean, std = raw[:20].mean(axis=0), raw[:20].std(axis=0)
    np.testing.assert_allclose(x[0], np.clip((raw - mean) / (std + 1e-5), -5, 5), rtol=1e-5, atol=1e-5)
    # Changing the bars after the history part leaves the history's normalised values unchanged.
    train_set.bars[1][120:124] *= 3
    x2, _ = train_set.batch(np.array([row]))
    np.testing.assert_array_equal(x2[0, :20], x[0, :20])
    assert stamp[0, 0, 1] == series[1].timestamps[100].hour
