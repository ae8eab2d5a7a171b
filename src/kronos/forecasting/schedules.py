"""Schedules of bars: a series' future timestamps (`future_timestamps`, inferred from its own
history or stepped by a frequency), its bar spacing, and the gaps in its history (`report_gaps`).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import warnings
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np
import pandas as pd

from kronos.forecasting.series import (
    check_pred_len,
    check_time_order,
)

GAP_POLICIES = ("warn", "raise", "ignore")
ONE_DAY = pd.Timedelta(days=1)


class GapWarning(UserWarning):
    """Some series have missing bars (gaps) in their history."""


@dataclass
class Gap:
    """Missing bars in a series' history: how many, and the first missing timestamp."""

    first_missing: pd.Timestamp
    missing: int
    id: object = None


@dataclass
class FutureIndex:
    """Future timestamps of one series, how they are spaced in words (for messages), and any gap
    found in its history."""

    timestamps: pd.DatetimeIndex
    description: str
    gap: Gap | None = field(default=None)


def bar_step(timestamps: pd.Series | pd.DatetimeIndex) -> pd.Timedelta | None:
    """The most common step between bars (the smallest of equally common ones); None for fewer than 2 bars."""
    stamps = pd.DatetimeIndex(timestamps).as_unit("ns")
    if len(stamps) < 2:
        return None
    return pd.Timedelta(int(pd.Series(np.diff(stamps.asi8)).mode().min()), unit="ns")


def bar_spacing(timestamps: pd.Series | pd.DatetimeIndex) -> str:
    """`bar_step` as a pandas alias ('D', 'h', '5min'); '' for fewer than 2 bars."""
    step = bar_step(timestamps)
    if step is None:
        return ""
    if step % ONE_DAY == pd.Timedelta(0):
        days = step // ONE_DAY
        return "D" if days == 1 else f"{days}D"
    return str(pd.tseries.frequencies.to_offset(step).freqstr)


def future_timestamps(
    timestamps: pd.DatetimeIndex,
    n: int,
    name: str,
    freq: str | pd.DateOffset | None = None,
    calendar: str | None = None,
) -> FutureIndex:
    """The next `n` timestamps of a series, from `freq` or inferred from its own history.

    With `freq` (a pandas offset such as "5min", "h", "B", "D"), timestamps step by it from the
    last one. Otherwise, in this order:

    1. `pandas.infer_freq` finds a regular frequency (e.g. every 5 minutes, hourly, daily,
       business days, weekly, month starts): continue it.
    2. Daily bars with gaps (business days with holidays, or a missing day): the next days of
       the trading week, at the last bar's time of day. Without a `calendar` no holiday is
       known, so a future holiday gets a bar.
    3. Intraday bars with gaps (trading sessions with nights, weekends, lunch breaks): the
       history's times of day form the session template; the future is the next template slots
       on days of the trading week. A history within one calendar day has no template: it
       steps on by its most common spacing.
    4. Bars spaced a fixed number of days apart with whole missing steps: continue the spacing.

    The trading week is the weekdays seen in a history spanning two weeks or more; a shorter
    history trades Monday to Friday, or every day if it has a bar on a weekend.

    Missing bars (history slots of the inferred schedule with no row) come back as `gap`, and
    `description` says the spacing in words ("frequency B", "every 1 day, weekdays only").
    Raises ValueError naming the series where no schedule fits: no regular spacing (the most
    common gap between bars is under half of them), irregular spacing (e.g. one bar off the
    grid), intraday bars seen at a time of day only once while other times recur, or several
    bars on one day in daily data. Passing `freq` skips inference and these checks.
    """
    n = check_pred_len(n, "the number of future timestamps")
    timestamps = pd.DatetimeIndex(timestamps).as_unit("ns")
    if timestamps.isna().any():
        raise ValueError(
            f"{name}: the timestamps hold a missing value (NaT) at position {int(np.argmax(timestamps.isna()))}"
        )
    check_time_order(pd.Series(timestamps), name)
    if calendar is None:
        schedule = _schedule(timestamps, n, name, freq)
        return FutureIndex(schedule.timestamps, schedule.description, _gap(schedule.absent))
    wanted = n
    while True:  # more candidates until n of them fall on sessions
        schedule = _schedule(timestamps, wanted, name, freq)
        open_days = on_sessions(schedule.timestamps, calendar)
        if open_days.sum() >= n:
            break
        if wanted > 10 * n + 1000:
            raise ValueError(f"{name}: calendar {calendar} has no sessions on the days this series trades")
        wanted *= 2
    absent = schedule.absent[on_sessions(schedule.absent, calendar)]
    future = schedule.timestamps[open_days][:n]
    return FutureIndex(future, f"{schedule.description}, {calendar} sessions", _gap(absent))


