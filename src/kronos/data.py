"""Reading and validating OHLCV data, and the time features the model sees."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

PRICE_COLUMNS = ["open", "high", "low", "close"]
VOLUME_COLUMN = "volume"
AMOUNT_COLUMN = "amount"
FEATURE_COLUMNS = PRICE_COLUMNS + [VOLUME_COLUMN, AMOUNT_COLUMN]
OPEN, HIGH, LOW, CLOSE = range(4)  # positions of the price columns in FEATURE_COLUMNS
TIME_FEATURE_COLUMNS = ["minute", "hour", "weekday", "day", "month"]


def prepare_ohlcv(df: pd.DataFrame, name: str = "df", dtype=np.float32) -> np.ndarray:
    """Validate bars and return them as `dtype` [L, 6] in FEATURE_COLUMNS order.

    float32 is what the model sees; scoring asks for float64, which keeps prices such as 60000.13.
    Missing volume means volume = amount = 0; missing amount means volume x mean(OHLC).
    Raises ValueError naming the column (and first row) for missing columns, non-numeric
    values, NaN or infinite values.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in PRICE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{name} is missing price column(s) {missing}; it has {list(df.columns)}")
    present = [c for c in FEATURE_COLUMNS if c in df.columns]
    for col in present:
        if not pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            bad = pd.to_numeric(df[col], errors="coerce").isna() & df[col].notna()
            where = (
                f" (first bad value {df[col][bad].iloc[0]!r} at row {df.index[bad][0]!r})"
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
            f"{name} column {col!r} has {kind} values ({len(bad_rows)} in all), first at row {df.index[row]!r}"
        )
    bars = pd.DataFrame(values, columns=present)
    if VOLUME_COLUMN not in bars:
        bars[VOLUME_COLUMN] = 0.0
        bars[AMOUNT_COLUMN] = 0.0
    elif AMOUNT_COLUMN not in bars:
        bars[AMOUNT_COLUMN] = bars[VOLUME_COLUMN] * bars[PRICE_COLUMNS].mean(axis=1)
    return bars[FEATURE_COLUMNS].to_numpy(dtype=dtype)


def parse_timestamps(values: pd.Series, name: str) -> pd.Series:
    """`values` as datetimes; a missing or unreadable one is an error naming its row and value."""
    try:
        with warnings.catch_warnings():
            # strings in no single format are parsed one by one; any that fail are reported below
            warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
            stamps = pd.to_datetime(values, errors="coerce")
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name} must hold timestamps: {err}") from err
    bad = stamps.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"{name} must hold timestamps: {values.iloc[row]!r} at row {values.index[row]!r} is missing "
            f"or unreadable ({int(bad.sum())} in all)"
        )
    return stamps


def check_ids_present(ids: pd.Series, name: str, id_column: str) -> None:
    """Refuse a long table with a row that names no series, naming that row."""
    missing = ids.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"{name}: id column {id_column!r} has missing ids ({int(missing.sum())} in all), first at row "
            f"{ids.index[np.argmax(missing)]!r}"
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
            f"{within}, first {where(row)}at {timestamps.iloc[row]}{hint}"
        )
    backwards = (step < pd.Timedelta(0)).to_numpy()
    if backwards.any():
        row = int(np.argmax(backwards))
        raise ValueError(
            f"{name}: rows are not sorted by time{within}: {where(row)}has {timestamps.iloc[row]} after a "
            "later timestamp; sort by id, then timestamp"
        )


