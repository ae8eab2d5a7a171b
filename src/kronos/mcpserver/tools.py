"""What the MCP tools do, without the protocol: forecast, evaluate and list models.

Each tool is a thin adapter over what the service and `kronos evaluate` already do: bars and
forecast options are checked by the service's request checks and caps (`kronos.serve.inputs`,
`kronos.serve.schemas.Limits`), a forecast is `KronosPredictor.sample` of the last lookback bars
summarised by the service's `summarize` (so with a seed it is `predict_quantiles`' numbers), and an
evaluation is `kronos.evaluation.evaluate` with the command's defaults. Files are read only from
under the root the server was given. Every refusal is a `ToolInputError` naming the argument.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from kronos.engine.sampling import PATHS
from kronos.evaluation.backtest import Backtest, OriginBatch, OriginForecast, evaluate
from kronos.evaluation.data import read_series
from kronos.evaluation.report import verdicts
from kronos.forecasting.calibration import PastOrigins
from kronos.forecasting.paths import DEFAULT_QUANTILE_LEVELS
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.pretrained import DEFAULT_MODEL, offline_models
from kronos.forecasting.series import MAX_PRED_LEN, Series
from kronos.forecasting.tables import series_name
from kronos.serve import inputs
from kronos.serve.schemas import Bar, ForecastOptions, Limits

EVALUATE_ORIGINS = 100  # origins per series when none are asked for, as `kronos evaluate`
BOOTSTRAP = 1000  # resamples of the summary's intervals, as `kronos evaluate`

Progress = Callable[[float, float | None, str], None]
"""`progress(done, total, message)`, called as the work advances; raising from it stops the work."""


class ToolInputError(ValueError):
    """Arguments a tool refuses: the message names the argument and what to do."""


@dataclass(frozen=True)
class ToolSettings:
    """Where the tools may read files (`root`, resolved) and the caps on one call (the service's)."""

    root: Path
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def at(cls, root: str | Path, limits: Limits | None = None) -> ToolSettings:
        directory = Path(root).expanduser().resolve()
        if not directory.is_dir():
            raise ValueError(f"the root {str(root)!r} is not a folder: give the folder the tools may read")
        return cls(directory, limits or Limits())


def no_progress(done: float, total: float | None, message: str) -> None:
    """The `Progress` of a caller that does not watch."""


class Toolbox:
    """The tools over one loaded predictor (`model_name`), and the other offline models, loaded on
    first use. Threads may call it at once: a predictor holds no per-call state."""

    def __init__(
        self,
        predictor: KronosPredictor,
        settings: ToolSettings,
        model_name: str = DEFAULT_MODEL,
        load: Callable[[str], KronosPredictor] = KronosPredictor.from_pretrained,
    ):
        self.settings, self.model_name, self._load = settings, model_name, load
        self._predictors = {model_name: predictor}
        self._loading = threading.Lock()

    # --- the tools ---------------------------------------------------------------------------------

    def models(self) -> dict[str, Any]:
        """The models the tools may use (the served one first), with their metadata, and the caps."""
        served = self._predictors[self.model_name]
        rows = [_model_row(self.model_name, "served", served.max_context, served.lookback, served.metadata)]
        rows += [
            _model_row(one.name, one.source, one.metadata.max_context, one.metadata.lookback, one.metadata)
            for one in offline_models()
            if one.name != self.model_name
        ]
        return {"models": rows, "limits": self.settings.limits.as_dict(), "root": str(self.settings.root)}

    def forecast(
        self,
        bars: list[Bar] | None = None,
        file: str | None = None,
        steps: int = 20,
        paths: int = PATHS,
        quantile_levels: list[float] | None = None,
        seed: int | None = 0,
        calibrate: bool = False,
        model: str | None = None,
        progress: Progress = no_progress,
    ) -> dict[str, Any]:
        """The service's answer for one series (`/v1/forecast`), from inline bars or a file."""
        predictor, name = self._predictor(model)
        options = _options(steps, paths, quantile_levels, seed, calibrate)
        levels = _checked(inputs.check_options, options, self.settings.limits)
        series, key = self._series(bars, file)
        job = _checked(inputs.plan, [(series, key, series.name)], options, predictor.lookback)
        _checked(inputs.check_past_forecasts, job, self.settings.limits)
        series = job.series[0]  # keyed
        history = series.window(max(0, len(series) - predictor.lookback), len(series))
        phases, sampling = _Phases(progress, steps), job.sampling(predictor)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            calibration = None
            if calibrate:
                calibration = predictor.fit_calibration(
                    series, steps, sampling, PastOrigins(predictor.lookback), on_step=phases.calibrating
                )
            forecast = predictor.sample(
                history,
                steps,
                sampling,
                calibration,
                future=job.futures[0].timestamps,
                on_step=phases.forecasting,
            )
            answer = _checked(inputs.summarize, forecast, history, job.futures[0], levels, options)
        return {
            "model": name,
            "series": series.name,
            "steps": steps,
            "paths_sampled": paths,
            "seed": seed,
            **answer,
            "warnings": [str(w.message) for w in caught],
        }

    def evaluate(
        self,
        file: str,
        steps: int,
        origins: int | None = None,
        paths: int = PATHS,
        seed: int = 0,
        calibrate: bool = False,
        model: str | None = None,
        progress: Progress = no_progress,
    ) -> dict[str, Any]:
        """`kronos evaluate FILE --steps S --origins N` without the report files: the summary table
        (close; summary.csv's numbers) and the report's verdict."""
        predictor, name = self._predictor(model)
        limits = self.settings.limits
        _positive(steps=steps, origins=origins, paths=paths)
        _capped("steps", steps, limits.max_steps, "--max-steps")
        _capped("paths", paths, limits.max_paths, "--max-paths")
        _capped("origins", origins or EVALUATE_ORIGINS, limits.max_past_forecasts, "--max-past-forecasts")
        path = self._file(file)
        series = read_series([str(path)])
        self._check_series(series)
        backtest = Backtest(
            steps=steps,
            origins=origins or EVALUATE_ORIGINS,
            sampling=predictor.sampling_with(sample_count=paths, seed=seed),
            calibrate=calibrate,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = evaluate(
                series, predictor, backtest, engine=_watched_engine(predictor, progress), progress=False
            )
            summary = result.summary("close", n_boot=BOOTSTRAP)
        return {
            "model": name,
            "file": str(path.relative_to(self.settings.root)),
            "settings": {k: v for k, v in result.settings.items() if k != "notes"},
            "summary": _table(summary),
            "verdict": verdicts(result, summary),
            "notes": result.settings.get("notes", []),
            "skipped": result.skipped,
            "warnings": [str(w.message) for w in caught],
        }

    # --- arguments ---------------------------------------------------------------------------------

    def _predictor(self, model: str | None) -> tuple[KronosPredictor, str]:
        """The predictor of `model` (default: the served one); another offline model loads on first use."""
        name = self.model_name if model is None else model
        if name in self._predictors:
            return self._predictors[name], name
        known = [self.model_name] + [one.name for one in offline_models() if one.name != self.model_name]
        if name not in known:
            raise ToolInputError(
                f"model {name!r} is not available here: choose one of {known} (the models tool)"
            )
        with self._loading:
            if name not in self._predictors:
                self._predictors[name] = self._load(name)
        return self._predictors[name], name

    def _series(self, bars: list[Bar] | None, file: str | None) -> tuple[Series, object]:
        """The series to forecast: inline bars (keyed 0, as /v1/forecast) or a file under the root
        (keyed by its name, as `kronos forecast FILE`)."""
        if (bars is None) == (file is None):
            raise ToolInputError(
                "give the history either as bars (a list of bars) or as file (a path), not both"
            )
        limits = self.settings.limits
        if bars is not None:
            return _checked(inputs.series_from_bars, bars, "bars", limits), 0
        path = self._file(file)
        return _checked(inputs.series_from_csv, path.read_bytes(), path.name, limits), series_name(path)

    def _file(self, file: str | None) -> Path:
        """The file `file` names (relative to the root, or absolute), resolved, symlinks included:
        refused unless it is a file under the root and within the size cap."""
        root, cap = self.settings.root, self.settings.limits.max_body_bytes
        if not isinstance(file, str) or not file.strip():
            raise ToolInputError("file must name a data file under the root, e.g. 'prices.csv'")
        path = (root / Path(file).expanduser()).resolve()
        if not path.is_relative_to(root):
            raise ToolInputError(
                f"file {file!r} is outside the folder this server may read ({root}; kronos mcp --root)"
            )
        if not path.exists():
            raise ToolInputError(f"data file {file!r} does not exist (paths are relative to {root})")
        if not path.is_file():
            raise ToolInputError(f"file {file!r} is not a file: give one CSV or Parquet file")
        if path.stat().st_size > cap:
            raise ToolInputError(
                f"file {file!r} has {path.stat().st_size:,} bytes, over this server's cap of {cap:,} (--max-body-mb)"
            )
        return path

    def _check_series(self, series: dict[str, Series]) -> None:
        limits = self.settings.limits
        _capped("series in file", len(series), limits.max_series, "--max-series")
        for one in series.values():
            _capped(f"bars of {one.name}", len(one), limits.max_bars, "--max-bars")


def _model_row(name: str, source: str, context: int, lookback: int, metadata: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": source,
        "max_context": context,
        "lookback": lookback,
        "frequencies": list(metadata.frequencies),
        "metadata": metadata.to_dict(),
    }


def _options(
    steps: int, paths: int, levels: list[float] | None, seed: int | None, calibrate: bool
) -> ForecastOptions:
    """The forecast options, each range checked with the command's words, then as the service checks them."""
    _positive(steps=steps, paths=paths)
    if steps > MAX_PRED_LEN:
        raise ToolInputError(f"steps must be at most {MAX_PRED_LEN:,}, got {steps:,}")
    values: dict[str, Any] = {"steps": steps, "paths": paths, "seed": seed, "calibrate": calibrate}
    values["quantile_levels"] = list(DEFAULT_QUANTILE_LEVELS) if levels is None else levels
    try:
        return ForecastOptions.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ToolInputError(f"{where}: {first['msg']}") from err


def _positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value <= 0:
            raise ToolInputError(f"{name} must be a positive number, got {value}")


def _capped(what: str, value: int, cap: int, flag: str) -> None:
    if value > cap:
        raise ToolInputError(f"{what} is {value}, over this server's cap of {cap} ({flag})")


def _checked(check: Callable[..., Any], *args: Any) -> Any:
    """`check(*args)`, with the service's refusals (and the library's) as a ToolInputError."""
    try:
        return check(*args)
    except inputs.InputError as err:
        raise ToolInputError(err.message) from err
    except inputs.LIBRARY_ERRORS as err:
        raise ToolInputError(str(err)) from err


class _Phases:
    """A forecast's progress in generation steps, over its calibration (when asked for) and then
    the forecast itself: never decreasing, as MCP progress must."""

    def __init__(self, progress: Progress, steps: int):
        self.progress, self.steps, self.calibration_steps = progress, steps, 0

    def calibrating(self, done: int, total: int) -> None:
        self.calibration_steps = total
        self.progress(done, total + self.steps, f"calibrating on past forecasts: step {done} of {total}")

    def forecasting(self, done: int, total: int) -> None:
        before = self.calibration_steps
        self.progress(before + done, before + total, f"forecasting: step {done} of {total}")


def _watched_engine(predictor: KronosPredictor, progress: Progress) -> Callable[..., Iterator[np.ndarray]]:
    """`evaluate`'s local engine, reporting the origins forecast after each batch (`progress`
    may stop it there)."""

    def run(forecast: OriginForecast, batches: Iterator[OriginBatch]) -> Iterator[np.ndarray]:
        done = 0
        for batch in batches:
            paths = forecast(predictor, batch)
            done += len(batch.windows)
            progress(done, None, f"forecast {done} origins")
            yield paths

    return run


def _table(summary: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The summary as method -> column -> value (NaN as null)."""
    return {str(method): {str(k): _plain(v) for k, v in row.items()} for method, row in summary.iterrows()}


def _plain(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
