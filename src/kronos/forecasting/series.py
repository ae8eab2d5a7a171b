"""Reading and validating OHLCV data, and the time features the model sees."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

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


def prepare_ohlcv(df: pd.DataFrame, name: str = "df", dtype=np.float32) -> np.ndarray:
    """Validate bars and return them as `dtype` [L, 6] in FEATURE_COLUMNS order.

    float32 is what the model sees; scoring asks for float64, which keeps prices such as 60000.13.
    Missing volume means volume = amount = 0; missing amount means volume x mean(OHLC).
    Raises ValueError naming the column (and first row) for missing columns, non-numeric
    values, NaN or infinite values, and values that float32 cannot hold (whatever `dtype`:
    the model computes in float32).
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
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
    return values.astype(dtype, order="F")


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


def ohlc_from_close(df: pd.DataFrame, name: str = "df", warn: bool = True) -> pd.DataFrame:
    """Bars built from a close-only table: open = the previous close (the first bar's own close),
    high = max(open, close), low = min(open, close). Other columns are kept.

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
    opens = close.shift(1).fillna(close)
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


def _instant(value) -> pd.Timestamp:
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
        return "" if ids is None else f"{id_column}={ids.iloc[row]!r} "

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


def positive_int(value, name: str) -> int:
    """`value` as an int, refusing bools, floats and numbers below 1 with a message naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


MAX_PRED_LEN = 10_000


def check_pred_len(value, name: str) -> int:
    """A forecast length: a positive integer up to MAX_PRED_LEN, the error naming `name`."""
    steps = positive_int(value, name)
    if steps > MAX_PRED_LEN:
        raise ValueError(
            f"{name} must be at most {MAX_PRED_LEN:,} steps, got {steps:,}: every step is a pass of the model "
            "over every path, and beyond the context each is conditioned on sampled bars alone"
        )
    return steps


def as_timestamps(timestamps, name: str) -> pd.Series:
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


def time_features(timestamps: pd.Series) -> np.ndarray:
    """[minute, hour, weekday (Monday 0), day, month] per timestamp, float32 [L, 5]."""
    dt = timestamps.dt
    return np.stack([dt.minute, dt.hour, dt.day_of_week, dt.day, dt.month], axis=1).astype(np.float32)


