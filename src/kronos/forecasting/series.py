"""Reading and validating OHLCV data, and the time features the model sees."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import pandas as pd

PRICE_COLUMNS = ["open", "high", "low", "close"]
VOLUME_COLUMN = "volume"
AMOUNT_COLUMN = "amount"
FEATURE_COLUMNS = PRICE_COLUMNS + [VOLUME_COLUMN, AMOUNT_COLUMN]
OPEN, HIGH, LOW, CLOSE = range(4)  # positions of the price columns in FEATURE_COLUMNS
CLOSE_COLUMN = PRICE_COLUMNS[CLOSE]
FILE_LINE, FILE_ROW = "line", "row"  # index names of tables read from CSV and Parquet files
TIME_FEATURE_COLUMNS = ["minute", "hour", "weekday", "day", "month"]
# the fewest bars of history the CLI, the service and `predict_df` (TableOptions.min_history) forecast
# from; fewer than the model's lookback warns (kronos.forecasting.core.ShortHistoryWarning)
MIN_HISTORY = 10


def prepare_ohlcv(
    df: pd.DataFrame, name: str = "df", dtype: type[np.floating[Any]] = np.float32
) -> np.ndarray:
    """Validate bars and return them as `dtype` [L, 6] in FEATURE_COLUMNS order.

    float32 is what the model sees; scoring asks for float64, which keeps prices such as 60000.13.
    Missing volume means volume = amount = 0; missing amount means volume x mean(OHLC).
    Raises ValueError naming the column (and first row) for missing columns, non-numeric
    values, NaN or infinite values, and values that float32 cannot hold (whatever `dtype`:
    the model computes in float32).
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    df = with_feature_names(df, name)
    missing = [c for c in PRICE_COLUMNS if c not in df.columns]
    if missing:
        hint = (
            "; a file of closes only can be forecast with open/high/low built from the close "
            "(kronos --ohlc-from-close, or kronos.forecasting.series.ohlc_from_close(df))"
            if missing == ["open", "high", "low"]
            else ""
        )
        raise ValueError(f"{name} is missing price column(s) {missing}; it has {list(df.columns)}{hint}")
    present = [c for c in FEATURE_COLUMNS if c in df.columns]
    for col in present:
        if not pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            bad = (pd.to_numeric(df[col], errors="coerce").isna() & df[col].notna()).to_numpy()
            where = (
                f" (first bad value {df[col].iloc[np.argmax(bad)]!r} at {row_name(df.index, np.argmax(bad))})"
                if bad.any()
                else ""
            )
            raise ValueError(f"{name} column {col!r} must be numeric, got dtype {df[col].dtype}{where}")
    values = df[present].to_numpy(dtype=np.float64)
    bad_rows, bad_cols = np.nonzero(~np.isfinite(values))
    if len(bad_rows):
        row, col = bad_rows[0], present[bad_cols[0]]
        kind = "NaN" if np.isnan(values[row, bad_cols[0]]) else "infinite"
        raise ValueError(
            f"{name} column {col!r} has {kind} values ({len(bad_rows)} in all), first at {row_name(df.index, row)}"
        )
    bars = pd.DataFrame(values, columns=present)
    if VOLUME_COLUMN not in bars:
        bars[VOLUME_COLUMN] = 0.0
        bars[AMOUNT_COLUMN] = 0.0
    elif AMOUNT_COLUMN not in bars:
        bars[AMOUNT_COLUMN] = bars[VOLUME_COLUMN] * bars[PRICE_COLUMNS].mean(axis=1)
    values = bars[FEATURE_COLUMNS].to_numpy(dtype=np.float64)
    _check_float32_range(values, df.index, name, filled=AMOUNT_COLUMN not in present)
    return np.asarray(values.astype(dtype, order="F"))


COLUMN_ALIASES = {"vol": VOLUME_COLUMN}  # names that stand for a feature's own (MetaTrader's <VOL>)


def plain_name(column: object) -> str:
    """A column name as columns are matched: in lower case, without surrounding spaces or angle
    brackets (MetaTrader writes <CLOSE>)."""
    return str(column).strip().strip("<>").strip().lower()


