"""kronos.forecasting.schedules: future timestamps inferred from each series' own history (calendars,
sessions, gaps, time zones), and schedules that cannot be inferred named."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from kronos.forecasting.schedules import future_timestamps
from kronos.forecasting.tables import TableOptions

torch.set_num_threads(1)


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


def test_future_timestamps_follow_the_data():
    business = pd.Series(pd.bdate_range("2024-01-01", periods=30))
    future = future_timestamps(business, 3, "s")
    assert list(future.timestamps) == list(pd.bdate_range("2024-02-12", periods=3))
    assert future.description == "frequency B"
    daily_with_holidays = business.drop(index=[5, 17]).reset_index(drop=True)  # pandas cannot name this one
    future = future_timestamps(daily_with_holidays, 4, "s")
    assert list(future.timestamps) == list(pd.bdate_range("2024-02-12", periods=4))
    assert future.description == "every 1 day, weekdays only"
    hourly = pd.Series(pd.date_range("2024-01-06", periods=50, freq="h")).drop(index=[3])
    future = future_timestamps(hourly, 2, "s")
    assert list(future.timestamps) == [pd.Timestamp("2024-01-08 02:00"), pd.Timestamp("2024-01-08 03:00")]
    with pytest.raises(ValueError, match="needs 3 or more"):
        future_timestamps(hourly[:2], 2, "s")


def test_hourly_currencies_skip_the_weekend_they_do_not_trade():
    hours = pd.date_range("2024-01-07 22:00", "2024-02-02 21:00", freq="h")
    weekend = ((hours.day_of_week == 4) & (hours.hour >= 22)) | (hours.day_of_week == 5)
    weekend |= (hours.day_of_week == 6) & (hours.hour < 22)
    fx = hours[~weekend]  # Sunday 22:00 to Friday 21:00, as currencies trade
    future = future_timestamps(fx, 3, "EURUSD")
    assert list(future.timestamps) == list(
        pd.to_datetime(["2024-02-04 22:00", "2024-02-04 23:00", "2024-02-05 00:00"])
    )
    assert future.description == "every 1 hour, 120 bars a week, Sun 22:00 to Fri 21:00"
    assert future.gap is None


# --- exchange calendars ------------------------------------------------------------------------------


def test_a_named_exchange_calendar_skips_holidays_in_the_future_and_in_gaps():
    pytest.importorskip("exchange_calendars")
    holidays = {"2024-11-28", "2024-12-25"}  # Thanksgiving and Christmas: NYSE is closed
    days = pd.DatetimeIndex(
        [d for d in pd.bdate_range("2024-11-01", "2024-12-31") if str(d.date()) not in holidays]
    )
    plain = future_timestamps(days, 3, "s")
    assert plain.gap.missing == 2 and plain.timestamps[0] == pd.Timestamp("2025-01-01")  # a holiday bar
    xnys = future_timestamps(days, 3, "s", calendar="XNYS")
    assert xnys.gap is None
    assert list(xnys.timestamps) == list(pd.to_datetime(["2025-01-02", "2025-01-03", "2025-01-06"]))
    assert xnys.description.endswith("XNYS sessions")
    # 2025-01-09: the national day of mourning for President Carter, a rule no hand-written list had
    closed = future_timestamps(pd.bdate_range("2024-12-02", "2025-01-08"), 2, "s", freq="B", calendar="xnys")
    assert list(closed.timestamps) == list(pd.to_datetime(["2025-01-10", "2025-01-13"]))
    intraday = pd.DatetimeIndex(
        [d + pd.Timedelta(hours=9, minutes=30 * (k + 1)) for d in days for k in range(4)]
    )
    bars = future_timestamps(intraday, 6, "s", calendar="XNYS")
    assert bars.gap is None and bars.timestamps[0] == pd.Timestamp("2025-01-02 09:30")
    assert list(bars.timestamps.normalize().unique()) == list(pd.to_datetime(["2025-01-02", "2025-01-03"]))


def test_an_unknown_calendar_says_how_to_find_the_names():
    pytest.importorskip("exchange_calendars")
    with pytest.raises(
        ValueError, match=r"unknown exchange calendar 'XNYZ': did you mean .*XNYS.*get_calendar_names"
    ):
        future_timestamps(pd.bdate_range("2024-01-01", periods=5), 2, "s", calendar="XNYZ")
    with pytest.raises(ValueError, match="unknown exchange calendar 'nowhere'"):
        TableOptions(calendar="nowhere")
    assert TableOptions(calendar="xlon").calendar == "XLON"