def normalize(x: np.ndarray, clip: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column (x - mean) / (std + 1e-5) with the population std, clipped to ±clip.

    Returns (normalised x, mean, std); `denormalize` inverts it. Computed in float32 as upstream.
    """
    mean, std = np.mean(x, axis=0), np.std(x, axis=0)
    return np.clip((x - mean) / (std + 1e-5), -clip, clip), mean, std


def denormalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return x * (std + 1e-5) + mean


TIMESTAMP_CANDIDATES = ("timestamps", "timestamp", "date", "datetime", "time")
CSV_SUFFIXES = (".csv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")
DUPLICATE_HINT = (
    "; duplicate timestamps in one file usually mean several symbols: name the id column (--id-column)"
)


@dataclass
class OHLCVSeries:
    """One symbol's bars: validated [L, 6] in FEATURE_COLUMNS order, sorted by time.

    `columns` are the feature columns the source really had; the others were filled in (as
    `prepare_ohlcv` does), which evaluation must not score.
    """

    name: str
    timestamps: pd.Series
    bars: np.ndarray
    symbol: str | None = None
    columns: tuple[str, ...] = tuple(FEATURE_COLUMNS)

    def __len__(self) -> int:
        return len(self.bars)

    @property
    def key(self) -> str:
        """Its id in a long table, and so what its seeded draws are keyed by: its symbol, else its name."""
        return self.symbol or self.name

    @property
    def synthetic_ohlc(self) -> bool:
        """Open, high and low were built from the close (`ohlc_from_close`), not read."""
        return "open" not in self.columns

    def frame(self) -> pd.DataFrame:
        """The bars as a DataFrame of FEATURE_COLUMNS with a `timestamps` column."""
        out = pd.DataFrame(self.bars, columns=FEATURE_COLUMNS)
        out.insert(0, "timestamps", self.timestamps.to_numpy())
        return out


def long_table(series: Sequence[OHLCVSeries], id_column: str = "symbol") -> pd.DataFrame:
    """Series as one long table, the input of `predict_df`: each named by its symbol, else its name."""
    return pd.concat([one.frame().assign(**{id_column: one.key}) for one in series], ignore_index=True)


def _format_suffix(path: Path) -> str | None:
    """The data format of a file name ('.csv' for prices.csv.gz), or None if it is not a data file."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes.pop()
    if suffixes and suffixes[-1] in CSV_SUFFIXES + PARQUET_SUFFIXES:
        return suffixes[-1]
    return None


def series_name(path: Path) -> str:
    """A file's series name: its name without the data suffixes ('AAPL' for AAPL.csv.gz)."""
    name = path.name
    if path.suffix.lower() in COMPRESSION_SUFFIXES:
        name = Path(name).stem
    return Path(name).stem


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a .csv (optionally compressed) or .parquet file into a DataFrame.

    Rows are labelled as messages name them: a CSV's by its line (the header is line 1), a
    Parquet file's by its row counted from 1. A CSV separated by semicolons, tabs or bars is
    recognised from its header; with semicolons, a decimal comma too. A Parquet file's index
    (e.g. the timestamps) becomes a column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    suffix = _format_suffix(path)
    if suffix in PARQUET_SUFFIXES:
        try:
            table = pd.read_parquet(path)
        except ImportError as err:
            raise ImportError(
                f"reading {path} needs pyarrow: pip install 'kronos[parquet]' (or save the data as CSV)"
            ) from err
        except (ValueError, OSError) as err:
            raise ValueError(f"{path} is not a readable Parquet file: {err}") from err
        if not isinstance(table.index, pd.RangeIndex):
            table = table.reset_index()
        return table.set_axis(pd.RangeIndex(1, len(table) + 1, name=FILE_ROW))
    if suffix in CSV_SUFFIXES:
        try:
            table = _read_csv(path)
        except pd.errors.EmptyDataError as err:
            raise ValueError(f"{path} is empty: it has no header line and no rows") from err
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
            raise ValueError(f"{path} is not a readable CSV file: {err}") from err
        return table.set_axis(pd.RangeIndex(2, len(table) + 2, name=FILE_LINE))
    raise ValueError(f"{path}: unsupported file type; use .csv or .parquet")


CSV_SEPARATORS = (";", "\t", "|")


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV with commas, or with the separator its one-column header turns out to hold."""
    table = pd.read_csv(path)
    if len(table.columns) != 1:
        return table
    header = str(table.columns[0])
    sep = next((sep for sep in CSV_SEPARATORS if sep in header), None)
    if sep is None:
        return table
    table = pd.read_csv(path, sep=sep)
    if sep == ";":
        # '1,5' is one and a half where semicolons separate: European spreadsheets write it so
        comma = pd.read_csv(path, sep=sep, decimal=",")
        if _numeric_columns(comma) > _numeric_columns(table):
            return comma
    return table


def _numeric_columns(table: pd.DataFrame) -> int:
    return sum(pd.api.types.is_numeric_dtype(dtype) for dtype in table.dtypes)


def expand_folders(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; a folder as its .csv and .parquet files, sorted by name."""
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.is_file() and _format_suffix(p))
        if not found:
            raise ValueError(f"folder {str(path)!r} holds no .csv or .parquet files")
        files.extend(found)
    return files


@dataclass(frozen=True)
class TableLayout:
    """Where a file or table keeps its bars (`kronos forecast --id-column --columns
    --timestamp-column --ohlc-from-close`).

    `id_column` splits a long table into one series per value (None: the table is one series);
    `column_map` maps our fields (open, ..., amount) to the table's names, other columns are
    matched in any case (`Close` is `close`); `timestamp_column` names the timestamps (None: the
    first of TIMESTAMP_CANDIDATES present, in any case); with `from_close`, a table without open,
    high and low gets them from its close (`ohlc_from_close`).
    """

    id_column: str | None = None
    column_map: dict[str, str] = field(default_factory=dict)
    timestamp_column: str | None = None
    from_close: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.column_map) - set(FEATURE_COLUMNS))
        if unknown:
            raise ValueError(f"column_map names unknown field(s) {unknown}; fields are {FEATURE_COLUMNS}")


ONE_SERIES = TableLayout()  # a table of one series, its columns found by name


def _checked_layout(layout: TableLayout) -> TableLayout:
    if not isinstance(layout, TableLayout):
        raise TypeError(
            f"layout must be a kronos.forecasting.series.TableLayout, e.g. TableLayout(id_column='symbol'), "
            f"got {type(layout).__name__} {layout!r}"
        )
    return layout