def feature_sources(
    columns: Sequence[object], name: str, features: Sequence[str] = FEATURE_COLUMNS
) -> dict[str, Any]:
    """The column that holds each of `features` present, matched by `plain_name` ('Close',
    'CLOSE', MetaTrader's '<CLOSE>'; 'vol' is volume): the one place the library and the CLI
    match column names. Two columns that name
    the same feature ('Close' and 'close', or a repeated label) are refused, naming both."""
    found: dict[str, Any] = {}
    for col in columns:
        feature = plain_name(col)
        feature = COLUMN_ALIASES.get(feature, feature)
        if feature not in features:
            continue
        if feature in found:
            raise ValueError(
                f"{name} has two columns for {feature!r}: {found[feature]!r} and {col!r}; drop or rename one"
            )
        found[feature] = col
    return {f: found[f] for f in features if f in found}


def with_feature_names(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """`df` with its feature columns renamed to FEATURE_COLUMNS' lower-case names
    (`feature_sources`); other columns are kept as they are."""
    renames = {col: feature for feature, col in feature_sources(df.columns, name).items() if col != feature}
    return df.rename(columns=renames) if renames else df


FLOAT32 = np.finfo(np.float32)


def _check_float32_range(values: np.ndarray, index: pd.Index, name: str, filled: bool) -> None:
    """Refuse values float32 cannot hold: beyond its largest, or non-zero below its smallest normal
    (they would round to inf or to 0), naming the column and row."""
    size = np.abs(values)
    bad = (size > FLOAT32.max) | ((size < FLOAT32.tiny) & (size > 0))
    if not bad.any():
        return
    rows, cols = np.nonzero(bad)
    row, col = rows[0], FEATURE_COLUMNS[cols[0]]
    value = values[row, cols[0]]
    what = "too large" if abs(value) > FLOAT32.max else "too small"
    source = " (volume x mean price, filled in)" if filled and col == AMOUNT_COLUMN else ""
    raise ValueError(
        f"{name} column {col!r}{source} has values {what} for float32, in which the model computes "
        f"(magnitudes from {FLOAT32.tiny:.3g} to {FLOAT32.max:.3g}, or 0): {value:.6g} at "
        f"{row_name(index, row)} ({len(rows)} in all); rescale the column (e.g. prices in cents or "
        "thousands, volume in lots)"
    )


def row_name(index: pd.Index, position: int | np.integer) -> str:
    """How a message names a row: 'line N' of a CSV file (the header is line 1, as a spreadsheet
    counts), 'row N' of a Parquet file (from 1), else the DataFrame's row label."""
    label = index[int(position)]
    if index.name in (FILE_LINE, FILE_ROW):
        return f"{index.name} {label}"
    return f"row {label!r}"


def ohlc_from_close(
    df: pd.DataFrame, name: str = "df", warn: bool = True, by: pd.Series | None = None
) -> pd.DataFrame:
    """Bars built from a close-only table: open = the previous close (the first bar's own close),
    high = max(open, close), low = min(open, close). Other columns are kept. With `by` (a value
    per row), the rows of each value are one series: open is the previous close of its series.

    These are not the market's bars: the model was trained on real ones, and its forecasts of
    open, high and low follow the synthetic rule: it warns (`SyntheticOHLCWarning`) unless the
    caller warns itself.
    """
    if CLOSE_COLUMN not in df.columns:
        raise ValueError(
            f"{name} has no 'close' column to build open/high/low from; it has {list(df.columns)}"
        )
    present = [c for c in ("open", "high", "low") if c in df.columns]
    if present:
        raise ValueError(f"{name} already has {present}: open/high/low are built only for a close-only table")
    close = pd.to_numeric(df[CLOSE_COLUMN], errors="coerce")
    opens = (close.shift(1) if by is None else close.groupby(by.to_numpy(), sort=False).shift(1)).fillna(
        close
    )
    if warn:
        warnings.warn(
            f"{name}: open, high and low are synthesised from the close (open = previous close, high/low = "
            "max/min of open and close); forecasts of them follow that rule, not the market",
            SyntheticOHLCWarning,
            stacklevel=2,
        )
    out = df.copy()
    position = list(out.columns).index(CLOSE_COLUMN)
    for offset, (col, values) in enumerate(
        (("open", opens), ("high", np.maximum(opens, close)), ("low", np.minimum(opens, close)))
    ):
        out.insert(position + offset, col, values)
    return out


class SyntheticOHLCWarning(UserWarning):
    """Open, high and low were built from the close, not read from the data."""


def parse_timestamps(values: pd.Series, name: str) -> pd.Series:
    """`values` as datetimes; a missing or unreadable one is an error naming its row and value.

    Timestamps written with different UTC offsets (local times across a daylight-saving change,
    '2024-03-08 09:30-05:00' then '2024-03-11 09:30-04:00') are read as local wall-clock times,
    each keeping its clock reading without its offset, with a `TimezoneWarning`: the time of day
    the model sees and the session the future follows are the market's own. Where that would
    repeat a time (round-the-clock bars through the hour a clock change repeats), they are read
    in UTC instead.
    """
    try:
        stamps = _to_datetime(values)
    except (ValueError, TypeError):  # different UTC offsets
        stamps = _read_each(values, name)
    if (stamps.isna() & values.notna()).any():  # unreadable, or naive values beside zoned ones
        stamps = _read_each(values, name)
    bad = stamps.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"{name} must hold timestamps: {values.iloc[row]!r} at {row_name(values.index, row)} is missing "
            f"or unreadable ({int(bad.sum())} in all)"
        )
    return stamps


