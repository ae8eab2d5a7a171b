"""Reading series for evaluation: one file per symbol, or a long table with an id column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data import AMOUNT_COLUMN, FEATURE_COLUMNS, PRICE_COLUMNS, VOLUME_COLUMN, prepare_ohlcv

TIMESTAMP_COLUMN = "timestamps"
SUFFIXES = (".csv", ".csv.gz", ".txt", ".parquet", ".pq")


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame (by extension: .csv, .csv.gz, .parquet, .pq)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data file {str(path)!r} does not exist")
    name = path.name.lower()
    if name.endswith(SUFFIXES[3:]):
        try:
            return pd.read_parquet(path)
        except ImportError as err:
            raise ValueError(f"reading {path} needs pyarrow: pip install pyarrow") from err
    if name.endswith(SUFFIXES[:3]):
        return pd.read_csv(path)
    raise ValueError(f"unsupported file type for {str(path)!r}: use .csv or .parquet")


def clean_series(df: pd.DataFrame, name: str, timestamp_column: str = TIMESTAMP_COLUMN) -> pd.DataFrame:
    """Validated bars sorted by time: the timestamp column parsed, OHLCV checked, duplicates refused."""
    if timestamp_column not in df.columns:
        raise ValueError(f"{name} has no {timestamp_column!r} column; it has {list(df.columns)}")
    stamps = pd.to_datetime(df[timestamp_column], errors="coerce")
    bad = stamps.isna()
    if bad.any():
        row = df.index[bad][0]
        raise ValueError(
            f"{name} column {timestamp_column!r} has an unreadable or missing timestamp "
            f"{df[timestamp_column][row]!r} at row {row!r}"
        )
    out = df.assign(**{timestamp_column: stamps}).sort_values(timestamp_column, kind="stable")
    out = out.reset_index(drop=True)
    duplicated = out[timestamp_column].duplicated()
    if duplicated.any():
        raise ValueError(
            f"{name} has duplicate timestamps (first {out[timestamp_column][duplicated].iloc[0]}); "
            "if the file holds several symbols, name the id column (--id-column)"
        )
    prepare_ohlcv(out, name)
    return out


def split_series(
    df: pd.DataFrame, source: str, id_column: str | None, timestamp_column: str = TIMESTAMP_COLUMN
) -> dict[str, pd.DataFrame]:
    """One cleaned series per id value, or the whole table as one series named `source`."""
    if id_column is None:
        return {source: clean_series(df, source, timestamp_column)}
    if id_column not in df.columns:
        raise ValueError(f"{source} has no id column {id_column!r}; it has {list(df.columns)}")
    if df[id_column].isna().any():
        row = df.index[df[id_column].isna()][0]
        raise ValueError(f"{source} column {id_column!r} has a missing id at row {row!r}")
    return {
        str(key): clean_series(group.drop(columns=id_column), f"{source}[{key}]", timestamp_column)
        for key, group in df.groupby(id_column, sort=True)
    }


def _expand(path: Path) -> list[Path]:
    """A file as itself; a folder as its data files, sorted by name."""
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(SUFFIXES))
    if not files:
        raise ValueError(f"folder {str(path)!r} holds no .csv or .parquet files")
    return files


def load_series(
    paths: str | Path | list[str | Path],
    id_column: str | None = None,
    timestamp_column: str = TIMESTAMP_COLUMN,
) -> dict[str, pd.DataFrame]:
    """Series by name from files or folders of files: named by id value with `id_column`, else by file stem."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ValueError("no data files given")
    paths = [file for path in paths for file in _expand(Path(path))]
    stems = [Path(p).name.split(".")[0] for p in paths]
    series: dict[str, pd.DataFrame] = {}
    for path, stem in zip(paths, stems):
        source = stem if stems.count(stem) == 1 else str(path)
        for name, frame in split_series(read_table(path), source, id_column, timestamp_column).items():
            if name in series:
                raise ValueError(f"series {name!r} appears in more than one file (again in {path})")
            series[name] = frame
    return series


def as_series_dict(data, timestamp_column: str = TIMESTAMP_COLUMN) -> dict[str, pd.DataFrame]:
    """Accept a DataFrame, a dict of DataFrames, or file path(s); return cleaned series by name."""
    if isinstance(data, pd.DataFrame):
        return {"series": clean_series(data, "data", timestamp_column)}
    if isinstance(data, dict):
        if not data:
            raise ValueError("data is an empty dict: give at least one series")
        return {str(k): clean_series(v, f"data[{k!r}]", timestamp_column) for k, v in data.items()}
    return load_series(data, timestamp_column=timestamp_column)


def present_columns(series: dict[str, pd.DataFrame]) -> list[str]:
    """The feature columns every series really has (a filled-in volume/amount is not evaluated)."""
    return [c for c in FEATURE_COLUMNS if all(c in df.columns for df in series.values())]


def bars_of(df: pd.DataFrame, name: str) -> np.ndarray:
    """Bars [L, 6] in FEATURE_COLUMNS order in float64, filled in as `prepare_ohlcv` does.

    Scores are computed on these: the model's float32 input would round prices such as 60000.13.
    """
    prepare_ohlcv(df, name)
    bars = pd.DataFrame({c: df[c].to_numpy(dtype=np.float64) for c in FEATURE_COLUMNS if c in df.columns})
    if VOLUME_COLUMN not in bars:
        bars[VOLUME_COLUMN] = 0.0
        bars[AMOUNT_COLUMN] = 0.0
    elif AMOUNT_COLUMN not in bars:
        bars[AMOUNT_COLUMN] = bars[VOLUME_COLUMN] * bars[PRICE_COLUMNS].mean(axis=1)
    return bars[FEATURE_COLUMNS].to_numpy()
