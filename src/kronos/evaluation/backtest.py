"""Rolling-origin backtests: the model and naive baselines forecast the same origins, scored alike.

An origin t of a series splits it into the lookback rows [t - L, t) and the target rows
[t, t + H). Every forecaster sees the lookback rows only (the model's normalisation included)
plus, for the model, the calendar timestamps of the target rows, which are known in advance.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import cast

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from kronos.engine.sampling import Sampling
from kronos.evaluation.baselines import BASELINES, run_baseline
from kronos.evaluation.data import as_series_dict, present_columns
from kronos.evaluation.result import CALIBRATED, MODEL_NAME, EvaluationResult
from kronos.evaluation.scores import ScoredOrigins
from kronos.evaluation.volatility import fit_volatility
from kronos.forecasting.calibration import (
    MAX_ORIGINS,
    Calibration,
    default_every,
    fit_origins,
    fit_past_forecasts,
    origin_volatility,
    required_rows,
)
from kronos.forecasting.core import RUN_SEED, ContextWarning, center_paths
from kronos.forecasting.paths import repair_ohlc
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.series import CLOSE, Series, check_pred_len, positive_int

Origin = tuple[str, int]
"""(series name, row t): the forecast from the lookback bars before row t."""


class SeededRun:
    """What a seeded run's settings (`Backtest`, `CrossSection`) read of their `sampling` field."""

    sampling: Sampling | None

    @property
    def drawn(self) -> Sampling:
        """The run's sampling, once `run_sampling` has resolved a None `sampling`."""
        if self.sampling is None:
            raise ValueError("sampling is None until the run resolves it (run_sampling)")
        return self.sampling

    @property
    def seed(self) -> int:
        return RUN_SEED if self.sampling is None else int(self.sampling.seed or 0)


@dataclass(frozen=True)
class Backtest(SeededRun):
    """What a backtest forecasts, and how.

    `steps` bars are forecast at each origin from the `lookback` bars before it (None: the
    bars of history the model was trained with, `KronosPredictor.lookback`). `origins` and
    `every` choose the origins per series (`select_origins`; at most one of them, neither means
    every possible origin). `sampling` draws the model's paths (None: the model's defaults,
    seeded 0: `run_sampling`) and, with its seed, the baselines' random walk and the bootstrap; origin t of series s draws from (seed, s, t)
    alone. `calibrate` also scores the model calibrated at each origin on the series' bars
    before it, from past forecasts one every `calibration_every` bars (default: half the
    horizon). `batch_size` origins go to the model at once. `start` and `end` (timestamps or ISO
    dates; an end at midnight takes in its whole day) keep only the origins whose forecast bars all
    lie within [start, end]: bars before start are still history, so a fine-tuned model can be
    scored on the period after its training data alone.
    """

    steps: int
    lookback: int | None = None
    origins: int | None = None
    every: int | None = None
    sampling: Sampling | None = None
    baselines: Sequence[str] = BASELINES
    calibrate: bool = False
    calibration_every: int | None = None
    batch_size: int = 32
    model_name: str = MODEL_NAME
    start: pd.Timestamp | str | None = None
    end: pd.Timestamp | str | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            object.__setattr__(self, name, _timestamp(getattr(self, name), name))
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(
                f"end {self.end} is before start {self.start}; give an end on or after the start"
            )
        check_pred_len(self.steps, "steps")
        for name in ("lookback", "origins", "every", "calibration_every"):
            if getattr(self, name) is not None:
                positive_int(getattr(self, name), name)
        positive_int(self.batch_size, "batch_size")
        if self.lookback is not None and self.lookback < 3:
            raise ValueError(
                f"lookback must be at least 3 bars (the baselines estimate a volatility), got {self.lookback}"
            )
        if self.origins is not None and self.every is not None:
            raise ValueError("give either origins or every, not both")
        if self.sampling is not None and self.sampling.seed is None:
            raise ValueError(
                "a backtest is seeded: origin t of series s draws from (seed, s, t); give Sampling(seed=...)"
            )
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ValueError(f"unknown baseline(s) {unknown}: choose from {list(BASELINES)}")
        object.__setattr__(self, "baselines", tuple(self.baselines))

    @property
    def past_every(self) -> int:
        """Bars between two past origins of a calibration."""
        return default_every(self.steps) if self.calibration_every is None else self.calibration_every


def run_sampling(sampling: Sampling | None, predictor: KronosPredictor | None) -> Sampling:
    """A run's sampling: as given, else the model's defaults (the package's without a model)
    seeded RUN_SEED."""
    if sampling is not None:
        return sampling
    if predictor is None:
        return Sampling(seed=RUN_SEED)
    return predictor.sampling_with(seed=RUN_SEED)


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


