"""Series for evaluation, read and validated by `kronos.forecasting.tables` and keyed by series name.

Series keep their bars in float64: scores are computed on them, and the model's float32 input
would round prices such as 60000.13.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kronos.forecasting.series import FEATURE_COLUMNS, Series
from kronos.forecasting.tables import TableLayout, load_series, map_columns, series_from_frame


def read_series(
    paths: str | Path | list[str | Path], id_column: str | None = None, timestamp_column: str | None = None
) -> dict[str, Series]:
    """Series by name from files or folders of files: named by id value with `id_column`, else by file."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    series: dict[str, Series] = {}
    layout = TableLayout(id_column, timestamp_column=timestamp_column)
    for one in load_series(paths, layout):
        key = str(one.key)
        if key in series:
            raise ValueError(f"series {key!r} appears in more than one file (again in {one.name})")
        series[key] = one
    return series


def as_series_dict(data_or_paths, timestamp_column: str | None = None) -> dict[str, Series]:
    """Accept a DataFrame, a dict of DataFrames or of series (as `read_series` gives), or file path(s);
    return validated series by name."""
    if isinstance(data_or_paths, pd.DataFrame):
        return {"series": _from_frame(data_or_paths, "data", timestamp_column)}
    if isinstance(data_or_paths, dict):
        if not data_or_paths:
            raise ValueError("data is an empty dict: give at least one series")
        return {
            str(k): v if isinstance(v, Series) else _from_frame(v, f"data[{k!r}]", timestamp_column)
            for k, v in data_or_paths.items()
        }
    return read_series(data_or_paths, timestamp_column=timestamp_column)


def present_columns(series: dict[str, Series]) -> list[str]:
    """The feature columns every series really has (a filled-in volume/amount is not evaluated)."""
    return [c for c in FEATURE_COLUMNS if all(c in one.columns for one in series.values())]


def _from_frame(df: pd.DataFrame, name: str, timestamp_column: str | None) -> Series:
    mapped = map_columns(df, name, TableLayout(timestamp_column=timestamp_column))
    return series_from_frame(mapped, name)
