"""Reading and validating OHLCV data, and the time features the model sees."""

from __future__ import annotations

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