@dataclass
class _Schedule:
    """Candidate future timestamps, their spacing in words, and the history's missing slots."""

    timestamps: pd.DatetimeIndex
    description: str
    absent: pd.DatetimeIndex


def _gap(absent: pd.DatetimeIndex) -> Gap | None:
    return Gap(absent[0], len(absent)) if len(absent) else None


def _schedule(timestamps: pd.DatetimeIndex, n: int, name: str, freq: str | pd.DateOffset | None) -> _Schedule:
    """`future_timestamps` without a calendar, of checked timestamps."""
    if freq is not None:
        return _continue(timestamps, n, frequency(freq))
    if len(timestamps) < 3:
        raise ValueError(
            f"{name}: cannot infer a frequency from {len(timestamps)} timestamps; it needs 3 or more, "
            "or pass freq="
        )
    # the offset itself, not pd.infer_freq's string (which pandas 4 turns into an offset)
    inferred = pd.DatetimeIndex(timestamps, freq="infer").freq
    if inferred is not None:
        return _continue(timestamps, n, inferred)
    tz = timestamps.tz
    local = timestamps.tz_localize(None) if tz is not None else timestamps
    gaps = pd.Series(np.diff(local.asi8))
    step = pd.Timedelta(int(gaps.mode().min()), unit="ns")
    share = float((gaps == step.value).mean())
    if share < 0.5:
        raise ValueError(
            f"{name}: cannot infer the bar frequency: the timestamps are not regularly spaced (the most "
            f"common gap, {step}, is only {share:.0%} of the gaps between bars); pass freq= to override"
        )
    if step == ONE_DAY:
        future = _daily_schedule(local, n, name)
    elif step < ONE_DAY:
        future = _intraday_schedule(local, n, name, step)
    else:
        future = _fixed_step(local, n, name, step)
    if tz is not None:
        future.timestamps = _localized(future.timestamps, tz)
        future.absent = _localized(future.absent, tz)
    return future


def _localized(stamps: pd.DatetimeIndex, tz: object) -> pd.DatetimeIndex:
    """Wall-clock times in `tz`: a repeated hour read as its first, a skipped one shifted forward."""
    return stamps.tz_localize(tz, ambiguous=np.zeros(len(stamps), dtype=bool), nonexistent="shift_forward")


def _continue(timestamps: pd.DatetimeIndex, n: int, offset: pd.DateOffset) -> _Schedule:
    try:
        future = pd.date_range(timestamps[-1] + offset, periods=n, freq=offset)
    except (OverflowError, pd.errors.OutOfBoundsDatetime) as err:
        raise ValueError(
            f"{n} steps of {offset.freqstr} after {timestamps[-1]} run past the last date pandas can hold "
            f"({pd.Timestamp.max.date()})"
        ) from err
    return _Schedule(future, f"frequency {offset.freqstr}", timestamps[:0])


def _describe_gap(gap: pd.Timedelta) -> str:
    """'1 day', '4 hours', '5 minutes', '30 seconds'."""
    seconds = int(gap.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{gap.total_seconds():g} seconds"


def _describe_week(weekdays: np.ndarray) -> str:
    """'' for every day, ', weekdays only' for Monday to Friday, else ', on Mon, Wed'."""
    if len(weekdays) == 7:
        return ""
    if list(weekdays) == list(range(5)):
        return ", weekdays only"
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    return ", on " + ", ".join(names[d] for d in weekdays)


def _trading_weekdays(days: pd.DatetimeIndex) -> np.ndarray:
    """Weekdays (Monday 0) on which the series trades.

    A history spanning two weeks or more shows its trading week: the weekdays seen. A shorter
    one is taken to trade Monday to Friday, or every day if it has a bar on a weekend.
    """
    seen = np.unique(days.day_of_week)
    if days[-1] - days[0] >= pd.Timedelta(days=13):
        return seen
    return np.arange(7) if (seen >= 5).any() else np.arange(5)


def frequency(freq: str | pd.DateOffset) -> pd.DateOffset:
    """`freq` as a pandas offset that steps forward in time; a ValueError naming it otherwise."""
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError) as err:
        raise ValueError(f"freq {freq!r} is not a pandas frequency (e.g. '5min', 'h', 'B', 'D')") from err
    if offset.n <= 0:
        raise ValueError(f"freq {offset.freqstr!r} does not step forward in time: give a positive spacing")
    return offset