class TimezoneWarning(UserWarning):
    """Timestamps with different UTC offsets were read as local wall-clock times."""


def _to_datetime(values: pd.Series) -> pd.Series:
    with warnings.catch_warnings():
        # strings in no single format are parsed one by one; any that fail are reported by the caller
        warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
        return pd.to_datetime(values, errors="coerce")


def _read_each(values: pd.Series, name: str) -> pd.Series:
    """Timestamps read one by one: an error naming the first unreadable one, or, in different UTC
    offsets or zones, local wall-clock times (in UTC where those would repeat a time) with a
    TimezoneWarning."""
    instants = values.map({value: _instant(value) for value in pd.unique(values.dropna())})
    unreadable = (instants.isna() & values.notna()).to_numpy()
    if unreadable.any():
        row = int(np.argmax(unreadable))
        raise ValueError(
            f"{name} must hold timestamps: {values.iloc[row]!r} at {row_name(values.index, row)} is unreadable "
            f"({int(unreadable.sum())} in all)"
        )
    if not any(stamp.tzinfo is not None for stamp in instants.dropna()):
        return _to_datetime(instants)  # naive values in several formats
    clocks = _to_datetime(instants.map(_clock, na_action="ignore"))
    utc = _to_datetime(instants.map(_utc, na_action="ignore"))
    if clocks.duplicated().sum() > utc.duplicated().sum():
        stamps, read = utc, "in UTC: as local times they repeat the hour a clock change repeats"
    else:
        stamps, read = clocks, "as local wall-clock times, without their offsets"
    warnings.warn(
        f"{name}: the timestamps carry different UTC offsets or time zones (a daylight-saving change?); "
        f"they are read {read}",
        TimezoneWarning,
        stacklevel=4,
    )
    return stamps


def _instant(value: object) -> pd.Timestamp:
    """One value as a Timestamp (zoned if it says so); NaT if unreadable."""
    try:
        return pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return pd.NaT


def _clock(stamp: pd.Timestamp) -> pd.Timestamp:
    return stamp.tz_localize(None) if stamp.tzinfo is not None else stamp


def _utc(stamp: pd.Timestamp) -> pd.Timestamp:
    """A zoned timestamp in UTC; a naive one taken as UTC already."""
    return stamp.tz_convert("UTC") if stamp.tzinfo is not None else stamp.tz_localize("UTC")


def check_ids_present(ids: pd.Series, name: str, id_column: str) -> None:
    """Refuse a long table with a row that names no series, naming that row."""
    missing = ids.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"{name}: id column {id_column!r} has missing ids ({int(missing.sum())} in all), first at "
            f"{row_name(ids.index, np.argmax(missing))}"
        )