def map_columns(df: pd.DataFrame, name: str, layout: TableLayout = ONE_SERIES) -> pd.DataFrame:
    """Rename the table's columns to `timestamps` and FEATURE_COLUMNS, keeping only those, as
    `layout.column_map` and `layout.timestamp_column` say.

    Timestamps are parsed; row labels are kept, so that errors name the file's rows.
    """
    column_map, timestamp_column = layout.column_map, layout.timestamp_column
    by_lower: dict[str, str] = {}
    for col in df.columns:
        by_lower.setdefault(str(col).lower(), col)
    renames: dict = {}
    for feature in FEATURE_COLUMNS:
        source = column_map.get(feature)
        if source is not None:
            if source not in df.columns:
                raise ValueError(
                    f"{name}: column {source!r} (mapped to {feature!r}) is not in the file; it has {list(df.columns)}"
                )
        else:
            source = by_lower.get(feature)
        if source is not None:
            renames[source] = feature
    if timestamp_column:
        if timestamp_column not in df.columns:
            raise ValueError(
                f"{name}: timestamp column {timestamp_column!r} is not in the file; it has {list(df.columns)}"
            )
        ts_source = timestamp_column
    else:
        found = next((by_lower[c] for c in TIMESTAMP_CANDIDATES if c in by_lower), None)
        if found is None:
            raise ValueError(
                f"{name} has no timestamp column (looked for {list(TIMESTAMP_CANDIDATES)} in any case); "
                f"it has {list(df.columns)}: name it with the timestamp column option"
            )
        ts_source = found
    renames[ts_source] = "timestamps"
    # parsed here, where the file's own column name is known for the error message
    timestamps = parse_timestamps(df[ts_source], f"{name} column {ts_source!r}")
    return df[list(renames)].rename(columns=renames).assign(timestamps=timestamps)


def series_from_frame(
    df: pd.DataFrame, name: str, symbol: str | None = None, dtype=np.float32
) -> OHLCVSeries:
    """Validate a frame with `timestamps` and FEATURE_COLUMNS (as from `map_columns`) into a series.

    Rows are sorted by time; repeated or unreadable timestamps are errors naming the row.
    """
    timestamps = parse_timestamps(df["timestamps"], f"{name} column 'timestamps'")
    features = df.drop(columns="timestamps")
    bars = prepare_ohlcv(features, name, dtype)
    order = np.argsort(timestamps.to_numpy(), kind="stable")
    timestamps = timestamps.iloc[order].reset_index(drop=True)
    check_time_order(timestamps, name, hint=DUPLICATE_HINT)
    columns = tuple(c for c in FEATURE_COLUMNS if c in features.columns)
    return OHLCVSeries(name, timestamps, bars[order], symbol, columns)


def split_table(
    df: pd.DataFrame, name: str, layout: TableLayout = ONE_SERIES, dtype=np.float32
) -> list[OHLCVSeries]:
    """One table as series: the whole of it named `name`, or one series per `layout.id_column` value.

    With `layout.from_close`, a table without open, high and low gets them from its close
    (`ohlc_from_close`), with one `SyntheticOHLCWarning`; such series have `synthetic_ohlc`.
    """
    id_column = _checked_layout(layout).id_column
    if df.empty:
        raise ValueError(f"{name} holds no rows")
    if not id_column:
        groups: list[tuple[str | None, str, pd.DataFrame]] = [(None, name, df)]
    else:
        if id_column not in df.columns:
            raise ValueError(f"{name} has no id column {id_column!r}; it has {list(df.columns)}")
        check_ids_present(df[id_column], name, id_column)
        groups = [
            (str(symbol), f"{name}[{id_column}={symbol}]", group)
            for symbol, group in df.groupby(id_column, sort=True)
        ]
    series = []
    for symbol, label, group in groups:
        mapped = map_columns(group, label, layout)
        synthetic = layout.from_close and not any(c in mapped.columns for c in ("open", "high", "low"))
        if synthetic:
            mapped = ohlc_from_close(mapped, label, warn=False)
        one = series_from_frame(mapped, label, symbol, dtype)
        if synthetic:
            one = replace(one, columns=tuple(c for c in one.columns if c not in ("open", "high", "low")))
        series.append(one)
    built = [one.name for one in series if one.synthetic_ohlc]
    if built:
        warnings.warn(
            f"{name}: open, high and low of {len(built)} series are synthesised from the close (open = previous "
            "close, high/low = max/min of open and close); forecasts of them follow that rule, not the market",
            SyntheticOHLCWarning,
            stacklevel=3,
        )
    return series


def load_series(
    paths: Sequence[str | Path], layout: TableLayout = ONE_SERIES, dtype=np.float32
) -> list[OHLCVSeries]:
    """Read OHLCV series from files or folders of them, each file laid out as `layout` says: one
    symbol per file, or long tables split by `layout.id_column`. A file's series is named after
    the file, a long table's `file[id=value]`.

    Every error names the file (and symbol) and the column or line at fault.
    """
    _checked_layout(layout)
    if not paths:
        raise ValueError("no data files given")
    series: list[OHLCVSeries] = []
    for path in expand_folders(paths):
        found = split_table(read_table(path), path.name, layout, dtype)
        if not layout.id_column:
            found = [replace(found[0], name=series_name(path))]
        series.extend(found)
    names = [s.name for s in series]
    if len(set(names)) != len(names):
        seen = {n for n in names if names.count(n) > 1}
        raise ValueError(f"several data files give the same series name(s) {sorted(seen)}: rename the files")
    return series
