"""Future timestamps inferred from each series' own history, and long-table splitting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos.forecasting.schedules import future_timestamps
from kronos.forecasting.series import SyntheticOHLCWarning
from kronos.forecasting.tables import TableLayout, split_table


def test_regular_frequencies_continue():
    hourly = pd.date_range("2024-01-01 00:00", periods=50, freq="h")
    assert list(future_timestamps(hourly, 3, "s").timestamps) == list(
        pd.date_range("2024-01-03 02:00", periods=3, freq="h")
    )
    business = pd.bdate_range("2024-01-01", periods=20)  # ends Friday 2024-01-26
    out = future_timestamps(business, 3, "s")
    assert list(out.timestamps) == list(pd.to_datetime(["2024-01-29", "2024-01-30", "2024-01-31"]))
    assert out.gap is None


def test_business_days_with_a_holiday_report_the_gap():
    days = pd.bdate_range("2024-01-01", periods=30).delete(11)  # Tuesday 2024-01-16 missing
    out = future_timestamps(days, 2, "s")
    assert list(out.timestamps) == list(pd.to_datetime(["2024-02-12", "2024-02-13"]))  # Mon, Tue
    assert (out.gap.first_missing, out.gap.missing) == (pd.Timestamp("2024-01-16"), 1)


def test_daily_bars_keep_the_time_of_day_and_skip_weekends():
    stamps = pd.bdate_range("2024-03-01", periods=12) + pd.Timedelta(hours=16)
    stamps = stamps.delete(4)
    out = future_timestamps(stamps, 2, "s")
    assert stamps[-1] == pd.Timestamp("2024-03-18 16:00")  # a Monday
    assert list(out.timestamps) == [pd.Timestamp("2024-03-19 16:00"), pd.Timestamp("2024-03-20 16:00")]
    assert out.gap.first_missing == pd.Timestamp("2024-03-07 16:00")


def test_intraday_session_with_lunch_break_and_weekend():
    # 30-minute bars 09:30-11:30 and 13:30-15:00 on weekdays, Thursday to the next Friday
    slots = ["10:00", "10:30", "11:00", "11:30", "13:30", "14:00", "14:30", "15:00"]
    days = pd.bdate_range("2024-03-07", "2024-03-15")
    stamps = pd.DatetimeIndex([f"{d.date()} {s}" for d in days for s in slots])[:-2]  # ends Fri 14:00
    out = future_timestamps(stamps, 4, "s")
    assert list(out.timestamps) == list(
        pd.to_datetime(["2024-03-15 14:30", "2024-03-15 15:00", "2024-03-18 10:00", "2024-03-18 10:30"])
    )
    assert out.gap is None
    holey = stamps.delete([20, 21])
    gap = future_timestamps(holey, 1, "s").gap
    assert (gap.first_missing, gap.missing) == (stamps[20], 2)


def test_round_the_clock_data_with_a_gap_keeps_weekends():
    stamps = pd.date_range("2024-03-01", periods=24 * 10, freq="h").delete(100)
    out = future_timestamps(stamps, 2, "s")
    assert list(out.timestamps) == [stamps[-1] + pd.Timedelta(hours=1), stamps[-1] + pd.Timedelta(hours=2)]
    assert out.gap.missing == 1


def test_timezone_aware_timestamps_stay_aware():
    stamps = pd.bdate_range("2024-01-01", periods=30, tz="America/New_York").delete(11)
    out = future_timestamps(stamps, 2, "s")
    assert str(out.timestamps.tz) == "America/New_York"
    assert out.timestamps[0] == pd.Timestamp("2024-02-12", tz="America/New_York")


def test_fixed_multi_day_step_and_freq_override():
    weekly = pd.date_range("2024-01-05", periods=10, freq="7D").delete(3)
    out = future_timestamps(weekly, 1, "s")
    assert out.timestamps[0] == weekly[-1] + pd.Timedelta(days=7)
    assert out.gap.missing == 1
    assert list(future_timestamps(weekly, 2, "s", freq="D").timestamps) == [
        weekly[-1] + pd.Timedelta(days=1),
        weekly[-1] + pd.Timedelta(days=2),
    ]


def test_uninferable_schedules_raise_naming_the_series():
    stamps = (
        pd.date_range("2024-01-01", periods=20, freq="7D").delete(5).insert(5, pd.Timestamp("2024-02-03"))
    )
    with pytest.raises(ValueError, match=r"id='w': irregular timestamp 2024-02-03"):
        future_timestamps(stamps, 2, "id='w'")
    daily = pd.date_range("2024-01-01", periods=10, freq="D").insert(2, pd.Timestamp("2024-01-02 12:00"))
    with pytest.raises(ValueError, match="two bars fall on 2024-01-02"):
        future_timestamps(daily, 2, "s")
    with pytest.raises(ValueError, match="cannot infer a frequency from 2 timestamps"):
        future_timestamps(pd.DatetimeIndex(["2024-01-01", "2024-01-02"]), 1, "s")


def test_split_table_as_given_keeps_first_appearance_order_and_dtypes():
    stamps = pd.date_range("2024-01-01", periods=4, freq="D")
    frame = pd.DataFrame(
        {
            "id": [7, 3, 7, 3, 7, 3, 7, 3],
            "timestamps": np.repeat(stamps, 2),
            "open": np.arange(8.0) + 1,
            "high": np.arange(8.0) + 2,
            "low": np.arange(8.0),
            "close": np.arange(8.0) + 1,
        },
        index=[5, 5, 6, 6, 7, 7, 8, 8],  # duplicate labels must not matter
    )
    series = split_table(frame, "df", as_given=True)
    assert [s.key for s in series] == [7, 3]
    np.testing.assert_array_equal(series[0].bars[:, 0], [1, 3, 5, 7])
    np.testing.assert_array_equal(series[1].bars[:, 4], [0, 0, 0, 0])  # no volume column: volume 0
    assert list(series[1].timestamps) == list(stamps)


def test_split_table_of_a_file_sorts_each_series_by_time_and_keys_ids_as_text_in_id_order():
    stamps = pd.date_range("2024-01-01", periods=3, freq="D")
    frame = pd.DataFrame(
        {
            "Sym": [10, 2, 10, 2, 10, 2],  # interleaved, each series out of time order
            "Date": [stamps[2], stamps[1], stamps[0], stamps[0], stamps[1], stamps[2]],
            "Open": [3.0, 20.0, 1.0, 10.0, 2.0, 30.0],
            "High": [4.0, 21.0, 2.0, 11.0, 3.0, 31.0],
            "Low": [2.0, 19.0, 0.5, 9.0, 1.0, 29.0],
            "Close": [3.5, 20.5, 1.5, 10.5, 2.5, 30.5],
        }
    )
    series = split_table(frame, "f.csv", TableLayout(id_column="Sym"))
    assert [(s.key, s.name) for s in series] == [("2", "f.csv[Sym=2]"), ("10", "f.csv[Sym=10]")]
    np.testing.assert_array_equal(series[0].bars[:, 3], [10.5, 20.5, 30.5])
    np.testing.assert_array_equal(series[1].bars[:, 3], [1.5, 2.5, 3.5])
    assert all(list(s.timestamps) == list(stamps) for s in series)
    assert series[0].columns == ("open", "high", "low", "close")
    with pytest.raises(
        ValueError, match=r"f.csv has duplicate rows: 1 timestamp .* within a series, first Sym=10"
    ):
        split_table(
            frame.assign(Date=frame["Date"].where(frame.index != 0, stamps[0])), "f.csv", TableLayout("Sym")
        )


def test_split_table_builds_bars_from_closes_series_by_series():
    stamps = pd.date_range("2024-01-01", periods=3, freq="D")
    frame = pd.DataFrame(
        {
            "symbol": ["a", "b"] * 3,
            "timestamps": np.repeat(stamps, 2),
            "close": [1.0, 10.0, 2.0, 9.0, 4.0, 12.0],
        }
    )
    with pytest.warns(SyntheticOHLCWarning, match="f.csv: open, high and low of 2 series"):
        a, b = split_table(frame, "f.csv", TableLayout("symbol", from_close=True))
    np.testing.assert_array_equal(a.bars[:, :4], [[1, 1, 1, 1], [1, 2, 1, 2], [2, 4, 2, 4]])
    np.testing.assert_array_equal(b.bars[:, :4], [[10, 10, 10, 10], [10, 10, 9, 9], [9, 12, 9, 12]])
    assert a.synthetic_ohlc and b.synthetic_ohlc and a.columns == ("close",)
