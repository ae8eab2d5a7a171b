"""Rolling-origin backtests: the model and naive baselines forecast the same origins, scored alike.

An origin t of a series splits it into the lookback rows [t - L, t) and the target rows
[t, t + H). Every forecaster sees the lookback rows only (the model's normalisation included)
plus, for the model, the calendar timestamps of the target rows, which are known in advance.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from kronos.engine.sampling import PATHS, TEMPERATURE, TOP_P, Sampling
from kronos.evaluation import metrics
from kronos.evaluation.baselines import BASELINES, run_baseline
from kronos.evaluation.data import as_series_dict, present_columns
from kronos.forecasting.calibration import (
    MAX_ORIGINS,
    Calibration,
    default_every,
    fit_origins,
    history_volatility,
    required_rows,
)
from kronos.forecasting.paths import horizon_volatility, realized_volatility, repair_ohlc
from kronos.forecasting.predictor import ContextWarning
from kronos.forecasting.series import CLOSE, FEATURE_COLUMNS, check_pred_len, positive_int

MODEL_NAME = "kronos"
CALIBRATED = "-calibrated"  # the calibrated model's name: MODEL_NAME + CALIBRATED
SCORE_COLUMNS = [
    "abs_error",
    "squared_error",
    "ape",
    "crps",
    "crps_rel",
    "quantile_loss",
    "cover_50",
    "cover_80",
    "cover_95",
    "pit",
    "direction_hit",
    "prob_up",
    "brier",
]


def select_origins(
    n_rows: int,
    lookback: int,
    steps: int,
    origins: int | None = None,
    every: int | None = None,
    first: int | None = None,
) -> np.ndarray:
    """Origin rows t with t >= first (default: lookback) and t + steps <= n_rows.

    `origins=N`: N origins spread evenly from the first possible to the last (all of them when
    fewer exist). `every=K`: one origin every K rows, counted back from the last possible one.
    """
    first, last = (lookback if first is None else first), n_rows - steps
    if last < first:
        return np.empty(0, dtype=np.int64)
    if every is not None:
        return np.arange(last, first - 1, -every, dtype=np.int64)[::-1].copy()
    count = last - first + 1
    if origins is None or origins >= count:
        return np.arange(first, last + 1, dtype=np.int64)
    return np.unique(np.round(np.linspace(first, last, origins)).astype(np.int64))


def score_forecasts(
    point: np.ndarray, paths: np.ndarray, last: np.ndarray, actual: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Every per-point score, each [O, H, C], for point [O, H, C], paths [O, P, H, C], last [O, C], actual [O, H, C].

    crps_rel is the CRPS over |last value|, scale-free across series (NaN where last is 0). APE is
    NaN where the actual is 0; a direction hit is NaN where the forecast or the actual does
    not move from the last value (no call to judge). P(up) is the share of paths strictly above the
    last value (for close, `prob_close_above_last` of a forecast), and its Brier score is
    (P(up) - [actual > last])^2. PIT, P(up) and Brier are NaN for a single-path (point) forecast,
    which has no distribution to calibrate.
    """
    samples = np.moveaxis(paths, 1, 0)
    error = point - actual
    with np.errstate(divide="ignore", invalid="ignore"):
        ape = np.where(actual != 0, np.abs(error) / np.abs(actual), np.nan)
    predicted_move = np.sign(point - last[:, None, :])
    actual_move = np.sign(actual - last[:, None, :])
    judged = (predicted_move != 0) & (actual_move != 0)
    degenerate = samples.shape[0] == 1
    prob_up = np.full(actual.shape, np.nan) if degenerate else (samples > last[:, None, :]).mean(axis=0)
    crps = metrics.crps_from_samples(samples, actual)
    scores = {
        "abs_error": np.abs(error),
        "squared_error": error**2,
        "ape": ape,
        "crps": crps,
        "crps_rel": np.where(
            last[:, None, :] != 0, crps / np.abs(np.where(last == 0, 1, last))[:, None, :], np.nan
        ),
        "quantile_loss": metrics.quantile_loss(samples, actual),
        "pit": np.full(actual.shape, np.nan) if degenerate else metrics.randomized_pit(samples, actual, rng),
        "direction_hit": np.where(judged, (predicted_move == actual_move).astype(np.float64), np.nan),
        "prob_up": prob_up,
        "brier": (prob_up - (actual > last[:, None, :])) ** 2,
    }
    for level in metrics.INTERVAL_LEVELS:
        scores[f"cover_{round(level * 100)}"] = metrics.interval_hits(samples, actual, level)
    return scores