def check_time_order(
    timestamps: pd.Series, name: str, ids: pd.Series | None = None, id_column: str = "id", hint: str = ""
) -> None:
    """Refuse timestamps that repeat or go back in time, within each id's rows when `ids` is given.

    Both are checked on the step from each row to the previous row of its series, so interleaved
    series are fine. File loading sorts by time first (only repeats can remain); `predict_df`
    does not sort, so its unsorted rows are refused here.
    """
    keys = np.zeros(len(timestamps)) if ids is None else ids.to_numpy()
    step = pd.Series(timestamps.to_numpy()).groupby(keys, sort=False).diff()
    within = "" if ids is None else " within a series"

    def where(row: int) -> str:
        if ids is None:
            return ""
        value = ids.iloc[row]
        return f"{id_column}={value.item() if isinstance(value, np.generic) else value!r} "

    repeated = (step == pd.Timedelta(0)).to_numpy()
    if repeated.any():
        row, count = int(np.argmax(repeated)), int(repeated.sum())
        verb = "occurs" if count == 1 else "occur"
        raise ValueError(
            f"{name} has duplicate rows: {count} timestamp{'s' if count > 1 else ''} {verb} more than once"
            f"{within}, first {where(row)}at {timestamps.iloc[row]}{_clock_change_hint(timestamps[repeated])}"
            f"{hint}"
        )
    backwards = (step < pd.Timedelta(0)).to_numpy()
    if backwards.any():
        row = int(np.argmax(backwards))
        raise ValueError(
            f"{name}: rows are not sorted by time{within}: {where(row)}has {timestamps.iloc[row]} after a "
            "later timestamp; sort by id, then timestamp"
        )


def _clock_change_hint(repeated: pd.Series) -> str:
    """A hint when repeated timestamps look like the hour a daylight-saving change repeats: all
    within one hour of one night."""
    stamps = pd.DatetimeIndex(repeated)
    if stamps.tz is not None or stamps.max() - stamps.min() >= pd.Timedelta(hours=1):
        return ""
    if not (stamps.normalize() == stamps.normalize()[0]).all() or (stamps.hour > 3).any():
        return ""
    return (
        "; if these are local times, a daylight-saving change repeats that hour: write the timestamps "
        "with their UTC offset (e.g. 2024-11-03 01:30-04:00) or in UTC"
    )


T = TypeVar("T")


def checked_instance(value: object, kind: type[T], argument: str, example: str) -> T:
    """`value` if it is a `kind`; otherwise a TypeError naming `argument` with an `example` of one."""
    if not isinstance(value, kind):
        raise TypeError(
            f"{argument} must be a {kind.__module__}.{kind.__qualname__}, e.g. {example}, "
            f"got {type(value).__name__} {value!r}"
        )
    return value