@dataclass(frozen=True)
class OriginBatch:
    """Origins the model forecasts in one call: the lookback window of each, keyed by its
    (series, origin), and the timestamps of its target bars."""

    windows: list[Series]
    futures: list[pd.DatetimeIndex]

    @property
    def keys(self) -> list[Origin]:
        return [cast(Origin, window.key) for window in self.windows]


def origin_batches(
    series: dict[str, Series], origins: list[Origin], lookback: int, steps: int, batch_size: int
) -> Iterator[OriginBatch]:
    """The origins in order, `batch_size` at a time."""
    for start in range(0, len(origins), batch_size):
        keys = origins[start : start + batch_size]
        yield OriginBatch(
            [series[name].window(t - lookback, t, key=(name, t)) for name, t in keys],
            [series[name].timestamps[t : t + steps] for name, t in keys],
        )


@dataclass(frozen=True)
class OriginForecast:
    """The model's sample paths for a batch of origins, [O, P, H, 6] in price units.

    Origin t of series s draws from (seed, s, t) alone, so its paths do not depend on the
    batching, nor on the machine or process that forecasts it.
    """

    steps: int
    sampling: Sampling

    def __call__(self, predictor: KronosPredictor, batch: OriginBatch) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ContextWarning)  # evaluate says it once, and in the report
            # the model's own paths: _ModelRun centers the raw forecasts, calibrations fit their own centre
            forecast = predictor.sample(
                batch.windows, self.steps, self.sampling, future=batch.futures, center=False
            )
            return forecast.paths


Engine = Callable[[OriginForecast, Iterator[OriginBatch]], Iterable[np.ndarray]]
"""Runs an `OriginForecast` over batches and gives their paths in order: `kronos.ray.engine.RayEngine`."""