@dataclass
class EvaluationResult:
    """Everything a backtest produced; tables are computed from `records` on demand.

    records: one row per method, series, origin, horizon step and column, with the actual, the
    point forecast and every score. volatility: one row per method, series and origin, with the
    forecast and realised volatility of close over the horizon. forecasts: method -> (point
    [O, H, 6], paths [O, P, H, 6]) in FEATURE_COLUMNS order; histories [O, L, 6]; actuals [O, H, 6].
    calibrations: (series, origin) -> the calibration applied there (with `calibrate`).
    """

    records: pd.DataFrame
    volatility: pd.DataFrame
    origins: pd.DataFrame
    forecasts: dict[str, tuple[np.ndarray, np.ndarray]]
    histories: np.ndarray
    actuals: np.ndarray
    columns: list[str]
    models: list[str]
    baselines: list[str]
    settings: dict
    skipped: dict[str, str] = field(default_factory=dict)
    calibrations: dict[tuple[str, int], Calibration] = field(default_factory=dict)
    _summaries: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def methods(self) -> list[str]:
        return self.models + self.baselines

    def summary(
        self, column: str = "close", n_boot: int = 1000, confidence: float = 0.95, seed: int | None = None
    ) -> pd.DataFrame:
        """One row per method: each metric over all origins and horizons with a bootstrap CI
        (origins resampled), and for error metrics the ratio to the best baseline with a paired CI."""
        from kronos.evaluation.tables import summary_table

        seed = self.settings.get("seed", 0) if seed is None else seed
        key = (column, n_boot, confidence, seed)
        if key not in self._summaries:
            self._summaries[key] = summary_table(self, column, n_boot, confidence, seed)
        return self._summaries[key].copy()

    def by_horizon(self, column: str = "close") -> pd.DataFrame:
        """Mean scores per method and horizon step."""
        from kronos.evaluation.tables import horizon_table

        return horizon_table(self, column)

    def by_column(self) -> pd.DataFrame:
        """Mean error scores per method and column (wQL: summed quantile loss over summed |actual|)."""
        from kronos.evaluation.tables import column_table

        return column_table(self)

    def reliability(self, column: str = "close", bins: int = 10) -> pd.DataFrame:
        """The models' P(up) against the observed frequency of ending above the last value, by bin."""
        from kronos.evaluation.tables import reliability_table

        return reliability_table(self, column, bins)

    def pit_histogram(self, column: str = "close", bins: int = 10) -> pd.DataFrame:
        """PIT density per method (rows) and bin (columns); 1.0 everywhere when calibrated."""
        rows = self.records[self.records["column"] == column]
        return pd.DataFrame(
            {
                m: metrics.pit_histogram(g["pit"].to_numpy(), bins)
                for m, g in rows.groupby("method", sort=False)
            },
            index=[f"{i / bins:.1f}-{(i + 1) / bins:.1f}" for i in range(bins)],
        ).T.loc[self.methods]

    def write_report(self, out_dir, html: bool = False, plots: bool = True, n_boot: int = 1000) -> dict:
        """Write report.md (and report.html), plots and raw results into out_dir; returns the paths written."""
        from kronos.evaluation.report import write_report

        return write_report(self, out_dir, html=html, plots=plots, n_boot=n_boot)


@dataclass
class OriginBatch:
    """Origins the model forecasts in one call: their (series, origin) keys, lookback windows
    and the timestamps of their target bars."""

    keys: list[tuple[str, int]]
    windows: list[pd.DataFrame]
    targets: list[pd.Series]


