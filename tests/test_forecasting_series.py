"""kronos.forecasting.series: a Series checks its bars and timestamps; bars built from closes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos.forecasting.series import FEATURE_COLUMNS, Series, SyntheticOHLCWarning, ohlc_from_close


def test_series_checks_its_bars_and_timestamps(tiny_ohlcv):
    stamps = pd.DatetimeIndex(tiny_ohlcv["timestamps"].iloc[:5])
    bars = tiny_ohlcv[FEATURE_COLUMNS].iloc[:5].to_numpy()
    one = Series(bars, stamps, key="k", name="k")
    assert len(one) == 5 and one.bars.dtype == np.float64
    assert list(one.frame().columns) == ["timestamps", *FEATURE_COLUMNS]
    part = one.window(1, 4, key=("k", 4))
    assert len(part) == 3 and part.key == ("k", 4) and part.timestamps[0] == stamps[1]
    with pytest.raises(ValueError, match=r"bars must be \[rows, 6\]"):
        Series(bars[:, :4], stamps)
    with pytest.raises(ValueError, match="has 5 bars but 4 timestamps"):
        Series(bars, stamps[:4])
    with pytest.raises(ValueError, match="not sorted by time"):
        Series(bars, stamps[::-1])
    broken = bars.copy()
    broken[2, 3] = np.nan
    with pytest.raises(ValueError, match="column 'close' is not finite at row 2"):
        Series(broken, stamps)


def test_ohlc_from_close_builds_bars_by_its_rule_and_warns():
    closes = pd.DataFrame({"close": [10.0, 12.0, 11.0]})
    with pytest.warns(SyntheticOHLCWarning, match="synthesised from the close"):
        built = ohlc_from_close(closes)
    assert built["open"].tolist() == [10.0, 10.0, 12.0]
    assert built["high"].tolist() == [10.0, 12.0, 12.0] and built["low"].tolist() == [10.0, 10.0, 11.0]
    with pytest.raises(ValueError, match="already has"):
        ohlc_from_close(built)