def forecast_here(predictor: KronosPredictor, progress: bool, total: int) -> Engine:
    """The local engine: one batch after another, in this process."""

    def run(forecast: OriginForecast, batches: Iterator[OriginBatch]) -> Iterator[np.ndarray]:
        with tqdm(total=total, desc="forecasting origins", unit="origin", disable=not progress) as bar:
            for batch in batches:
                yield forecast(predictor, batch)
                bar.update(len(batch.windows))

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
    predictor: KronosPredictor | None,
    backtest: Backtest,
    *,
    engine: Engine | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Rolling-origin evaluation of a KronosPredictor (or of the baselines alone if it is None).

    data: a DataFrame with a `timestamps` column, a dict of them by series name, or file path(s)
    (see `read_series` for long tables with an id column). `backtest` says what is forecast and
    how; a lookback beyond the model's context warns and is noted in the report. Series too
    short for one origin are skipped with a warning. `engine` runs the model's forecasts
    elsewhere (`kronos.ray.engine.RayEngine`); everything else runs here, so the numbers are the
    same.
    """
    backtest = replace(backtest, sampling=run_sampling(backtest.sampling, predictor))
    lookback = _lookback(backtest, predictor)
    first = required_rows(lookback, backtest.steps, backtest.past_every) if backtest.calibrate else lookback
    series = as_series_dict(data)
    origins, skipped = _origins(series, backtest, lookback, first)
    histories = np.stack([series[name].bars[t - lookback : t] for name, t in origins])
    fitted = fit_volatility(series, origins, lookback)
    scored = _scored_origins(series, origins, backtest.steps, histories[:, -1, :])
    notes = _context_notes(predictor, lookback)
    forecasts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    calibrations: dict[Origin, Calibration] = {}
    if predictor is not None:
        model = _ModelRun(series, origins, backtest, lookback, predictor.center)
        forecasts, calibrations = model.forecasts(
            engine or forecast_here(predictor, progress, len(model.needed))
        )
    models = list(forecasts)
    rng = np.random.default_rng(backtest.seed)
    for name in backtest.baselines:
        forecasts[name] = run_baseline(
            name, histories, backtest.steps, backtest.drawn.sample_count, rng, fitted
        )
    records = scored.score(forecasts, rng)
    return EvaluationResult(
        records=records,
        volatility=scored.volatility({m: forecasts[m][1] for m in models}, fitted),
        origins=scored.table,
        forecasts=forecasts,
        histories=histories,
        actuals=scored.actuals,
        columns=scored.columns,
        models=models,
        baselines=list(backtest.baselines),
        settings=_settings(backtest, lookback, len(series) - len(skipped), len(origins), notes)
        | {"range_based_volatility": scored.range_based},
        skipped=skipped,
        calibrations=calibrations,
    )


def _lookback(backtest: Backtest, predictor: KronosPredictor | None) -> int:
    """The backtest's lookback (the model's without one), once the backtest is checked against the model."""
    if predictor is None and not backtest.baselines:
        raise ValueError("nothing to evaluate: no model and no baselines")
    if predictor is not None and backtest.model_name in backtest.baselines:
        raise ValueError(f"model_name {backtest.model_name!r} is also a baseline's name; choose another")
    if backtest.calibrate and predictor is None:
        raise ValueError("calibrate needs a model: there is nothing to calibrate")
    if backtest.lookback is not None:
        return backtest.lookback
    if predictor is None:
        raise ValueError("lookback is required: there is no model to take it from")
    return positive_int(predictor.lookback, "lookback")


def _origins(
    series: dict[str, Series], backtest: Backtest, lookback: int, first: int
) -> tuple[list[Origin], dict[str, str]]:
    """Every origin of every series, in order, and the series too short for one (with why)."""
    _check_dates_meet_the_data(series, backtest)
    origins: list[Origin] = []
    skipped: dict[str, str] = {}
    for name, one in series.items():
        begin, until = _rows_within(one.timestamps, backtest.start, backtest.end)
        rows = select_origins(
            until, lookback, backtest.steps, backtest.origins, backtest.every, max(first, begin)
        )
        if len(rows) == 0:
            needs = "the past forecasts of a calibration and " if backtest.calibrate else "lookback + "
            skipped[name] = f"{len(one)} rows, fewer than {needs}steps = {first + backtest.steps}"
            if (begin, until) != (0, len(one)):
                skipped[name] = f"no origin whose {backtest.steps} forecast bars lie within [start, end]"
        origins.extend((name, int(t)) for t in rows)
    if skipped:
        warnings.warn(f"skipped series too short for one origin: {skipped}", stacklevel=3)
    if not origins:
        raise ValueError(f"no series has {first + backtest.steps} rows (see skipped); nothing to evaluate")
    return origins, skipped


def _timestamp(value: pd.Timestamp | str | None, name: str) -> pd.Timestamp | None:
    """A start or end as a Timestamp, refused naming the field when it is not a date."""
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} {value!r} is not a date: give an ISO date such as 2024-01-31") from err
    if stamp is pd.NaT:
        raise ValueError(f"{name} {value!r} is not a date: give an ISO date such as 2024-01-31")
    return stamp


def _in_zone_of(stamp: pd.Timestamp, times: pd.DatetimeIndex) -> pd.Timestamp:
    """The timestamp in the series' time zone (a naive one is read in it), or naive for naive series."""
    if times.tz is None:
        return stamp.tz_convert(None) if stamp.tz is not None else stamp
    return stamp.tz_localize(times.tz) if stamp.tz is None else stamp.tz_convert(times.tz)


def _rows_within(timestamps, start: pd.Timestamp | None, end: pd.Timestamp | None) -> tuple[int, int]:
    """(first row at or after start, rows up to end): origins t with begin <= t and t + steps <= until
    forecast bars within [start, end]; an end at midnight takes in its whole day."""
    times = pd.DatetimeIndex(timestamps)
    begin = 0 if start is None else int(times.searchsorted(_in_zone_of(start, times), side="left"))
    if end is None:
        return begin, len(times)
    limit = _in_zone_of(end, times)
    if limit == limit.normalize():
        return begin, int(times.searchsorted(limit + pd.Timedelta(days=1), side="left"))
    return begin, int(times.searchsorted(limit, side="right"))


def _check_dates_meet_the_data(series: dict[str, Series], backtest: Backtest) -> None:
    """Refuse a start after the last bar of every series, or an end before the first bar of every one."""
    bounds = [_rows_within(one.timestamps, backtest.start, backtest.end) for one in series.values()]
    if all(begin == len(one) for (begin, _), one in zip(bounds, series.values())):
        latest = max(one.timestamps[-1] for one in series.values())
        raise ValueError(
            f"start {backtest.start} is after the last bar of every series ({latest}); give an earlier start"
        )
    if all(until == 0 for _, until in bounds):
        earliest = min(one.timestamps[0] for one in series.values())
        raise ValueError(
            f"end {backtest.end} is before the first bar of every series ({earliest}); give a later end"
        )