def origin_batches(series, origin_list, lookback: int, steps: int, batch_size: int) -> Iterator[OriginBatch]:
    """The origins in order, `batch_size` at a time."""
    frames = {name: one.frame() for name, one in series.items()}
    for start in range(0, len(origin_list), batch_size):
        keys = origin_list[start : start + batch_size]
        yield OriginBatch(
            keys,
            [frames[name].iloc[t - lookback : t] for name, t in keys],
            [series[name].timestamps[t : t + steps] for name, t in keys],
        )


@dataclass(frozen=True)
class OriginForecast:
    """The model's sample paths for a batch of origins, [O, P, H, 6] in price units.

    Origin t of series s draws from (seed, s, t) alone, so its paths do not depend on the
    batching, nor on the machine or process that forecasts it.
    """

    steps: int
    paths: int
    sampling: dict
    seed: int

    def __call__(self, predictor, batch: OriginBatch) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ContextWarning)  # evaluate says it once, and in the report
            return predictor.predict_paths_batch(
                batch.windows,
                [w["timestamps"] for w in batch.windows],
                batch.targets,
                self.steps,
                sample_count=self.paths,
                verbose=False,
                seed=self.seed,
                series_ids=batch.keys,
                **self.sampling,
            )


Engine = Callable[[OriginForecast, Iterator[OriginBatch]], Iterable[np.ndarray]]
"""Runs an `OriginForecast` over batches and gives their paths in order: `kronos.ray.engine.RayEngine`."""


def _forecast_here(predictor, progress: bool, total: int) -> Engine:
    """The local engine: one batch after another, in this process."""

    def run(forecast: OriginForecast, batches: Iterator[OriginBatch]) -> Iterator[np.ndarray]:
        with tqdm(total=total, desc="forecasting origins", unit="origin", disable=not progress) as bar:
            for batch in batches:
                yield forecast(predictor, batch)
                bar.update(len(batch.keys))

    return run


def context_note(lookback: int, max_context: int) -> str | None:
    """What a lookback beyond the model's context does, in words; None when it fits."""
    if lookback <= max_context:
        return None
    return (
        f"The lookback of {lookback} bars is longer than the model's context of {max_context}: the model "
        f"attends to the last {max_context} tokens only, while all {lookback} bars set the normalisation "
        f"(mean and std) and pass through the tokenizer. Evaluate at the model's own lookback (the "
        f"default), or pass --normalize context to normalise on the bars the model sees."
    )