def positive_int(value, name: str) -> int:
    """`value` as an int, refusing bools, floats and numbers below 1 with a message naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def as_timestamps(timestamps, name: str) -> pd.Series:
    """Accept a Series, DatetimeIndex or list of datetimes; return a datetime64 Series."""
    if isinstance(timestamps, pd.DatetimeIndex):
        return pd.Series(timestamps)
    if isinstance(timestamps, pd.Series):
        series = timestamps.reset_index(drop=True)
    else:
        series = pd.Series(list(timestamps))
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

    def frame(self) -> pd.DataFrame:
        """The bars as a DataFrame of FEATURE_COLUMNS with a `timestamps` column."""
        out = pd.DataFrame(self.bars, columns=FEATURE_COLUMNS)
        out.insert(0, "timestamps", self.timestamps.to_numpy())
        return out


def long_table(series: Sequence[OHLCVSeries], id_column: str = "symbol") -> pd.DataFrame:
    """Series as one long table, the input of `predict_df`: each named by its symbol, else its name."""
    return pd.concat(
        [one.frame().assign(**{id_column: one.symbol or one.name}) for one in series], ignore_index=True
    )


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
    """Read a .csv (optionally compressed) or .parquet file into a DataFrame."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    suffix = _format_suffix(path)
    if suffix in PARQUET_SUFFIXES:
        try:
            return pd.read_parquet(path)
        except ImportError as err:
            raise ImportError(
                f"reading {path} needs pyarrow: pip install 'kronos[parquet]' (or save the data as CSV)"
            ) from err
    if suffix in CSV_SUFFIXES:
        try:
            return pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not a readable CSV file: {err}") from err
    raise ValueError(f"{path}: unsupported file type; use .csv or .parquet")


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


def map_columns(
    df: pd.DataFrame,
    name: str,
    column_map: dict[str, str] | None = None,
    timestamp_column: str | None = None,
) -> pd.DataFrame:
    """Rename the file's columns to `timestamps` and FEATURE_COLUMNS, keeping only those.

    `column_map` maps our names (open, high, low, close, volume, amount) to the file's names.
    Columns not named there are matched case-insensitively (`Close` is `close`). The timestamp
    column is `timestamp_column`, or the first of TIMESTAMP_CANDIDATES present (any case).
    Timestamps are parsed; row labels are kept, so that errors name the file's rows.
    """
    column_map = dict(column_map or {})
    unknown = sorted(set(column_map) - set(FEATURE_COLUMNS))
    if unknown:
        raise ValueError(f"column mapping names unknown field(s) {unknown}; fields are {FEATURE_COLUMNS}")
    by_lower: dict[str, str] = {}
    for col in df.columns:
        by_lower.setdefault(str(col).lower(), col)
    renames: dict = {}
    for field in FEATURE_COLUMNS:
        source = column_map.get(field)
        if source is not None:
            if source not in df.columns:
                raise ValueError(
                    f"{name}: column {source!r} (mapped to {field!r}) is not in the file; it has {list(df.columns)}"
                )
        else:
            source = by_lower.get(field)
        if source is not None:
            renames[source] = field
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
    df: pd.DataFrame,
    name: str,
    id_column: str | None = None,
    column_map: dict[str, str] | None = None,
    timestamp_column: str | None = None,
    dtype=np.float32,
) -> list[OHLCVSeries]:
    """One table as series: the whole of it named `name`, or one series per `id_column` value."""
    if df.empty:
        raise ValueError(f"{name} holds no rows")
    if not id_column:
        return [series_from_frame(map_columns(df, name, column_map, timestamp_column), name, dtype=dtype)]
    if id_column not in df.columns:
        raise ValueError(f"{name} has no id column {id_column!r}; it has {list(df.columns)}")
    check_ids_present(df[id_column], name, id_column)
    series = []
    for symbol, group in df.groupby(id_column, sort=True):
        label = f"{name}[{id_column}={symbol}]"
        mapped = map_columns(group, label, column_map, timestamp_column)
        series.append(series_from_frame(mapped, label, str(symbol), dtype))
    return series


def load_series(
    paths: Sequence[str | Path],
    id_column: str | None = None,
    column_map: dict[str, str] | None = None,
    timestamp_column: str | None = None,
    dtype=np.float32,
) -> list[OHLCVSeries]:
    """Read OHLCV series from files or folders of them: one symbol per file, or long tables split
    by `id_column`. A file's series is named after the file, a long table's `file[id=value]`.

    Every error names the file (and symbol) and the column or row at fault.
    """
    if not paths:
        raise ValueError("no data files given")
    series: list[OHLCVSeries] = []
    for path in expand_folders(paths):
        found = split_table(read_table(path), path.name, id_column, column_map, timestamp_column, dtype)
        if not id_column:
            found = [replace(found[0], name=series_name(path))]
        series.extend(found)
    names = [s.name for s in series]
    if len(set(names)) != len(names):
        seen = {n for n in names if names.count(n) > 1}
        raise ValueError(f"several data files give the same series name(s) {sorted(seen)}: rename the files")
    return series
