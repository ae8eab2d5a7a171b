"""From request bodies and uploaded files to validated series, and from sampled paths to answers.

Bars are read and checked by kronos.forecasting.series (`parse_timestamps`, `check_time_order` and
`prepare_ohlcv`; files by `kronos.forecasting.tables`, as `kronos forecast` reads them), future
timestamps come from `kronos.forecasting.schedules.future_timestamps` and every forecast and
statistic from the predictor's `sample` and `Forecast.summary`, so the service refuses and computes
exactly what the library does. Any refusal is an `InputError` naming the field (and, where known,
the row).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from kronos.engine.sampling import Sampling
from kronos.forecasting.calibration import MIN_ORIGINS, Calibration, fit_origins, required_rows
from kronos.forecasting.core import Forecast, ForecastingCore
from kronos.forecasting.paths import (
    check_quantile_levels,
    ohlc_violation_rate,
    quantile_column,
    realized_volatility,
)
from kronos.forecasting.schedules import FutureIndex, future_timestamps
from kronos.forecasting.series import (
    CLOSE,
    FEATURE_COLUMNS,
    MIN_HISTORY,
    Series,
    check_time_order,
    parse_timestamps,
    prepare_ohlcv,
)
from kronos.forecasting.tables import TableLayout, map_columns, read_table, series_from_frame
from kronos.serve.schemas import Bar, ForecastOptions, Limits

LIBRARY_ERRORS = (ValueError, TypeError, OverflowError)
# The model computes in float32 and normalising squares deviations: larger values overflow to inf.
MAX_ABS_VALUE = 1e18


class InputError(ValueError):
    """A request the service refuses: status 4xx, the message, the field and row at fault."""

    def __init__(self, message: str, field: str | None = None, row: int | None = None, status: int = 422):
        super().__init__(message)
        self.message, self.field, self.row, self.status = message, field, row, status


@dataclass(frozen=True)
class Job:
    """One request's forecast: its series (every bar sent, each keyed by its id), their future
    timestamps, and the options; what the worker hands to `KronosPredictor.sample`."""

    series: list[Series]
    futures: list[FutureIndex]
    options: ForecastOptions
    past_forecasts: int = 0  # the calibrations' past forecasts, when asked for them

    def sampling(self, predictor: ForecastingCore) -> Sampling:
        """The options' sampling: temperature and top_p where given, else the model's."""
        options = self.options
        return predictor.sampling_with(
            T=options.temperature, top_k=options.top_k, top_p=options.top_p, sample_count=options.paths,
            seed=options.seed,
        )  # fmt: skip


def check_options(options: ForecastOptions, limits: Limits) -> tuple[float, ...]:
    """The caps on steps and paths, and the quantile levels as the library reads them."""
    for field, value, cap, flag in (
        ("steps", options.steps, limits.max_steps, "--max-steps"),
        ("paths", options.paths, limits.max_paths, "--max-paths"),
    ):
        if value > cap:
            raise InputError(
                f"{field} is {value}, over this server's cap of {cap} (kronos serve {flag})", field
            )
    try:
        return check_quantile_levels(options.quantile_levels)
    except ValueError as err:
        raise InputError(str(err), "quantile_levels") from err


def check_bar_count(count: int, label: str, limits: Limits, field: str) -> None:
    if count < MIN_HISTORY:
        raise InputError(f"{label} has {count} bars; a forecast needs at least {MIN_HISTORY}", field)
    if count > limits.max_bars:
        raise InputError(
            f"{label} has {count} bars, over this server's cap of {limits.max_bars} (kronos serve --max-bars)",
            field,
        )


def check_magnitude(series: Series, field: str) -> Series:
    rows, cols = np.nonzero(np.abs(series.bars) > MAX_ABS_VALUE)
    if len(rows):
        raise InputError(
            f"{series.name} column {FEATURE_COLUMNS[cols[0]]!r} has a value beyond ±{MAX_ABS_VALUE:g} at row "
            f"{rows[0]}, more than the model's float32 arithmetic holds",
            field,
        )
    return series


def series_from_bars(bars: list[Bar], label: str, limits: Limits) -> Series:
    """JSON bars as a series (float64, as sent). They must come oldest first, without repeated timestamps."""
    check_bar_count(len(bars), label, limits, label)
    columns: dict[str, list] = {}
    for field in FEATURE_COLUMNS:
        column = [getattr(bar, field) for bar in bars]
        if any(value is not None for value in column):
            columns[field] = column  # missing from some bars: NaN there, which prepare_ohlcv names
    try:
        stamps = parse_timestamps(pd.Series([bar.timestamp for bar in bars]), f"{label} column 'timestamp'")
        check_time_order(stamps, label)
        values = prepare_ohlcv(pd.DataFrame(columns), label, dtype=np.float64)
    except LIBRARY_ERRORS as err:
        raise InputError(str(err), label) from err
    return check_magnitude(Series(values, pd.DatetimeIndex(stamps), 0, label, tuple(columns)), label)


def series_from_csv(content: bytes, name: str, limits: Limits, timestamp_column: str | None = None) -> Series:
    """An uploaded CSV file as a series, read as `kronos forecast` reads a file
    (`kronos.forecasting.tables.read_table`: any separator, decimal commas; rows sorted by time)."""
    try:
        table = read_table(content, name)
    except ValueError as err:
        raise InputError(str(err), "file") from err
    check_bar_count(len(table), name, limits, "file")
    try:
        mapped = map_columns(table, name, TableLayout(timestamp_column=timestamp_column))
        series = series_from_frame(mapped, name)
    except LIBRARY_ERRORS as err:
        raise InputError(str(err), "file") from err
    return check_magnitude(series, "file")


def plan(items: Iterable[tuple[Series, object, str]], options: ForecastOptions, lookback: int) -> Job:
    """A job for the series that `items` gives as (series, key, label): each keyed, and its next
    `options.steps` timestamps inferred from all its bars (or stepped by `options.freq`), as
    `kronos forecast` does; with `options.calibrate`, each checked to hold enough bars."""
    series, futures, past_forecasts = [], [], 0
    for one, key, label in items:
        try:
            future = future_timestamps(one.timestamps, options.steps, label, options.freq)
        except LIBRARY_ERRORS as err:
            raise InputError(str(err), "freq" if options.freq else label) from err
        if options.calibrate:
            past_forecasts += check_calibration_rows(len(one), lookback, options.steps, label)
        series.append(replace(one, key=key))
        futures.append(future)
    return Job(series, futures, options, past_forecasts)


def check_calibration_rows(bars: int, lookback: int, steps: int, label: str) -> int:
    """The past forecasts a calibration of a series of `bars` bars takes; an error if too few."""
    past_forecasts = len(fit_origins(bars, lookback, steps))
    if past_forecasts < MIN_ORIGINS:
        raise InputError(
            f"{label} has {bars} bars; calibrate needs at least {required_rows(lookback, steps)} (lookback "
            f"{lookback}, {steps} steps, {MIN_ORIGINS} past forecasts)",
            label,
        )
    return past_forecasts


def check_past_forecasts(job: Job, limits: Limits) -> None:
    """A calibrated request runs its series' past forecasts too: they count against a cap of their own."""
    if job.past_forecasts > limits.max_past_forecasts:
        raise InputError(
            f"calibrate needs {job.past_forecasts} past forecasts for this request, over this server's cap of "
            f"{limits.max_past_forecasts} (kronos serve --max-past-forecasts)",
            "calibrate",
        )


