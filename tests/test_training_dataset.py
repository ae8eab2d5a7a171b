"""kronos.training.dataset: windows split by time and normalised on their history only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import make_bars

from kronos.forecasting.tables import load_series
from kronos.training import build_windows
from kronos.training.config import config_from_dict
from kronos.training.dataset import mirror_window

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


def test_mirror_reflects_every_other_window_of_the_series_it_names(csv_files, tmp_path):
    """mirror="intraday" (config train.mirror, per stage): the odd-start windows of hourly series
    come reflected (open and close negated, high and low negated and swapped, volume as it was),
    the even ones as they are; daily series are left alone; "none" mirrors nothing; an unknown
    value names the key."""
    daily = tmp_path / "daily.csv"
    make_bars(300, seed=5, freq="D").to_csv(daily, index=False)
    series = load_series([*csv_files, daily])
    data = config_from_dict({"data": {"window": 24, "history": 20}}).data
    plain, _ = build_windows(series, data)
    mirrored, _ = build_windows(series, data, "intraday")
    assert mirrored.mirrored.tolist() == [True, True, False] and not plain.mirrored.any()
    rows = np.arange(len(plain))
    before, after = plain.batch(rows)[0], mirrored.batch(rows)[0]
    odd = (plain.index[:, 0] < 2) & (plain.index[:, 1] % 2 == 1)
    assert odd.sum() > 100
    np.testing.assert_array_equal(after[~odd], before[~odd])
    np.testing.assert_array_equal(after[odd][..., [0, 3]], -before[odd][..., [0, 3]])
    np.testing.assert_array_equal(after[odd][..., 1], -before[odd][..., 2])
    np.testing.assert_array_equal(after[odd][..., 2], -before[odd][..., 1])
    np.testing.assert_array_equal(after[odd][..., 4:], before[odd][..., 4:])
    np.testing.assert_array_equal(mirror_window(mirror_window(before[0])), before[0])
    assert (
        pd.Series(after[odd][..., 3].mean(axis=1)).corr(pd.Series(before[odd][..., 3].mean(axis=1))) < -0.99
    )
    with pytest.raises(
        ValueError, match=r"^config train.mirror must be one of \['none', 'intraday', 'all'\], got 'odd'"
    ):
        config_from_dict({"train": {"mirror": "odd"}})
    stage = config_from_dict({"train": {"predictor": {"mirror": "intraday"}}}).train_for("predictor")
    assert stage.mirror == "intraday"