def positive_int(value: object, name: str) -> int:
    """`value` as an int, refusing bools, floats and numbers below 1 with a message naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def checked_flag(value: object, name: str) -> bool:
    """`value` if it is a bool (numpy's too); otherwise a TypeError naming `name`."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


MAX_PRED_LEN = 10_000


def check_pred_len(value: object, name: str) -> int:
    """A forecast length: a positive integer up to MAX_PRED_LEN, the error naming `name`."""
    steps = positive_int(value, name)
    if steps > MAX_PRED_LEN:
        raise ValueError(
            f"{name} must be at most {MAX_PRED_LEN:,} steps, got {steps:,}: every step is a pass of the model "
            "over every path, and beyond the context each is conditioned on sampled bars alone"
        )
    return steps


def as_timestamps(timestamps: object, name: str) -> pd.Series:
    """Accept a Series, DatetimeIndex or list of datetimes; return a datetime64 Series."""
    if isinstance(timestamps, pd.Series):
        series = timestamps.reset_index(drop=True)
    elif isinstance(timestamps, (pd.Index, np.ndarray, list, tuple)):
        series = pd.Series(timestamps)
    else:
        raise TypeError(
            f"{name} must be a sequence of timestamps (Series, DatetimeIndex or list), got {type(timestamps).__name__}"
        )
    return parse_timestamps(series, name)


def time_features(timestamps: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """[minute, hour, weekday (Monday 0), day, month] per timestamp, float32 [L, 5]."""
    dt = pd.DatetimeIndex(timestamps)
    return np.stack([dt.minute, dt.hour, dt.day_of_week, dt.day, dt.month], axis=1).astype(np.float32)


def normalize(
    x: np.ndarray, clip: float, history: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column (x - mean) / (std + 1e-5) with the population std, clipped to ±clip.

    The statistics come from the first `history` rows (default: all), so that a training window
    is normalised on its history part alone, as a forecast is. Returns (normalised x, mean, std);
    `denormalize` inverts it. Computed in the dtype of x (float32, as upstream).
    """
    head = x if history is None else x[:history]
    mean, std = np.mean(head, axis=0), np.std(head, axis=0)
    return np.clip((x - mean) / (std + 1e-5), -clip, clip), mean, std


def denormalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    prices: np.ndarray = x * (std + 1e-5) + mean
    return prices


@dataclass(frozen=True, eq=False)
class Series:
    """One series of bars: what every reader returns and every forecast takes.

    `bars` [L, 6] float64 in FEATURE_COLUMNS order (finite), `timestamps` [L] strictly
    increasing. `key` names the series where it matters to the numbers: seeded draws come from
    (seed, key), and it is the series' id in a long table; `name` is how messages name it.
    `columns` are the feature columns its source really had (the others were filled in, as
    `prepare_ohlcv` fills them, and must not be scored); `synthetic_ohlc` says that open, high and
    low were built from the close (`ohlc_from_close`).
    """

    bars: np.ndarray
    timestamps: pd.DatetimeIndex
    key: object = 0
    name: str = "series"
    columns: tuple[str, ...] = tuple(FEATURE_COLUMNS)
    synthetic_ohlc: bool = False

    def __post_init__(self) -> None:
        bars = np.asarray(self.bars, dtype=np.float64)
        if bars.ndim != 2 or bars.shape[1] != len(FEATURE_COLUMNS):
            raise ValueError(
                f"{self.name}: bars must be [rows, 6] ({FEATURE_COLUMNS}), got shape {bars.shape}"
            )
        if not np.isfinite(bars).all():
            row, col = (int(i[0]) for i in np.nonzero(~np.isfinite(bars)))
            raise ValueError(f"{self.name} column {FEATURE_COLUMNS[col]!r} is not finite at row {row}")
        timestamps = pd.DatetimeIndex(self.timestamps)
        if len(timestamps) != len(bars):
            raise ValueError(f"{self.name} has {len(bars)} bars but {len(timestamps)} timestamps")
        if not (timestamps.is_monotonic_increasing and timestamps.is_unique) or timestamps.hasnans:
            check_time_order(pd.Series(timestamps), f"timestamps of {self.name}")
            raise ValueError(f"timestamps of {self.name} hold a missing value (NaT)")
        object.__setattr__(self, "bars", bars)
        object.__setattr__(self, "timestamps", timestamps)

    def __len__(self) -> int:
        return len(self.bars)

    def window(self, start: int, stop: int, key: object | None = None) -> Series:
        """Rows [start, stop), keyed by `key` (default: this series' key)."""
        return replace(
            self,
            bars=self.bars[start:stop],
            timestamps=self.timestamps[start:stop],
            key=self.key if key is None else key,
        )

    def frame(self) -> pd.DataFrame:
        """The bars as a DataFrame: a `timestamps` column, then FEATURE_COLUMNS."""
        out = pd.DataFrame(self.bars, columns=FEATURE_COLUMNS)
        out.insert(0, "timestamps", self.timestamps)
        return out

    @classmethod
    def from_frame(
        cls, df: pd.DataFrame, timestamps: object = None, *, key: object = 0, name: str = "df"
    ) -> Series:
        """A series from a DataFrame of open, high, low, close[, volume, amount] and its timestamps
        (default: its `timestamps` column), validated by `prepare_ohlcv`; rows must be in time order."""
        if timestamps is None:
            if not isinstance(df, pd.DataFrame) or "timestamps" not in df.columns:
                raise ValueError(f"{name} has no 'timestamps' column: pass the timestamps")
            timestamps, df = df["timestamps"], df.drop(columns="timestamps")
        bars = prepare_ohlcv(df, name, np.float64)
        stamps = as_timestamps(timestamps, f"timestamps of {name}")
        if len(stamps) != len(bars):
            raise ValueError(f"{name} has {len(bars)} rows but {len(stamps)} timestamps")
        check_time_order(stamps, f"timestamps of {name}")
        columns = tuple(feature_sources(df.columns, name))
        return cls(bars, pd.DatetimeIndex(stamps), key, name, columns)


def check_future(
    history: pd.DatetimeIndex, future: pd.DatetimeIndex, steps: int, name: str, what: str
) -> None:
    """Refuse future timestamps `name` that are not `steps` strictly increasing stamps after the
    history's last, in the history's time zone (`what` names the number of steps)."""
    if len(future) != steps:
        raise ValueError(f"{name} has {len(future)} entries but {what} is {steps}")
    check_time_order(pd.Series(future), name)
    if (history.tz is None) != (future.tz is None):
        raise ValueError(f"{name} has time zone {future.tz} but the history has {history.tz}")
    if future[0] <= history[-1]:
        raise ValueError(
            f"{name} starts at {future[0]}, not after the history's last timestamp {history[-1]}"
        )


def series_with_future(
    df: pd.DataFrame,
    x_timestamp: object,
    y_timestamp: object,
    pred_len: int,
    name: str = "df",
    key: object = 0,
) -> tuple[Series, pd.DatetimeIndex]:
    """The arguments of upstream's signatures (bars, their timestamps, the future's) as a series
    and its future timestamps, each checked with a message naming the argument."""
    bars = prepare_ohlcv(df, name, np.float64)
    x_ts = as_timestamps(x_timestamp, f"x_timestamp of {name}")
    y_ts = as_timestamps(y_timestamp, f"y_timestamp of {name}")
    if len(x_ts) != len(bars):
        raise ValueError(f"{name} has {len(bars)} rows but x_timestamp has {len(x_ts)}")
    if len(y_ts) != pred_len:
        raise ValueError(f"y_timestamp of {name} has {len(y_ts)} entries but pred_len is {pred_len}")
    if len(bars) < 2:
        raise ValueError(f"{name} needs at least 2 rows of history, got {len(bars)}")
    check_time_order(x_ts, f"x_timestamp of {name}")
    history, future = pd.DatetimeIndex(x_ts), pd.DatetimeIndex(y_ts)
    check_future(history, future, pred_len, f"y_timestamp of {name}", "pred_len")
    columns = tuple(feature_sources(df.columns, name))
    return Series(bars, history, key, name, columns), future


def series_list_with_futures(
    df_list: Sequence[pd.DataFrame],
    x_timestamp_list: Sequence[object],
    y_timestamp_list: Sequence[object],
    pred_len: int,
    series_ids: Sequence[object] | None = None,
) -> tuple[list[Series], list[pd.DatetimeIndex]]:
    """`series_with_future` of each DataFrame of upstream's list arguments, keyed by `series_ids`
    (default: positions) and named df_list[i]."""
    if not isinstance(df_list, (list, tuple)) or not df_list:
        raise ValueError("df_list must be a non-empty list of DataFrames")
    for what, values in (("x_timestamp_list", x_timestamp_list), ("y_timestamp_list", y_timestamp_list)):
        if not isinstance(values, (list, tuple)):
            raise TypeError(f"{what} must be a list, one entry per DataFrame, got {type(values).__name__}")
    if not len(df_list) == len(x_timestamp_list) == len(y_timestamp_list):
        raise ValueError(
            f"df_list, x_timestamp_list and y_timestamp_list differ in length: "
            f"{len(df_list)}, {len(x_timestamp_list)}, {len(y_timestamp_list)}"
        )
    if series_ids is not None and not isinstance(series_ids, (Sequence, pd.Index, np.ndarray)):
        raise TypeError(
            f"series_ids must be a list of ids, one per DataFrame, got {type(series_ids).__name__}"
        )
    keys: list[object] = list(range(len(df_list))) if series_ids is None else list(series_ids)
    if len(keys) != len(df_list):
        raise ValueError(f"series_ids has {len(keys)} ids for {len(df_list)} series")
    pairs = [
        series_with_future(df, xt, yt, pred_len, f"df_list[{i}]", key)
        for i, (df, xt, yt, key) in enumerate(zip(df_list, x_timestamp_list, y_timestamp_list, keys))
    ]
    return [series for series, _ in pairs], [future for _, future in pairs]