def summarize(
    forecast: Forecast,
    history: Series,
    future: FutureIndex,
    levels: tuple[float, ...],
    options: ForecastOptions,
) -> dict[str, Any]:
    """The answer for one series from its forecast (`KronosPredictor.sample` of its last `lookback`
    bars, `history`): the columns that `predict_quantiles` returns (`Forecast.summary`), arranged
    per field, beside the volatility the history's own would give."""
    try:
        columns = forecast.summary(sorted({*levels, 0.5}), options.repair_ohlc)
    except LIBRARY_ERRORS as err:
        raise InputError(str(err)) from err
    paths, calibration = forecast.paths[0], forecast.calibrations[0]
    bars = history.bars
    per_bar = realized_volatility(bars[None, 1:], bars[0, CLOSE])[0, -1] / math.sqrt(len(bars) - 1)
    horizon = np.sqrt(np.arange(1, paths.shape[1] + 1))
    answer = {
        "timestamps": [stamp.isoformat() for stamp in future.timestamps],
        "spacing": future.description,
        "last_close": float(forecast.last_close[0]),
        "history_bars": len(bars),
        "quantiles": {
            field: {f"{q:g}": floats(columns[quantile_column(field, q)][0]) for q in levels}
            for field in FEATURE_COLUMNS
        },
        "median": {field: floats(columns[quantile_column(field, 0.5)][0]) for field in FEATURE_COLUMNS},
        "mean": {field: floats(columns[f"{field}_mean"][0]) for field in FEATURE_COLUMNS},
        "prob_up": floats(columns["prob_close_above_last"][0]),
        "expected_volatility": floats(columns["realized_vol"][0]),
        "historical_volatility": floats(per_bar * horizon),
        "ohlc_violation_rate": ohlc_violation_rate(paths),
        "calibrated": calibration is not None,
        "calibration": None if calibration is None else calibration_summary(calibration),
    }
    if options.return_paths:
        answer["paths"] = {
            field: [floats(path) for path in paths[:, :, j]] for j, field in enumerate(FEATURE_COLUMNS)
        }
    return answer


def calibration_summary(calibration: Calibration) -> dict:
    return {
        "past_forecasts": calibration.origins,
        "lookback": calibration.lookback,
        "move_kept": float(calibration.shrink.mean()),
        "spread_weight": float(calibration.weight.mean()),
    }


def floats(values) -> list[float | None]:
    """Numbers as JSON floats (exact: Python writes the shortest repr that reads back the same
    double), NaN and infinities as null."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).tolist()]


def bars_as_json(series: Series) -> list[dict]:
    """A series' bars in the form /v1/forecast takes."""
    stamps = [stamp.isoformat() for stamp in series.timestamps]
    values = series.bars.tolist()
    return [
        {"timestamp": stamp, **{f: v for f, v in zip(FEATURE_COLUMNS, row) if f in series.columns}}
        for stamp, row in zip(stamps, values)
    ]