def evaluate(
    data,
    predictor=None,
    *,
    lookback: int | None = None,
    steps: int,
    origins: int | None = None,
    every: int | None = None,
    paths: int = PATHS,
    baselines: tuple[str, ...] | list[str] = BASELINES,
    T: float = TEMPERATURE,
    top_k: int = 0,
    top_p: float = TOP_P,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
    model_name: str = MODEL_NAME,
    engine: Engine | None = None,
    calibrate: bool = False,
    calibration_every: int | None = None,
) -> EvaluationResult:
    """Rolling-origin evaluation of a KronosPredictor (or of the baselines alone if it is None).

    data: a DataFrame with a `timestamps` column, a dict of them by series name, or file path(s)
    (see `read_series` for long tables with an id column). `lookback` defaults to the bars of history
    the model was trained with (`predictor.lookback`); a lookback beyond the model's context
    warns and is noted in the report. `origins` and `every` choose the origins
    per series (at most one of them; neither means every possible origin). Series too short for
    one origin are skipped with a warning. Sampling is seeded: model batches from `seed`, the
    Gaussian random walk from a numpy generator seeded with `seed`. `engine` runs the model's
    forecasts elsewhere (`kronos.ray.engine.RayEngine`); everything else runs here, so the
    numbers are the same.
    """
    if lookback is None:
        lookback = getattr(predictor, "lookback", None)
        if lookback is None:
            raise ValueError("lookback is required: there is no model to take it from")
    lookback, paths, batch_size = (
        positive_int(v, n) for v, n in ((lookback, "lookback"), (paths, "paths"), (batch_size, "batch_size"))
    )
    steps = check_pred_len(steps, "steps")
    if lookback < 3:
        raise ValueError(
            f"lookback must be at least 3 bars (the baselines estimate a volatility), got {lookback}"
        )
    if origins is not None and every is not None:
        raise ValueError("give either origins or every, not both")
    if origins is not None:
        origins = positive_int(origins, "origins")
    if every is not None:
        every = positive_int(every, "every")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}: choose from {list(BASELINES)}")
    if predictor is None and not baselines:
        raise ValueError("nothing to evaluate: no model and no baselines")
    if predictor is not None and model_name in baselines:
        raise ValueError(f"model_name {model_name!r} is also a baseline's name; choose another")
    if calibrate and predictor is None:
        raise ValueError("calibrate needs a model: there is nothing to calibrate")
    calibration_every = default_every(steps) if calibration_every is None else calibration_every
    calibration_every = positive_int(calibration_every, "calibration_every")
    first = required_rows(lookback, steps, calibration_every) if calibrate else lookback

    series = as_series_dict(data)
    columns = present_columns(series)
    origin_list: list[tuple[str, int]] = []
    skipped: dict[str, str] = {}
    for name, one in series.items():
        rows = select_origins(len(one), lookback, steps, origins, every, first)
        if len(rows) == 0:
            needs = "the past forecasts of a calibration and " if calibrate else "lookback + "
            skipped[name] = f"{len(one)} rows, fewer than {needs}steps = {first + steps}"
        origin_list.extend((name, int(t)) for t in rows)
    if skipped:
        warnings.warn(f"skipped series too short for one origin: {skipped}", stacklevel=2)
    if not origin_list:
        raise ValueError(f"no series has {first + steps} rows (see skipped); nothing to evaluate")

    histories = np.stack([series[name].bars[t - lookback : t] for name, t in origin_list])
    actuals = np.stack([series[name].bars[t : t + steps] for name, t in origin_list])
    last = histories[:, -1, :]

    forecasts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    calibrations: dict[tuple[str, int], Calibration] = {}
    models = []
    notes = []
    max_context = getattr(predictor, "max_context", None)
    note = None if max_context is None else context_note(lookback, max_context)
    if note is not None:
        warnings.warn(note, ContextWarning, stacklevel=2)
        notes.append(note)
    if predictor is not None:
        sampling = Sampling(T, top_k, top_p, paths, seed)
        no_fit = np.empty(0, dtype=np.int64)
        fits = {
            (name, t): fit_origins(t, lookback, steps, calibration_every, MAX_ORIGINS)
            if calibrate
            else no_fit
            for name, t in origin_list
        }
        needed = sorted(set(origin_list) | {(name, int(u)) for (name, _), us in fits.items() for u in us})
        at = {key: i for i, key in enumerate(needed)}
        forecast = OriginForecast(steps, paths, {"T": T, "top_k": top_k, "top_p": top_p}, seed)
        batches = origin_batches(series, needed, lookback, steps, batch_size)
        run = engine or _forecast_here(predictor, progress, len(needed))
        every_path = repair_ohlc(  # as predict_quantiles and predict_df give them
            np.concatenate([p.astype(np.float64) for p in run(forecast, batches)])
        )
        model_paths = every_path[[at[key] for key in origin_list]]
        forecasts[model_name] = (model_paths.mean(axis=1), model_paths)
        models.append(model_name)
        if calibrate:
            calibrated = np.empty_like(model_paths)
            volatility = {  # of each forecast's history, as predict_paths computes it
                (name, t): history_volatility(series[name].bars[t - lookback : t, CLOSE].astype(np.float32))
                for name, t in needed
            }
            for i, (name, t) in enumerate(origin_list):
                us, bars = fits[(name, t)], series[name].bars
                calibration = Calibration.fit(
                    every_path[[at[(name, int(u))] for u in us]],
                    bars[us[:, None] + np.arange(steps), CLOSE],
                    bars[us - 1, CLOSE],
                    np.array([volatility[(name, int(u))] for u in us]),
                    sampling,
                    lookback,
                )
                calibrations[(name, t)] = calibration
                calibrated[i] = calibration.apply(model_paths[i], last[i, CLOSE], volatility[(name, t)])
            forecasts[model_name + CALIBRATED] = (calibrated.mean(axis=1), calibrated)
            models.append(model_name + CALIBRATED)
    rng = np.random.default_rng(seed)
    for name in baselines:
        forecasts[name] = run_baseline(name, histories, steps, paths, rng)

    origin_table = pd.DataFrame(
        {
            "series": [name for name, _ in origin_list],
            "origin": [t for _, t in origin_list],
            "origin_time": [series[name].timestamps[t - 1] for name, t in origin_list],
        }
    )
    target_times = np.stack([series[name].timestamps[t : t + steps].to_numpy() for name, t in origin_list])
    column_index = [FEATURE_COLUMNS.index(c) for c in columns]
    record_parts, volatility_parts = [], []
    # per step (over the horizon, divided by sqrt(steps)), so that backtests of different horizons compare
    per_step = np.sqrt(steps)
    realised = realized_volatility(actuals[:, None], last[:, CLOSE])[:, 0, -1] / per_step
    for method, (point, method_paths) in forecasts.items():
        scores = score_forecasts(point, method_paths, last, actuals, rng)
        record_parts.append(
            _long_records(
                method, origin_table, target_times, columns, column_index, actuals, last, point, scores
            )
        )
        degenerate = method_paths.shape[1] == 1
        forecast_vol = (
            np.full(len(origin_list), np.nan)
            if degenerate
            else horizon_volatility(method_paths, last[:, CLOSE])[:, -1] / per_step
        )
        volatility_parts.append(
            origin_table.assign(
                method=method,
                forecast_volatility=forecast_vol,
                realised_volatility=realised,
                volatility_abs_error=np.abs(forecast_vol - realised),
            )
        )
    settings = {
        "lookback": lookback,
        "steps": steps,
        "origins": origins,
        "every": every,
        "paths": paths,
        "T": T,
        "top_k": top_k,
        "top_p": top_p,
        "seed": seed,
        "batch_size": batch_size,
        "calibrate": calibrate,
        "calibration_every": calibration_every if calibrate else None,
        "n_series": len(series) - len(skipped),
        "n_origins": len(origin_list),
        "notes": notes,
    }
    return EvaluationResult(
        records=pd.concat(record_parts, ignore_index=True),
        volatility=pd.concat(volatility_parts, ignore_index=True),
        origins=origin_table,
        forecasts=forecasts,
        histories=histories,
        actuals=actuals,
        columns=columns,
        models=models,
        baselines=list(baselines),
        settings=settings,
        skipped=skipped,
        calibrations=calibrations,
    )


def _long_records(method, origin_table, target_times, columns, column_index, actuals, last, point, scores):
    """Flatten [O, H, C] arrays into rows ordered by origin, horizon, column."""
    n_origins, steps = target_times.shape
    n_cols = len(columns)
    take = np.asarray(column_index)
    repeat = steps * n_cols
    table = {
        "method": method,
        "series": np.repeat(origin_table["series"].to_numpy(), repeat),
        "origin": np.repeat(origin_table["origin"].to_numpy(), repeat),
        "origin_time": np.repeat(origin_table["origin_time"].to_numpy(), repeat),
        "horizon": np.tile(np.repeat(np.arange(1, steps + 1), n_cols), n_origins),
        "target_time": np.repeat(target_times.ravel(), n_cols),
        "column": np.tile(np.asarray(columns, dtype=object), n_origins * steps),
        "last": np.repeat(last[:, None, take], steps, axis=1).ravel(),
        "actual": actuals[..., take].ravel(),
        "forecast": point[..., take].ravel(),
    }
    for name in SCORE_COLUMNS:
        table[name] = scores[name][..., take].ravel()
    return pd.DataFrame(table)
