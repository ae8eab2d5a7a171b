"""Reading and validating OHLCV data, and the time features the model sees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PRICE_COLUMNS = ["open", "high", "low", "close"]
VOLUME_COLUMN = "volume"
AMOUNT_COLUMN = "amount"
FEATURE_COLUMNS = PRICE_COLUMNS + [VOLUME_COLUMN, AMOUNT_COLUMN]
TIME_FEATURE_COLUMNS = ["minute", "hour", "weekday", "day", "month"]


def prepare_ohlcv(df: pd.DataFrame, name: str = "df") -> np.ndarray:
    """Validate bars and return them as float32 [L, 6] in FEATURE_COLUMNS order.

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
    return bars[FEATURE_COLUMNS].to_numpy(dtype=np.float32)


def as_timestamps(timestamps, name: str) -> pd.Series:
    """Accept a Series, DatetimeIndex or list of datetimes; return a datetime64 Series."""
    if isinstance(timestamps, pd.DatetimeIndex):
        return pd.Series(timestamps)
    if isinstance(timestamps, pd.Series):
        series = timestamps.reset_index(drop=True)
    else:
        series = pd.Series(list(timestamps))
    if not pd.api.types.is_datetime64_any_dtype(series):
        try:
            series = pd.to_datetime(series)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{name} must hold timestamps: {err}") from err
    if series.isna().any():
        raise ValueError(f"{name} has missing timestamps, first at position {int(np.argmax(series.isna()))}")
    return series


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


@dataclass
class OHLCVSeries:
    """One symbol's bars: validated float32 [L, 6] in FEATURE_COLUMNS order, sorted by time."""

    name: str
    timestamps: pd.Series
    bars: np.ndarray
    symbol: str | None = None

    def __len__(self) -> int:
        return len(self.bars)

    def frame(self) -> pd.DataFrame:
        """The bars as a DataFrame of FEATURE_COLUMNS with a `timestamps` column."""
        out = pd.DataFrame(self.bars, columns=FEATURE_COLUMNS)
        out.insert(0, "timestamps", self.timestamps.to_numpy())
        return out


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a .csv (optionally compressed) or .parquet file into a DataFrame."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    suffixes = [s.lower() for s in path.suffixes]
    if ".parquet" in suffixes or ".pq" in suffixes:
        try:
            return pd.read_parquet(path)
        except ImportError as err:
            raise ImportError(
                f"reading {path} needs a Parquet engine: pip install pyarrow (or save the data as CSV)"
            ) from err
    if ".csv" in suffixes or ".txt" in suffixes:
        try:
            return pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not a readable CSV file: {err}") from err
    raise ValueError(f"{path}: unsupported file type; use .csv or .parquet")


def map_columns(
    df: pd.DataFrame,
    name: str,
    column_map: dict[str, str] | None = None,
    timestamp_column: str | None = None,
) -> pd.DataFrame:
    """Rename the file's columns to `timestamps` and FEATURE_COLUMNS.

    `column_map` maps our names (open, high, low, close, volume, amount) to the file's names.
    Columns not named there are matched case-insensitively (`Close` is `close`). The timestamp
    column is `timestamp_column`, or the first of TIMESTAMP_CANDIDATES present (any case).
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
        ts_source = next((by_lower[c] for c in TIMESTAMP_CANDIDATES if c in by_lower), None)
        if ts_source is None:
            raise ValueError(
                f"{name} has no timestamp column (looked for {list(TIMESTAMP_CANDIDATES)} in any case); "
                f"it has {list(df.columns)}: name it with the timestamp column option"
            )
    renames[ts_source] = "timestamps"
    mapped = df[list(renames)].rename(columns=renames)
    return mapped.reset_index(drop=True)


def series_from_frame(df: pd.DataFrame, name: str, symbol: str | None = None) -> OHLCVSeries:
    """Validate a frame with `timestamps` and FEATURE_COLUMNS (as from `map_columns`) into a series.

    Rows are sorted by time; duplicate or unparseable timestamps are errors naming the row.
    """
    try:
        timestamps = pd.to_datetime(df["timestamps"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name}: the timestamp column cannot be read as dates: {err}") from err
    if timestamps.isna().any():
        raise ValueError(f"{name}: missing timestamp at row {int(np.argmax(timestamps.isna().to_numpy()))}")
    bars = prepare_ohlcv(df.drop(columns="timestamps"), name)
    order = np.argsort(timestamps.to_numpy(), kind="stable")
    timestamps = timestamps.iloc[order].reset_index(drop=True)
    duplicated = timestamps.duplicated()
    if duplicated.any():
        first = int(np.argmax(duplicated.to_numpy()))
        raise ValueError(f"{name}: timestamp {timestamps[first]} occurs more than once")
    return OHLCVSeries(name, timestamps, bars[order], symbol)


def load_series(
    paths: list[str | Path],
    id_column: str | None = None,
    column_map: dict[str, str] | None = None,
    timestamp_column: str | None = None,
) -> list[OHLCVSeries]:
    """Read OHLCV series from files: one symbol per file, or long tables split by `id_column`.

    Every error names the file (and symbol) and the column or row at fault.
    """
    if not paths:
        raise ValueError("no data files given")
    series: list[OHLCVSeries] = []
    for path in paths:
        path = Path(path)
        df = read_table(path)
        if df.empty:
            raise ValueError(f"{path} holds no rows")
        if id_column:
            if id_column not in df.columns:
                raise ValueError(
                    f"{path}: id column {id_column!r} is not in the file; it has {list(df.columns)}"
                )
            if df[id_column].isna().any():
                raise ValueError(
                    f"{path}: id column {id_column!r} is empty at row {int(np.argmax(df[id_column].isna()))}"
                )
            for symbol, group in df.groupby(id_column, sort=True):
                label = f"{path.name}[{id_column}={symbol}]"
                mapped = map_columns(group, label, column_map, timestamp_column)
                series.append(series_from_frame(mapped, label, str(symbol)))
        else:
            mapped = map_columns(df, path.name, column_map, timestamp_column)
            series.append(series_from_frame(mapped, path.stem))
    names = [s.name for s in series]
    if len(set(names)) != len(names):
        seen = {n for n in names if names.count(n) > 1}
        raise ValueError(f"several data files give the same series name(s) {sorted(seen)}: rename the files")
    return series