def _scored_origins(
    series: dict[str, Series], origins: list[Origin], steps: int, last: np.ndarray
) -> ScoredOrigins:
    table = pd.DataFrame(
        {
            "series": [name for name, _ in origins],
            "origin": [t for _, t in origins],
            "origin_time": [series[name].timestamps[t - 1] for name, t in origins],
        }
    )
    return ScoredOrigins(
        table,
        np.stack([series[name].timestamps[t : t + steps].to_numpy() for name, t in origins]),
        np.stack([series[name].bars[t : t + steps] for name, t in origins]),
        last,
        present_columns(series),
    )


def _context_notes(predictor: KronosPredictor | None, lookback: int) -> list[str]:
    """What the report must say about the model's context (warned here too)."""
    note = None if predictor is None else context_note(lookback, predictor.max_context)
    if note is None:
        return []
    warnings.warn(note, ContextWarning, stacklevel=3)
    return [note]


class _ModelRun:
    """The model's forecasts at a backtest's origins, and with `calibrate` at the past origins
    each one's calibration is fitted on: each past forecast is sampled once, however many
    calibrations use it."""

    def __init__(
        self,
        series: dict[str, Series],
        origins: list[Origin],
        backtest: Backtest,
        lookback: int,
        center: bool,
    ):
        self.series, self.origins, self.backtest, self.lookback = series, origins, backtest, lookback
        self.center = center  # the raw forecasts as the predictor gives them (`center_paths`)
        none = np.empty(0, dtype=np.int64)
        self.past = {
            (name, t): fit_origins(t, lookback, backtest.steps, backtest.past_every, MAX_ORIGINS)
            if backtest.calibrate
            else none
            for name, t in origins
        }
        past = {(name, int(u)) for (name, _), rows in self.past.items() for u in rows}
        self.needed = sorted(set(origins) | past)
        self.at = {key: i for i, key in enumerate(self.needed)}

    def forecasts(
        self, engine: Engine
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[Origin, Calibration]]:
        """(model name -> (point, paths)) of the raw and, with `calibrate`, calibrated model; the calibrations."""
        b = self.backtest
        batches = origin_batches(self.series, self.needed, self.lookback, b.steps, b.batch_size)
        every_path = repair_ohlc(  # as predict_quantiles and predict_df give them
            np.concatenate([p.astype(np.float64) for p in engine(OriginForecast(b.steps, b.drawn), batches)])
        )
        paths = every_path[[self.at[key] for key in self.origins]]
        raw = (
            np.stack([self._centered(key, one) for key, one in zip(self.origins, paths)])
            if self.center
            else paths
        )
        forecasts = {b.model_name: (raw.mean(axis=1), raw)}
        if not b.calibrate:
            return forecasts, {}
        calibrations = {key: self._calibration(key, every_path) for key in self.origins}
        calibrated = np.stack(
            [self._apply(calibrations[key], key, one) for key, one in zip(self.origins, paths)]
        )
        forecasts[b.model_name + CALIBRATED] = (calibrated.mean(axis=1), calibrated)
        return forecasts, calibrations

    def _calibration(self, key: Origin, every_path: np.ndarray) -> Calibration:
        """The calibration at an origin, fitted on the paths sampled at its past origins."""
        name, _ = key
        rows = self.past[key]
        paths = every_path[[self.at[(name, int(u))] for u in rows]]
        return fit_past_forecasts(paths, self.series[name].bars, rows, self.lookback, self.backtest.drawn)

    def _centered(self, key: Origin, paths: np.ndarray) -> np.ndarray:
        name, t = key
        return center_paths(paths, float(self.series[name].bars[t - 1, CLOSE]))  # as `_apply` takes it

    def _apply(self, calibration: Calibration, key: Origin, paths: np.ndarray) -> np.ndarray:
        name, t = key
        bars = self.series[name].bars
        volatility = origin_volatility(bars, np.array([t]), self.lookback)[0]
        return calibration.apply(paths, bars[t - 1, CLOSE], volatility)


def _settings(backtest: Backtest, lookback: int, n_series: int, n_origins: int, notes: list[str]) -> dict:
    """The settings the report states."""
    s = backtest.drawn
    return {
        "lookback": lookback,
        "steps": backtest.steps,
        "origins": backtest.origins,
        "every": backtest.every,
        "paths": s.sample_count,
        "T": s.T,
        "top_k": s.top_k,
        "top_p": s.top_p,
        "seed": backtest.seed,
        "batch_size": backtest.batch_size,
        "calibrate": backtest.calibrate,
        "calibration_every": backtest.past_every if backtest.calibrate else None,
        "n_series": n_series,
        "n_origins": n_origins,
        "start": None if backtest.start is None else str(backtest.start),
        "end": None if backtest.end is None else str(backtest.end),
        "notes": notes,
    }
