"""KronosPredictor: pandas in, pandas out, over the public forecasting core.

`predict_paths(_batch)`, `predict_quantiles`, `predict_df` and `calibrate` take and give pandas
and are thin adapters over `ForecastingCore.sample` and `fit_calibration`
(kronos.forecasting.core); upstream's `predict` and `predict_batch` come from
`kronos.forecasting.upstream`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from kronos.engine.sampling import Sampling
from kronos.forecasting.actions import adjust_splits
from kronos.forecasting.calibration import PAST_ORIGINS, Calibration, PastOrigins
from kronos.forecasting.core import (
    MAX_PATH_VALUES,
    as_dtype,
    pick_device,
)
from kronos.forecasting.paths import (
    DEFAULT_QUANTILE_LEVELS,
    check_quantile_levels,
    ohlc_violation_rate,
    ohlc_violations,
)
from kronos.forecasting.pretrained import DEFAULT_MODEL, load_pretrained
from kronos.forecasting.schedules import future_timestamps, report_gaps
from kronos.forecasting.series import (
    FEATURE_COLUMNS,
    Series,
    as_timestamps,
    check_pred_len,
    checked_flag,
    checked_instance,
    feature_sources,
    positive_int,
    prepare_ohlcv,
    series_list_with_futures,
    series_with_future,
)
from kronos.forecasting.tables import TABLE_OPTIONS, TableLayout, TableOptions, split_table
from kronos.forecasting.upstream import UpstreamMethods


class KronosPredictor(UpstreamMethods):
    """Forecast OHLCV bars with a Kronos model and tokenizer.

        Each series is normalised on its own history (per column mean and population std, clipped
        to ±clip); forecasts are mapped back with the same statistics. `max_context` defaults to
        the model's own (its metadata; 512 without any, as upstream). `normalize_on="context"` keeps
        only the last `max_context` bars of a longer history, so that normalisation and tokenizer
        see just the bars the model sees; the default "history" uses them all, as upstream.

        `num_threads` sets torch's CPU threads while generating. Without it, a model under 5M
        parameters generates on one thread (faster: its matrices are too small to share out), and
        a larger one adapts torch's count step by step (`kronos.engine.threads`: beside a busy core
        it drops a thread; what it learns carries over to the next call), unless torch's thread
        count was changed after kronos was imported or OMP_NUM_THREADS / MKL_NUM_THREADS is set;
        the count is restored after each call. `memory_budget` (bytes) bounds
        one generation call's estimated memory: larger batches are split, and one series that needs
        more is refused. A predictor holds no per-call state: threads may share one (use `seed=`). The
    model and tokenizer given are not changed: where `device` or `dtype` differ from theirs, the
    predictor works on a moved copy.

        `dtype="bfloat16"` halves the bytes of the weights (see docs/performance.md for when it pays);
        `window="streaming"` slides a full context window without recomputing it (see
        `kronos.engine.generation.WINDOWS`), the default "exact" gives upstream's numbers.
        `anchor=True` starts every forecast from the last close instead of from the tokenizer's
        reconstruction of it (`kronos.forecasting.core.anchor_paths`); the default is the model's
        kronos.json ("anchor"), off for the published models, so that their numbers are upstream's.
        `center=True` keeps the median of uncalibrated forecasts at the last close at every step
        (`kronos.forecasting.core.center_paths`: the model's spread and shape about a flat median);
        the default is the model's kronos.json ("center": on for kronos-default, whose median move
        is noise on series it never saw), off for the published models.
    """

    @classmethod
    def from_pretrained(
        cls, model: str = DEFAULT_MODEL, tokenizer: str | None = None, **kwargs: Any
    ) -> KronosPredictor:
        """A predictor for a shipped model ('kronos-default'), a directory or a Hub id.

        The tokenizer is the model's own (beside it, or the published companion of a Hub model)
        unless named. Keyword arguments go to the constructor; defaults follow the model's metadata.
        """
        for argument, name in (("model", model), ("tokenizer", tokenizer)):
            if name is not None and not isinstance(name, str):
                raise TypeError(
                    f"{argument} must be a name (text): a shipped model ('kronos-default'), a directory or a "
                    f"Hub id ('NeoQuasar/Kronos-small'), got {type(name).__name__} {name!r}"
                )
        loaded_model, loaded_tokenizer = load_pretrained(model, tokenizer)
        device, dtype = pick_device(kwargs.get("device")), as_dtype(kwargs.get("dtype"))
        # freshly loaded, so moved in place: the constructor then has nothing to copy
        return cls(loaded_model.to(device, dtype), loaded_tokenizer.to(device, dtype), **kwargs)

    # --- the core ------------------------------------------------------------------------------------

    # --- pandas in, pandas out: adapters over `sample` and `fit_calibration` --------------------------

    def predict_paths(
        self,
        df: pd.DataFrame,
        x_timestamp: object,
        y_timestamp: object,
        pred_len: int,
        sampling: Sampling | None = None,
        verbose: bool = False,
        series_id: object = 0,
        calibration: Calibration | None = None,
    ) -> np.ndarray:
        """Every sampled path in price units: [sampling.sample_count, pred_len, 6], columns open..amount.

        `sampling` None is the model's `default_sampling` (its kronos.json's temperature and top_p,
        else the package's); `sampling_with(sample_count=50, seed=0)` changes some of its settings.
        With `sampling.seed`, the paths come from (seed, series_id) alone, not from torch's global
        generator; `predict_df` and `predict_paths_batch` give a series with the same id the same paths.
        With `calibration` (from `calibrate` on this series), the paths are calibrated.
        """
        sampling = self._sampling(sampling)
        checked_flag(verbose, "verbose")
        pred_len = check_pred_len(pred_len, "pred_len")
        series, future = series_with_future(df, x_timestamp, y_timestamp, pred_len, "df", series_id)
        forecast = self.sample(series, pred_len, sampling, calibration, future=future, progress=verbose)
        return np.asarray(forecast.paths[0])

    def predict_paths_batch(
        self,
        df_list: list[pd.DataFrame],
        x_timestamp_list: list[object],
        y_timestamp_list: list[object],
        pred_len: int,
        sampling: Sampling | None = None,
        verbose: bool = False,
        series_ids: Sequence[object] | None = None,
        batch_size: int | None = None,
        calibrations: Sequence[Calibration | None] | None = None,
    ) -> np.ndarray:
        """Sampled paths of several series, [S, sampling.sample_count, pred_len, 6] in price units.

        Histories may differ in length. With `sampling.seed`, series i draws from (seed,
        series_ids[i]) alone (default: its position i), so its paths do not depend on the rest of
        the batch. `calibrations` gives series i's calibration (or None) at position i.
        """
        sampling = self._sampling(sampling)
        checked_flag(verbose, "verbose")
        pred_len = check_pred_len(pred_len, "pred_len")
        series, futures = series_list_with_futures(
            df_list, x_timestamp_list, y_timestamp_list, pred_len, series_ids
        )
        forecast = self.sample(
            series, pred_len, sampling, calibrations, future=futures, batch_size=batch_size, progress=verbose
        )
        return forecast.paths

    def predict_quantiles(
        self,
        df: pd.DataFrame,
        x_timestamp: object,
        y_timestamp: object,
        pred_len: int,
        quantile_levels: Sequence[float] = DEFAULT_QUANTILE_LEVELS,
        sampling: Sampling | None = None,
        repair_ohlc: bool = True,
        verbose: bool = False,
        series_id: object = 0,
        calibration: Calibration | None = None,
    ) -> pd.DataFrame:
        """Probabilistic forecast of one series: a DataFrame indexed by the future timestamps.

        Samples `sampling.sample_count` paths (`sample`) and summarises them per step (`Forecast.summary`,
        `kronos.forecasting.paths.path_statistics`): `<field>_mean` and `<field>_q<level>` (e.g.
        `close_q0.1`) for open, high, low, close, volume and amount, `prob_close_above_last`,
        `realized_vol` (mean over paths of sqrt(sum of squared log close-to-close returns up to
        that step, the first from the last known close); the last row is the horizon's) and
        `ohlc_violation_rate` (raw paths, before repair). With `repair_ohlc` (default), each
        path's high and low are set to the max and min of its open, high, low, close before the
        statistics. `y_timestamp=None` infers the future timestamps from x_timestamp
        (`kronos.forecasting.schedules.future_timestamps`). `attrs` holds "ohlc_violation_rate" over all sampled
        bars and "realized_vol" over the horizon. `sampling` and `series_id` as in `predict_paths`.
        """
        levels = check_quantile_levels(quantile_levels)
        sampling = self._sampling(sampling)
        checked_flag(repair_ohlc, "repair_ohlc")
        checked_flag(verbose, "verbose")
        pred_len = check_pred_len(pred_len, "pred_len")
        if y_timestamp is None:
            history = pd.DatetimeIndex(as_timestamps(x_timestamp, "x_timestamp"))
            y_timestamp = future_timestamps(history, pred_len, "x_timestamp").timestamps
        series, future = series_with_future(df, x_timestamp, y_timestamp, pred_len, "df", series_id)
        forecast = self.sample(series, pred_len, sampling, calibration, future=future, progress=verbose)
        columns = forecast.summary(levels, repair_ohlc)
        table = pd.DataFrame({k: v[0] for k, v in columns.items()}, index=future)
        table.attrs["ohlc_violation_rate"] = ohlc_violation_rate(forecast.paths)
        table.attrs["realized_vol"] = float(table["realized_vol"].iloc[-1])
        return table

    def calibrate(
        self,
        df: pd.DataFrame,
        x_timestamp: object,
        pred_len: int,
        sampling: Sampling | None = None,
        past: PastOrigins = PAST_ORIGINS,
        *,
        series_id: object = 0,
        batch_size: int = 32,
        verbose: bool = False,
    ) -> Calibration:
        """Fit a `Calibration` of `pred_len`-step forecasts on one series' own history `df`
        (`fit_calibration`).

        Pass the result as `calibration=` to `predict_paths`, `predict_quantiles` or `predict_df`
        with the same sampling (`sampling` None: the model's `default_sampling` seeded with 0, which
        a forecast with the default sampling takes). Past origin t draws from (sampling.seed, series_id, t), as `kronos
        evaluate` does. Needs `kronos.forecasting.calibration.required_rows` bars (20 past
        forecasts) and raises ValueError otherwise.
        """
        pred_len = positive_int(pred_len, "pred_len")
        checked_flag(verbose, "verbose")
        bars = prepare_ohlcv(df, "df", np.float64)
        stamps = as_timestamps(x_timestamp, "x_timestamp")
        if len(stamps) != len(bars):
            raise ValueError(f"df has {len(bars)} rows but x_timestamp has {len(stamps)}")
        columns = tuple(feature_sources(df.columns, "df"))
        series = Series(bars, pd.DatetimeIndex(stamps), series_id, "df", columns)
        return self.fit_calibration(series, pred_len, sampling, past, batch_size=batch_size, progress=verbose)

    def predict_df(
        self,
        df: pd.DataFrame,
        id_column: str = "id",
        timestamp_column: str = "timestamps",
        *,
        prediction_length: int,
        quantile_levels: Sequence[float] = DEFAULT_QUANTILE_LEVELS,
        sampling: Sampling | None = None,
        table: TableOptions = TABLE_OPTIONS,
        batch_size: int = 32,
        repair_ohlc: bool = True,
        verbose: bool = False,
        calibration: Mapping[object, Calibration] | None = None,
    ) -> pd.DataFrame:
        """Probabilistic forecasts for every series of a long table, as a long table.

        Input: one row per (id, timestamp) with open, high, low, close and optionally volume and
        amount; series may differ in length and interleave, but each must be sorted by time
        without duplicate timestamps (`kronos.forecasting.tables.split_table`; `table.nan_policy`
        "raise", "ffill" or "drop" decides what missing values do). Each series uses its last
        `table.max_history` bars (default: the predictor's `lookback`) and needs at least
        `table.min_history` (default 10). Future timestamps follow `table.freq` if given, else each
        series' own schedule (`kronos.forecasting.schedules.future_timestamps`: regular frequencies,
        business days, trading sessions); gaps in a history warn (`table.on_gap="warn"`), raise or
        are ignored.

        Output: `prediction_length` rows per series, series in order of first appearance, with
        columns `id_column`, `timestamp_column`, then `path_statistics`' columns
        (`close_mean`, `close_q0.1`, ..., `prob_close_above_last`, `realized_vol`,
        `ohlc_violation_rate`). `attrs["ohlc_violation_rate"]` is the raw rate over all bars.

        Series are grouped by history length and run `batch_size` at a time, so generation's
        memory is bounded by batch_size x sample_count paths whatever the number of series; the
        sampled bars (4 x S x sample_count x prediction_length x 6 bytes) are kept until
        summarised, up to 1 GiB of them at a time. With `sampling.seed`, each series draws from
        (seed, its id) alone: its forecast is the same whatever the batch size or the other series
        in the table. Without one, torch's global generator is used and the draws depend on the
        batch layout. `calibration` maps ids to their `calibrate`d corrections; every series of the
        table needs one.
        """
        pred_len = check_pred_len(prediction_length, "prediction_length")
        levels = check_quantile_levels(quantile_levels)
        sampling = self._sampling(sampling)
        checked_flag(repair_ohlc, "repair_ohlc")
        checked_flag(verbose, "verbose")
        batch_size = positive_int(batch_size, "batch_size")
        table = checked_instance(table, TableOptions, "table", "TableOptions(nan_policy='ffill')")
        max_history = table.history_bars(self.lookback)
        layout = TableLayout(id_column, timestamp_column=timestamp_column)
        series = split_table(df, "df", layout, as_given=True, nan_policy=table.nan_policy)
        if table.adjust_splits:
            series = [adjust_splits(one) for one in series]
        futures = _table_futures(series, pred_len, id_column, table)
        calibrations = _table_calibrations(series, calibration, id_column)
        histories = [one.window(max(0, len(one) - max_history), len(one)) for one in series]
        # at most MAX_PATH_VALUES sampled values at a time: each part is summarised, then dropped
        per_call = max(1, MAX_PATH_VALUES // (sampling.sample_count * pred_len * len(FEATURE_COLUMNS)))
        summaries, violations = [], 0
        for start in range(0, len(series), per_call):
            part = slice(start, start + per_call)
            forecast = self.sample(
                histories[part], pred_len, sampling, calibrations[part],
                future=futures[part], batch_size=batch_size, progress=verbose,
            )  # fmt: skip
            summaries.append(forecast.summary(levels, repair_ohlc))
            violations += int(ohlc_violations(forecast.paths).sum())
        ids = pd.Index([one.key for one in series]).repeat(pred_len)
        columns = {k: np.concatenate([s[k] for s in summaries]).ravel() for k in summaries[0]}
        out = pd.DataFrame({id_column: ids, timestamp_column: futures[0].append(futures[1:]), **columns})
        out.attrs["ohlc_violation_rate"] = violations / (len(series) * sampling.sample_count * pred_len)
        return out


def _table_futures(
    series: list[Series], pred_len: int, id_column: str, table: TableOptions
) -> list[pd.DatetimeIndex]:
    """The future timestamps of each series of a long table (`predict_df`); its gaps reported."""
    futures, gaps = [], []
    for one in series:
        name = f"{id_column}={one.key!r}"
        if len(one) < table.min_history:
            raise ValueError(
                f"series {name} has {len(one)} bars; at least min_history={table.min_history} are needed"
            )
        future = future_timestamps(one.timestamps, pred_len, name, table.freq, table.calendar)
        futures.append(future.timestamps)
        if future.gap is not None:
            gaps.append(replace(future.gap, id=one.key))
    report_gaps(gaps, table.on_gap, id_column)
    return futures


def _table_calibrations(
    series: list[Series], calibration: Mapping[object, Calibration] | None, id_column: str
) -> list[Calibration | None]:
    if calibration is None:
        return [None] * len(series)
    uncalibrated = [one.key for one in series if one.key not in calibration]
    if uncalibrated:
        raise ValueError(f"calibration has no entry for {id_column} {uncalibrated[:5]}")
    return [calibration[one.key] for one in series]