def _daily_schedule(timestamps: pd.DatetimeIndex, n: int, name: str) -> _Schedule:
    days = timestamps.normalize()
    repeated = days[1:] == days[:-1]
    if repeated.any():
        raise ValueError(
            f"{name}: daily bars but two bars fall on {days[1:][repeated][0].date()}; pass freq= to override"
        )
    weekdays = _trading_weekdays(days)
    calendar = pd.date_range(days[0], days[-1], freq="D")
    expected = calendar[np.isin(calendar.day_of_week, weekdays)]
    absent = expected[~expected.isin(days)]
    time_of_day = timestamps[-1] - days[-1]
    horizon = pd.date_range(days[-1] + ONE_DAY, periods=(n // max(len(weekdays), 1) + 2) * 7, freq="D")
    future = horizon[np.isin(horizon.day_of_week, weekdays)][:n] + time_of_day
    return _Schedule(future, f"every 1 day{_describe_week(weekdays)}", absent + time_of_day)


def _intraday_schedule(timestamps: pd.DatetimeIndex, n: int, name: str, step: pd.Timedelta) -> _Schedule:
    days = timestamps.normalize()
    offsets = timestamps - days
    if days[0] == days[-1]:
        _check_grid(timestamps, step, name)
        return _Schedule(
            pd.date_range(timestamps[-1] + step, periods=n, freq=step),
            f"every {_describe_gap(step)}",
            timestamps[:0],
        )
    slot_days = pd.Series(days).groupby(offsets.asi8).nunique()
    usual = float(np.median(slot_days.to_numpy()))
    if usual >= 3:
        odd = slot_days.index[slot_days.to_numpy() == 1]
        if len(odd):
            where = timestamps[np.isin(offsets.asi8, odd)][0]
            raise ValueError(
                f"{name}: irregular timestamp {where}: its time of day appears only once while the "
                f"others recur on ~{usual:.0f} days; pass freq= to override"
            )
    weekdays = _trading_weekdays(days)
    week = _weekly_slots(days, offsets, weekdays, np.sort(slot_days.index.to_numpy()))
    per_day = max(len(slots) for slots in week.values())
    calendar = pd.date_range(days[-1], periods=(n // per_day + 2) * 7, freq="D")
    slots = _slots_on(calendar, week)
    future = pd.DatetimeIndex(slots[slots > timestamps[-1].to_datetime64()][:n])
    expected = _slots_on(pd.date_range(days[0], days[-1], freq="D"), week)
    inside = (expected >= timestamps[0].to_datetime64()) & (expected <= timestamps[-1].to_datetime64())
    absent = pd.DatetimeIndex(expected[inside & ~np.isin(expected, timestamps.to_numpy())])
    return _Schedule(future, f"every {_describe_gap(step)}{_describe_session(week, step)}", absent)


def _weekly_slots(
    days: pd.DatetimeIndex, offsets: pd.TimedeltaIndex, weekdays: np.ndarray, template: np.ndarray
) -> dict[int, np.ndarray]:
    """The times of day (ns) a series trades, per trading weekday (Monday 0).

    A history spanning two weeks or more shows each weekday's own session, the times seen on
    that weekday: a week that opens on Sunday evening and closes on Friday evening (currencies)
    keeps its shape. A shorter one trades every time of day seen (`template`) on each trading
    weekday.
    """
    if days[-1] - days[0] < pd.Timedelta(days=13):
        return {int(day): template for day in weekdays}
    seen = pd.Series(offsets.asi8).groupby(np.asarray(days.day_of_week)).unique()
    return {int(day): np.sort(seen[day]) for day in weekdays}


def _slots_on(calendar: pd.DatetimeIndex, week: dict[int, np.ndarray]) -> np.ndarray:
    """Every trading slot on the days of `calendar`, in order, as datetime64[ns]."""
    parts = [
        (calendar[calendar.day_of_week == day].to_numpy()[:, None] + times.astype("timedelta64[ns]")).ravel()
        for day, times in week.items()
    ]
    return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype="datetime64[ns]")


def _describe_session(week: dict[int, np.ndarray], step: pd.Timedelta) -> str:
    """', 8 bars a day, weekdays only', or for sessions that differ by weekday the week's open
    and close: ', 120 bars a week, Sun 22:00 to Fri 21:00'."""
    sessions = list(week.values())
    if all(np.array_equal(sessions[0], other) for other in sessions[1:]):
        per_day = "" if len(sessions[0]) * step == ONE_DAY else f", {len(sessions[0])} bars a day"
        return per_day + _describe_week(np.array(sorted(week)))
    day_ns = ONE_DAY.value
    slots = np.sort(np.concatenate([day * day_ns + week[day] for day in week]))
    gaps = np.diff(np.append(slots, slots[0] + 7 * day_ns))
    close = int(np.argmax(gaps))  # the longest pause in the week is its weekend
    first, last = slots[(close + 1) % len(slots)], slots[close]
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

    def when(ns: int) -> str:
        minutes = (ns % day_ns) // 60_000_000_000
        return f"{names[ns // day_ns]} {minutes // 60:02d}:{minutes % 60:02d}"

    return f", {len(slots)} bars a week, {when(int(first))} to {when(int(last))}"


def _fixed_step(timestamps: pd.DatetimeIndex, n: int, name: str, step: pd.Timedelta) -> _Schedule:
    _check_grid(timestamps, step, name)
    absent = pd.date_range(timestamps[0], timestamps[-1], freq=step).difference(timestamps)
    future = pd.date_range(timestamps[-1] + step, periods=n, freq=step)
    return _Schedule(future, f"every {_describe_gap(step)}", absent)


def _check_grid(timestamps: pd.DatetimeIndex, step: pd.Timedelta, name: str) -> None:
    off_grid = (timestamps - timestamps[0]) % step != pd.Timedelta(0)
    if off_grid.any():
        raise ValueError(
            f"{name}: irregular timestamp {timestamps[off_grid][0]}: not a whole number of {step} steps "
            f"after {timestamps[0]}; pass freq= to override"
        )


def report_gaps(gaps: list[Gap], on_gap: str, id_column: str) -> None:
    """Warn (GapWarning) or raise about series with missing bars, naming the first few."""
    if not gaps or on_gap == "ignore":
        return
    shown = "; ".join(
        f"{id_column}={g.id!r}: {g.missing} missing, first at {g.first_missing}" for g in gaps[:5]
    )
    more = f" (and {len(gaps) - 5} more series)" if len(gaps) > 5 else ""
    message = f"{len(gaps)} series have gaps in their history: {shown}{more}"
    if on_gap == "raise":
        raise ValueError(message + "; pass on_gap='warn' or 'ignore' to forecast anyway")
    warnings.warn(message, GapWarning, stacklevel=3)


CALENDARS_HINT = (
    "exchange calendars are ISO 10383 codes such as XNYS (New York), XNAS, XLON, XFRA, XTKS, XHKG, XSHG; list "
    'them with: python -c "import exchange_calendars as xc; print(xc.get_calendar_names(include_aliases=False))"'
)


def _calendars() -> ModuleType:
    """The `exchange_calendars` package (the `calendars` extra): holidays from its rules, offline."""
    try:
        return importlib.import_module("exchange_calendars")
    except ImportError as err:
        raise ImportError(
            "exchange calendars need the exchange_calendars package: pip install 'kronos-forecasting[calendars]'"
        ) from err


@functools.lru_cache(maxsize=32)
def _sessions(calendar: str, first_year: int, last_year: int) -> pd.DatetimeIndex:
    """The session dates of `calendar` over whole years (cached: building a calendar takes ~0.1 s)."""
    module = _calendars()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package's own deprecation notices, not the user's
        bounds = module.get_calendar(calendar)
        first, last = pd.Timestamp(first_year, 1, 1), pd.Timestamp(last_year, 12, 31)
        low, high = bounds.bound_min(), bounds.bound_max()  # None: no bound
        first = first if low is None else max(first, low.tz_localize(None).normalize())
        last = last if high is None else min(last, high.tz_localize(None).normalize())
        if first > last:
            raise ValueError(f"calendar {calendar} covers {low} to {high}, not {first_year} to {last_year}")
        sessions = module.get_calendar(calendar, start=first, end=last).sessions
    return pd.DatetimeIndex(sessions).tz_localize(None).as_unit("ns")


def check_calendar(calendar: object) -> str | None:
    """The exchange calendar's name as `exchange_calendars` spells it ("xnys" is XNYS; None
    passes); a ValueError saying how to find the names."""
    if calendar is None:
        return None
    names = _calendars().get_calendar_names()
    if isinstance(calendar, str) and calendar.strip().upper() in names:
        return str(calendar.strip().upper())
    if isinstance(calendar, str) and calendar in names:
        return calendar
    near = difflib.get_close_matches(str(calendar).upper(), names, n=3)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    raise ValueError(f"unknown exchange calendar {calendar!r}: {hint}{CALENDARS_HINT}")


def on_sessions(stamps: pd.DatetimeIndex, calendar: str) -> np.ndarray:
    """Which of `stamps` fall on a session day of the exchange `calendar` (by their wall-clock date)."""
    if not len(stamps):
        return np.zeros(0, dtype=bool)
    days = (stamps.tz_localize(None) if stamps.tz is not None else stamps).normalize()
    return np.asarray(days.isin(_sessions(str(check_calendar(calendar)), days.min().year, days.max().year)))
