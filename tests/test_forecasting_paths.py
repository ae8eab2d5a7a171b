"""kronos.forecasting.paths: statistics of sampled paths on hand-made paths (OHLC violations and
repair, realised volatility, direction) and the quantile levels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kronos.forecasting.paths import (
    DEFAULT_QUANTILE_LEVELS,
    check_quantile_levels,
    horizon_volatility,
    ohlc_violation_rate,
    ohlc_violations,
    path_statistics,
    realized_volatility,
    repair_ohlc,
)
from kronos.forecasting.series import CLOSE

torch.set_num_threads(1)


def bar(o, h, lo, c):
    return [o, h, lo, c, 1.0, 1.0]


def test_ohlc_violations_and_repair():
    paths = np.array(
        [
            [bar(10, 11, 9, 10.5), bar(10, 9.5, 9, 10.5)],  # fine; high below close
            [bar(10, 11, 10.2, 10.5), bar(10, 9, 11, 10)],  # low above open; high below low
        ]
    )
    np.testing.assert_array_equal(ohlc_violations(paths), [[False, True], [True, True]])
    assert ohlc_violation_rate(paths) == 0.75
    fixed = repair_ohlc(paths)
    assert ohlc_violation_rate(fixed) == 0.0
    np.testing.assert_array_equal(fixed[1, 1, :4], [10, 11, 9, 10])
    np.testing.assert_array_equal(fixed[0, 1, :4], [10, 10.5, 9, 10.5])
    np.testing.assert_array_equal(fixed[..., [0, 3, 4, 5]], paths[..., [0, 3, 4, 5]])
    assert ohlc_violation_rate(paths) == 0.75  # the input is not modified


def test_realized_volatility_and_direction_by_hand():
    closes = np.array([[101.0, 99.0], [100.0, 100.0], [-1.0, 100.0]])
    paths = np.repeat(closes[:, :, None], 6, axis=2)
    vol = realized_volatility(paths, 100.0)
    r1, r2 = np.log(1.01), np.log(99 / 101)
    np.testing.assert_allclose(vol[0], [abs(r1), np.hypot(r1, r2)])
    np.testing.assert_allclose(vol[1], [0.0, 0.0])
    assert np.isnan(vol[2]).all()  # a non-positive close has no log return
    stats = path_statistics(paths, 100.0, (0.5,), repair=False)
    np.testing.assert_allclose(stats["prob_close_above_last"], [1 / 3, 0.0])
    np.testing.assert_allclose(stats["realized_vol"], [abs(r1) / 2, np.hypot(r1, r2) / 2])
    np.testing.assert_allclose(stats["close_q0.5"], [100.0, 100.0])
    assert list(stats)[:3] == ["open_mean", "open_q0.5", "high_mean"]


def test_default_levels_are_the_median_and_the_50_80_95_bands():
    assert DEFAULT_QUANTILE_LEVELS == (0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975)


def test_horizon_volatility_is_the_mean_over_paths_of_each_paths_realised_volatility():
    one = math.sqrt(math.log(1.1) ** 2 + math.log(0.9) ** 2)
    paths = np.zeros((2, 2, 6))
    paths[0, :, CLOSE], paths[1, :, CLOSE] = [110.0, 99.0], [100.0, 100.0]
    assert realized_volatility(paths, 100.0)[:, -1] == pytest.approx([one, 0.0])
    assert horizon_volatility(paths, 100.0) == pytest.approx([math.log(1.1) / 2, one / 2])
    paths[1, 0, CLOSE] = 0.0  # a non-positive close leaves its path out from that step on
    assert horizon_volatility(paths, 100.0) == pytest.approx([math.log(1.1), one])


def test_quantile_levels_whose_columns_would_share_a_name_are_refused():
    with pytest.raises(ValueError, match=r"print alike \(0.5\)"):
        check_quantile_levels([0.5, 0.5000000001])
