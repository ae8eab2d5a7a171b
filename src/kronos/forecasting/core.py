"""The public forecasting core: `sample` and `fit_calibration`, the one path of every forecast.

`ForecastingCore.sample` prepares each series' history (normalised on its own bars), generates
token paths with the engine, maps them back to prices and calibrates them, for one series or many
(grouped by history length, in memory-bounded calls). `fit_calibration` fits a calibration on a
series' own past through `sample`. `KronosPredictor` (kronos.forecasting.predictor) adds the
pandas adapters and upstream's methods on top.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from kronos.engine.generation import WINDOWS as WINDOWS  # the choices of `window`, for front ends
from kronos.engine.generation import (
    SeriesBatch,
    check_window,
    decode_history_end,
    decode_tokens,
    generate_tokens,
)
from kronos.engine.sampling import Sampling
from kronos.engine.threads import AdaptiveThreads
from kronos.forecasting.actions import SplitWarning, jumps_note
from kronos.forecasting.calibration import (
    MIN_ORIGINS,
    PAST_ORIGINS,
    Calibration,
    PastOrigins,
    fit_origins,
    fit_past_forecasts,
    history_volatility,
    required_rows,
)
from kronos.forecasting.paths import (
    DEFAULT_QUANTILE_LEVELS,
    VolatilityWarning,
    check_quantile_levels,
    path_statistics,
)
from kronos.forecasting.schedules import future_timestamps
from kronos.forecasting.series import (
    CLOSE,
    FEATURE_COLUMNS,
    FLOAT32,
    Series,
    check_future,
    check_pred_len,
    checked_flag,
    checked_instance,
    denormalize,
    normalize,
    positive_int,
    time_features,
)
from kronos.nn.metadata import MAX_CONTEXT as MAX_CONTEXT  # the largest context, for front ends
from kronos.nn.metadata import ModelMetadata, SamplingDefaults
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer

NORMALIZE_ON = ("history", "context")
VOLUME = FEATURE_COLUMNS.index("volume")  # volume, then amount: the columns that cannot be negative
RUN_SEED = 0  # the seed of seeded runs (calibrations, backtests, datasets) unless told otherwise

# Caps on the work one call may ask for; each refusal names its cap and why (docs/reliability.md).
MAX_HISTORY = (
    20_000  # bars tokenized per series: the tokenizer attends over all, time grows with their square
)
MAX_PATH_VALUES = 2**28  # series x paths x steps x 6 values a call returns: 1 GiB in float32
GENERATION_MEMORY = 4 * 2**30  # bytes a generation call may take (estimated); larger batches are split
SMALL_MODEL_PARAMETERS = 5_000_000  # below this, generation on CPU is fastest on one thread
SUMMARY_SERIES = 256  # series summarised at a time: path_statistics copies its paths a few times
ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)
StepCallback = Callable[[int, int], None]
"""`on_step(done, total)`: generation steps done and to do in one `sample` call; raising stops it."""
_TORCH_THREADS = torch.get_num_threads()  # torch's thread count when kronos was imported
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, checked; or cuda, then mps, then cpu."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' or 'mps'") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for but CUDA is not available here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but MPS is not available here")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {str(device)!r}: use 'cpu', 'cuda', 'cuda:N' or 'mps'")
    return device


@dataclass(frozen=True)
class _History:
    """One series as generation takes it: its normalised history with the statistics that map
    forecasts back, the time features of history and future, and the key its draws come from."""

    x: np.ndarray  # [L, 6] normalised and clipped, float32
    x_stamp: np.ndarray  # [L, 5]
    y_stamp: np.ndarray  # [pred_len, 5]
    mean: np.ndarray
    std: np.ndarray
    last_close: float  # as the model sees it (float32)
    volatility: float  # per-bar volatility of the history's closes (kronos.forecasting.calibration)
    key: object
    name: str

    def to_prices(
        self, normalised: np.ndarray, calibration: Calibration | None = None, center: bool = False
    ) -> np.ndarray:
        """Normalised paths [paths, steps, 6] in price units, calibrated when given one, else
        centered with `center` (`center_paths`); an error naming the column where float32 overflows."""
        prices = denormalize(normalised, self.mean, self.std)
        finite = np.isfinite(prices).reshape(-1, prices.shape[-1]).all(axis=0)
        if not finite.all():
            j = int(np.argmin(finite))
            raise ValueError(
                f"the forecast of {self.name} column {FEATURE_COLUMNS[j]!r} overflows float32 (its history has "
                f"mean {self.mean[j]:.3g} and standard deviation {self.std[j]:.3g}): rescale the column"
            )
        if calibration is not None:
            return calibration.apply(prices, self.last_close, self.volatility)
        return center_paths(prices, self.last_close) if center else prices


def anchor_paths(paths: np.ndarray, group: list[_History], ends: np.ndarray) -> None:
    """Moves, in place, the open, high, low and close of normalised paths [k, N, L, 6] by the gap,
    in price units, between each series' last close and `ends` [k, 6], the tokenizer's
    reconstruction of its last bar (`decode_history_end`).

    A path's level is the tokens' level, and the tokenizer rounds the last bar towards the middle
    of its history's range: more the further the bar lies from it, which reads as a pull back
    towards the history's mean (docs/calibration.md, "Anchoring"). Moved by the rounding, a path
    starts from the close the series ended on; its shape, and volume and amount, are unchanged.
    """
    last = np.array([h.x[-1, CLOSE] for h in group], dtype=np.float32)
    scale = np.stack([h.std[: CLOSE + 1] for h in group]).astype(np.float32) + np.float32(1e-5)
    gap = (last - ends[:, CLOSE]) * scale[:, CLOSE]  # price units
    paths[..., : CLOSE + 1] += (gap[:, None] / scale)[:, None, None, :]


def center_paths(paths: np.ndarray, last_close: float) -> np.ndarray:
    """Price paths [paths, steps, 6] whose median close is the last close at every step: the open,
    high, low and close of all paths at step h scaled by last_close / (their median close at h),
    shifted by the difference instead where either is not positive. Each bar stays consistent
    and keeps its place among the paths; volume and amount are unchanged.

    On series a model never saw, its median move may be noise (a drift that is not there, which
    costs CRPS and skews P(up)); centered, its raw forecasts keep its spread and shape about a flat
    median, as the random walks do (docs/calibration.md, "Centering"). A calibration fits its own
    center instead.
    """
    median = np.median(paths[..., CLOSE].astype(np.float64), axis=0)  # [steps]
    out = paths.copy()
    if last_close > 0 and (median > 0).all():
        out[..., : CLOSE + 1] *= (last_close / median).astype(paths.dtype)[:, None]
    else:
        out[..., : CLOSE + 1] += (last_close - median).astype(paths.dtype)[:, None]
    return out


def model_bars(series: Series) -> np.ndarray:
    """A series' bars as the model takes them: float32, column-major (numpy's float32 mean then sums
    each column pairwise, the order every forecast of the package normalises in)."""
    return np.asfortranarray(series.bars, dtype=np.float32)


@dataclass(frozen=True)
class Forecast:
    """What `KronosPredictor.sample` gives: every sampled path of every series, in price units.

    paths: [S, N, H, 6] float32, columns FEATURE_COLUMNS, calibrated where a calibration was
    given; future: each series' H timestamps; keys and names: each series' key and name;
    last_close: [S], the close (as the model saw it) each path starts from; calibrations: each
    series' calibration or None.
    """

    paths: np.ndarray
    future: list[pd.DatetimeIndex]
    keys: list[object]
    last_close: np.ndarray
    calibrations: list[Calibration | None]
    names: list[str]

    def summary(
        self, quantile_levels: Sequence[float] = DEFAULT_QUANTILE_LEVELS, repair_ohlc: bool = True
    ) -> dict[str, np.ndarray]:
        """`kronos.forecasting.paths.path_statistics` of every series: column name -> [S, H].

        Refuses a series whose last close is not positive (realised volatility and P(up) are
        measured from it in log returns); warns (VolatilityWarning) where no path has a positive close.
        """
        levels = check_quantile_levels(quantile_levels)
        for name, close in zip(self.names, self.last_close):
            if not close > 0:
                raise ValueError(
                    f"the last close of {name} is {close:g}: realised volatility is measured in log returns "
                    "from the last close, which need a positive price; predict_paths gives the raw paths"
                )
        columns: dict[str, np.ndarray] = {}
        count, steps = self.paths.shape[0], self.paths.shape[2]
        for start in range(0, count, SUMMARY_SERIES):
            part = slice(start, start + SUMMARY_SERIES)
            stats = path_statistics(self.paths[part], self.last_close[part], levels, repair_ohlc)
            for key, value in stats.items():
                columns.setdefault(key, np.empty((count, steps)))[part] = value
        self._warn_undefined_volatility(columns["realized_vol"])
        return columns

    def subset(self, start: int, stop: int) -> Forecast:
        """The forecast of series [start, stop)."""
        part = slice(start, stop)
        return Forecast(
            self.paths[part],
            self.future[part],
            self.keys[part],
            self.last_close[part],
            self.calibrations[part],
            self.names[part],
        )

    def _warn_undefined_volatility(self, volatility: np.ndarray) -> None:
        """Name the first series and step where no sampled path has a positive close (realized_vol NaN)."""
        undefined = np.isnan(volatility)
        if undefined.any():
            series, step = (int(i[0]) for i in np.nonzero(undefined))
            warnings.warn(
                f"realized_vol is NaN at {int(undefined.sum())} steps: from step {step + 1} of "
                f"{self.names[series]}, no sampled path has a positive close (log returns need one)",
                VolatilityWarning,
                stacklevel=_caller_stacklevel(),
            )


class ContextWarning(UserWarning):
    """A history is longer than the model's context."""


class ShortHistoryWarning(ContextWarning):
    """A history is shorter than the bars the model was trained with (its lookback)."""


class ForecastingCore:
    """A model and tokenizer ready to forecast, and the core's two methods (see `KronosPredictor`
    for the constructor's arguments)."""

    def __init__(
        self,
        model: Kronos,
        tokenizer: KronosTokenizer,
        device: str | torch.device | None = None,
        max_context: int | None = None,
        clip: float = 5,
        dtype: torch.dtype | str | None = None,
        normalize_on: str = "history",
        num_threads: int | None = None,
        memory_budget: int = GENERATION_MEMORY,
        window: str = "exact",
        anchor: bool | None = None,
        center: bool | None = None,
    ):
        checked_instance(model, Kronos, "model", "Kronos.from_pretrained('NeoQuasar/Kronos-small')")
        checked_instance(
            tokenizer,
            KronosTokenizer,
            "tokenizer",
            "KronosTokenizer.from_pretrained('NeoQuasar/Kronos-Tokenizer-base')",
        )
        self.metadata = model.metadata or ModelMetadata()
        self._default_sampling = _model_sampling(self.metadata.sampling)
        self.anchor = self.metadata.anchor if anchor is None else checked_flag(anchor, "anchor")
        self.center = self.metadata.center if center is None else checked_flag(center, "center")
        self.max_context = _context(max_context, model.metadata)
        if normalize_on not in NORMALIZE_ON:
            raise ValueError(f"normalize_on must be one of {NORMALIZE_ON}, got {normalize_on!r}")
        self.normalize_on = normalize_on
        if isinstance(clip, bool) or not isinstance(clip, (int, float, np.number)) or not 0 < clip < math.inf:
            raise ValueError(
                f"clip must be a positive finite number (normalised bars are clipped to ±clip), got {clip!r}"
            )
        self.clip = float(clip)
        self.num_threads = None if num_threads is None else positive_int(num_threads, "num_threads")
        self.memory_budget = positive_int(memory_budget, "memory_budget")
        self.device = pick_device(device)
        self.dtype = as_dtype(dtype)
        if self.dtype == torch.bfloat16 and self.device.type == "cpu" and not cpu_has_bf16_kernels():
            warnings.warn(
                "this CPU has no bfloat16 matrix instructions (oneDNN reports none): bfloat16 runs in "
                "PyTorch's generic kernels, slower than float32 (docs/performance.md)",
                stacklevel=_caller_stacklevel(),
            )
        check_window(window)
        self.window = window
        # the caller's modules stay as they are: a copy is moved or cast only where needed
        self.model = _placed(model, self.device, self.dtype)
        self.tokenizer = _placed(tokenizer, self.device, self.dtype)
        self.n_parameters = model.config.parameter_count
        self._adaptive_threads: dict[int, AdaptiveThreads] = {}  # per machine count, learnt across calls

    @property
    def lookback(self) -> int:
        """Bars of history a forecast should give the model: the history it was trained with
        (its metadata; its context without any), within this predictor's context."""
        return min(self.metadata.lookback, self.max_context)

    @property
    def default_sampling(self) -> Sampling:
        """How this model samples where no sampling is given: the temperature and top_p of its
        kronos.json ("sampling"), else the package's (T 1, top_p 0.9); 20 paths, no seed."""
        return self._default_sampling

    def sampling_with(
        self,
        *,
        T: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        sample_count: int | None = None,
        seed: int | None = None,
    ) -> Sampling:
        """`default_sampling` with the settings given here in its place, those left None kept: the
        one way to say "the model's sampling, but ..." (`sampling_with(sample_count=50, seed=3)`)
        and how the front ends turn a user's optional settings into a Sampling."""
        given: dict[str, Any] = dict(T=T, top_k=top_k, top_p=top_p, sample_count=sample_count, seed=seed)
        return replace(self.default_sampling, **{k: v for k, v in given.items() if v is not None})

    def _sampling(self, sampling: Sampling | None) -> Sampling:
        """`sampling` checked, or the model's `default_sampling` for None."""
        return self.default_sampling if sampling is None else checked_sampling(sampling)

    def sample(
        self,
        series: Series | Sequence[Series],
        horizon: int,
        sampling: Sampling | None = None,
        calibration: Calibration | Sequence[Calibration | None] | None = None,
        *,
        future: pd.DatetimeIndex | Sequence[pd.DatetimeIndex] | None = None,
        batch_size: int | None = None,
        progress: bool = False,
        on_step: StepCallback | None = None,
        center: bool | None = None,
    ) -> Forecast:
        """Sample `sampling.sample_count` paths of `horizon` bars for each series: every forecast of
        the package comes from here. `sampling` None: the model's `default_sampling`.

        Each series is normalised on its bars as given (all of them; with normalize_on="context"
        the last `max_context`), generated from, and its paths mapped back to prices and calibrated
        by its calibration (one per series, or one for a lone series; fitted by `fit_calibration`
        with the same sampling). `future` gives each series' future timestamps (default: inferred
        from its own, `kronos.forecasting.schedules.future_timestamps`). Series are generated in
        groups of one history length, at most `batch_size` at a time and as many as fit in the
        memory budget. With `sampling.seed`, series i draws from (seed, series[i].key) alone, so its
        paths do not depend on the rest of the batch; without one, from torch's global generator.
        `on_step(done, total)` is called after each generation step (`StepCallback`). `center`:
        whether series without a calibration get `center_paths` (None: the predictor's `center`).
        """
        center = self.center if center is None else checked_flag(center, "center")
        group = _series_list(series)
        horizon = check_pred_len(horizon, "horizon")
        sampling = self._sampling(sampling)
        futures = _futures(group, horizon, future)
        calibrations = _calibrations(calibration, len(group), sampling, horizon)
        histories = self._histories(group, futures)
        self._warn_short(group)
        note = jumps_note(group)
        if note is not None:
            warnings.warn(note, SplitWarning, stacklevel=_caller_stacklevel())
        paths = self._price_paths(
            histories, horizon, sampling, progress, _batch_size(batch_size), calibrations, center, on_step
        )
        last_close = np.array([one.last_close for one in histories])
        return Forecast(
            paths, futures, [one.key for one in group], last_close, calibrations, [s.name for s in group]
        )

    def fit_calibration(
        self,
        series: Series,
        horizon: int,
        sampling: Sampling | None = None,
        past: PastOrigins = PAST_ORIGINS,
        *,
        batch_size: int = 32,
        progress: bool = False,
        on_step: StepCallback | None = None,
    ) -> Calibration:
        """A `Calibration` of `horizon`-step forecasts, fitted on the series' own past.

        Forecasts the series from within, with `sample`, at the origins `past` chooses
        (`kronos.forecasting.calibration.PastOrigins`: each from the lookback bars before it, the
        model's by default), and compares them with the bars that followed. Past origin t draws
        from (seed, series.key, t). Needs `kronos.forecasting.calibration.required_rows` bars (20
        past forecasts) and raises ValueError otherwise. The one place calibrations are fitted.
        `sampling` None: the model's `default_sampling` seeded with RUN_SEED, so that a
        forecast with the model's defaults takes the calibration.
        """
        sampling = self.sampling_with(seed=RUN_SEED) if sampling is None else checked_sampling(sampling)
        if not isinstance(series, Series):
            raise TypeError(f"series must be a kronos.forecasting.series.Series, got {type(series).__name__}")
        horizon = positive_int(horizon, "horizon")
        past = checked_instance(past, PastOrigins, "past", "PastOrigins(lookback=64)")
        lookback = self.lookback if past.lookback is None else past.lookback
        origins = fit_origins(len(series), lookback, horizon, past.every, past.max_origins)
        if len(origins) < MIN_ORIGINS:
            needed = required_rows(lookback, horizon, past.every)
            raise ValueError(
                f"calibrating {horizon}-step forecasts from {lookback} bars of history needs at least {needed} "
                f"bars ({MIN_ORIGINS} past forecasts and their outcomes); {series.name} has {len(series)}"
            )
        windows = [series.window(t - lookback, t, (series.key, int(t))) for t in origins]
        futures = [series.timestamps[t : t + horizon] for t in origins]
        forecast = self.sample(
            windows,
            horizon,
            sampling,
            future=futures,
            batch_size=batch_size,
            progress=progress,
            on_step=on_step,
            center=False,  # a calibration fits its own center on the model's paths
        )
        return fit_past_forecasts(forecast.paths, series.bars, origins, lookback, sampling)

    def _histories(self, group: list[Series], futures: list[pd.DatetimeIndex]) -> list[_History]:
        # time features of every series in one call each: per-series calls cost ~2 ms apiece
        history_features = _time_features_of([one.timestamps for one in group])
        future_features = _time_features_of(futures)
        return [
            self._history(model_bars(one), history_features[k], future_features[k], one.key, one.name)
            for k, one in enumerate(group)
        ]

    def _history(
        self, bars: np.ndarray, x_stamp: np.ndarray, y_stamp: np.ndarray, key: object, name: str
    ) -> _History:
        """A series from float32 bars [L, 6] and time features.

        Refuses a history shorter than 2 bars or longer than MAX_HISTORY (what reaches the
        tokenizer), and columns whose normalisation statistics, or the forecasts they map back to,
        do not fit float32.
        """
        if len(bars) < 2:
            raise ValueError(f"{name} needs at least 2 rows of history, got {len(bars)}")
        last_close, volatility = float(bars[-1, CLOSE]), float(history_volatility(bars[:, CLOSE]))
        if self.normalize_on == "context" and len(bars) > self.max_context:
            bars, x_stamp = bars[-self.max_context :], x_stamp[-self.max_context :]
        if len(bars) > MAX_HISTORY:
            raise ValueError(
                f"{name} has {len(bars):,} bars of history, more than the {MAX_HISTORY:,} the tokenizer takes: it "
                f"attends over the whole history, in time that grows with its square. Give the last bars (the "
                f"model sees the last {self.max_context}) or pass normalize_on='context'"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            x, mean, std = normalize(bars, self.clip)
            # the largest forecast the decoder could give, mapped back: it must fit float32 too
            reach = np.abs(mean) + 2 * self.clip * (std + 1e-5)
        fits = np.isfinite(mean) & np.isfinite(std) & (reach <= FLOAT32.max)
        if not fits.all():
            j = int(np.argmin(fits))
            largest = int(np.argmax(np.abs(bars[:, j])))
            raise ValueError(
                f"{name} column {FEATURE_COLUMNS[j]!r}: its mean and standard deviation over the history do not "
                f"fit float32, in which the model computes (largest value {bars[largest, j]:.3g}, bar "
                f"{largest + 1} of {len(bars)}); rescale the column (e.g. volume in thousands or millions)"
            )
        return _History(x, x_stamp, y_stamp, mean, std, last_close, volatility, key, name)

    def _price_paths(
        self,
        histories: list[_History],
        pred_len: int,
        sampling: Sampling,
        verbose: bool,
        batch_size: int | None,
        calibrations: list[Calibration | None],
        center: bool,
        on_step: StepCallback | None = None,
    ) -> np.ndarray:
        """Every path in price units, [S, sample_count, pred_len, 6]; series i calibrated by
        calibrations[i] (None: as sampled, centered with `center`); volume and amount at 0 or above."""
        values = len(histories) * sampling.sample_count * pred_len * len(FEATURE_COLUMNS)
        if values > MAX_PATH_VALUES:
            raise ValueError(
                f"{len(histories):,} series x {sampling.sample_count:,} paths x {pred_len:,} steps x 6 columns is "
                f"{values:,} values, more than the {MAX_PATH_VALUES:,} (1 GiB) one call returns: ask for fewer "
                "series, paths or steps at once, or summarise them with predict_df"
            )
        out = np.empty((len(histories), sampling.sample_count, pred_len, 6), dtype=np.float32)
        for chunk, paths in self._sample(histories, pred_len, sampling, verbose, batch_size, on_step):
            for i, one in zip(chunk, paths):
                out[i] = histories[i].to_prices(one, calibrations[i], center)
                # volume and amount are never negative, and a series without them (all zero) has none ahead;
                # upstream's `predict` (_mean_prices) keeps its numbers, negative volumes included
                none = (histories[i].mean[VOLUME:] == 0) & (histories[i].std[VOLUME:] == 0)
                out[i, ..., VOLUME:] = np.where(none, 0.0, np.maximum(out[i, ..., VOLUME:], 0.0))
        return out

    def _mean_prices(
        self,
        series: list[Series],
        futures: list[pd.DatetimeIndex],
        pred_len: int,
        sampling: Sampling,
        verbose: bool,
    ) -> list[np.ndarray]:
        """Upstream's forecast of each series [pred_len, 6]: the mean path, averaged before mapping
        back to prices."""
        histories = self._histories(series, futures)
        means: list[np.ndarray] = [np.empty(0)] * len(histories)
        for chunk, paths in self._sample(histories, pred_len, sampling, verbose):
            for i, mean in zip(chunk, paths.mean(axis=1)):
                means[i] = histories[i].to_prices(mean)
        return means

    def _sample(
        self,
        histories: list[_History],
        pred_len: int,
        sampling: Sampling,
        verbose: bool = False,
        batch_size: int | None = None,
        on_step: StepCallback | None = None,
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """Normalised forecast paths, per generation call: (indices into `histories`, [k,
        sample_count, pred_len, 6]); `on_step` counts the steps of every call."""
        self._warn_beyond_context(histories)
        chunks = self._chunks(histories, pred_len, sampling.sample_count, batch_size)
        with tqdm(
            total=len(histories), desc="forecasts", unit="forecast", disable=not verbose or len(chunks) == 1
        ) as bar:
            for k, chunk in enumerate(chunks):
                watch = None if on_step is None else _counted(on_step, k * pred_len, len(chunks) * pred_len)
                paths = self._generate(
                    [histories[i] for i in chunk], sampling, verbose and len(chunks) == 1, watch
                )
                bar.update(len(chunk))
                yield chunk, paths[:, :, -pred_len:]

    def _generate(
        self,
        group: list[_History],
        sampling: Sampling,
        verbose: bool,
        on_step: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """The engine, called here alone: decoded normalised paths [k, sample_count, >= pred_len, 6]
        of series of one history length."""
        with self._generation_threads() as threads:
            batch = SeriesBatch(
                self._tensor([h.x for h in group]),
                self._tensor([h.x_stamp for h in group]),
                self._tensor([h.y_stamp for h in group]),
                keys=[h.key for h in group],
            )
            tokens = generate_tokens(
                self.tokenizer, self.model, batch, sampling, self.max_context, self.clip,
                verbose=verbose, window=self.window, on_step=on_step, threads=threads,
            )  # fmt: skip
            if threads is not None:  # decode on the count the load leaves (or generation settled on)
                torch.set_num_threads(threads.pass_count())
            paths = np.asarray(decode_tokens(self.tokenizer, tokens, self.max_context).float().cpu().numpy())
            if self.anchor:
                ends = decode_history_end(self.tokenizer, tokens, self.max_context).float().cpu().numpy()
                anchor_paths(paths, group, ends)  # in place: the paths may be up to a GiB
        return paths

    def _tensor(self, arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32)).to(self.device)

    def _warn_short(self, group: list[Series]) -> None:
        """Say which histories are shorter than the model's lookback (series of one name, the windows
        of one series, once)."""
        short = {one.name: len(one) for one in group if len(one) < self.lookback}
        if short:
            shortest = min(short, key=lambda name: short[name])
            others = f" and {len(short) - 1} more series" if len(short) > 1 else ""
            warnings.warn(
                f"{shortest}{others}: {short[shortest]} bars of history, fewer than the {self.lookback} the model "
                f"was trained with (its lookback): it forecasts from less than it expects, and its bands are less "
                f"reliable; give {self.lookback} bars or more",
                ShortHistoryWarning,
                stacklevel=_caller_stacklevel(),
            )

    def _warn_beyond_context(self, histories: list[_History]) -> None:
        longest = max(len(h.x) for h in histories)
        if longest > self.max_context:
            warnings.warn(
                f"history of {longest} bars is longer than the model's context of {self.max_context}: the model "
                f"attends to the last {self.max_context} tokens only, while all {longest} bars set the "
                f"normalisation (mean and std) and pass through the tokenizer. To use only the bars the model "
                f"sees, pass normalize_on='context' (kronos --normalize context) or a shorter history.",
                ContextWarning,
                stacklevel=_caller_stacklevel(),
            )

    def _chunks(
        self, histories: list[_History], pred_len: int, sample_count: int, batch_size: int | None
    ) -> list[list[int]]:
        """Indices into `histories` per generation call: one history length per call (generation
        needs one), at most `batch_size` series and as many as fit in the memory budget."""
        by_length: dict[int, list[int]] = {}
        for i, one in enumerate(histories):
            by_length.setdefault(len(one.x), []).append(i)
        chunks: list[list[int]] = []
        for length, members in by_length.items():
            need = self.generation_bytes(length, pred_len, sample_count)
            if need > self.memory_budget:
                raise ValueError(
                    f"one series with {sample_count:,} paths, {length:,} bars of history and {pred_len:,} steps "
                    f"needs about {need / 2**30:.1f} GiB to generate, more than the predictor's memory_budget of "
                    f"{self.memory_budget / 2**30:.1f} GiB: use fewer paths (sample_count) or steps, or raise "
                    "memory_budget"
                )
            size = min(batch_size or len(members), self.memory_budget // need)
            chunks += [members[start : start + size] for start in range(0, len(members), size)]
        return chunks

    def generation_bytes(self, history: int, pred_len: int, sample_count: int) -> int:
        """Estimated memory to generate one series' paths: keys and values of every layer for its
        history (shared by its paths) and each path's tokens, a whole window per path once the
        window slides; about twice that, as measured, for the step's other tensors."""
        per_path = self.max_context if history + pred_len > self.max_context else pred_len
        tokens = min(history, self.max_context) + sample_count * per_path
        layers = len(self.model.transformer) + 1  # and the dependency-aware layer
        itemsize = torch.finfo(self.dtype).bits // 8
        return 2 * tokens * self.model.d_model * layers * 2 * itemsize

    @contextmanager
    def _generation_threads(self) -> Iterator[AdaptiveThreads | None]:
        """torch's CPU thread count for a generation call (`num_threads` in the class docstring):
        a count the user chose, one for a small model, else the predictor's `AdaptiveThreads` from
        torch's count (yielded, for the engine to choose step by step; what it learnt of the
        machine's load carries over to the next call); restored afterwards."""
        wanted = self.num_threads
        chosen = (
            any(os.environ.get(v) for v in _THREAD_VARIABLES) or torch.get_num_threads() != _TORCH_THREADS
        )
        if wanted is None and self.n_parameters < SMALL_MODEL_PARAMETERS and not chosen:
            wanted = 1
        if self.device.type != "cpu":
            yield None
            return
        before = torch.get_num_threads()
        adaptive = None
        if wanted is None and not chosen and before > 1:
            if before not in self._adaptive_threads:  # made once: making one reads /proc/stat
                self._adaptive_threads[before] = AdaptiveThreads(before)
            adaptive = self._adaptive_threads[before]
        try:
            torch.set_num_threads(before if wanted is None else wanted)
            yield adaptive
        finally:
            torch.set_num_threads(before)


class GenerationCancelled(Exception):
    """Generation stopped between two steps because its caller asked (`stop_when`)."""


def stop_when(event: threading.Event) -> StepCallback:
    """An `on_step` hook that stops generation at the step after `event` is set (from another
    thread: a service does when its client has gone)."""

    def check(done: int, total: int) -> None:
        if event.is_set():
            raise GenerationCancelled(f"generation cancelled after step {done} of {total}")

    return check


def _counted(on_step: StepCallback, before: int, total: int) -> Callable[[int], None]:
    """One generation call's step hook: its steps done, counted after `before` of `total`."""
    return lambda done: on_step(before + done, total)


def _context(max_context: object, metadata: ModelMetadata | None) -> int:
    """The context a predictor uses: `max_context` (default: the model's own), at most MAX_CONTEXT;
    beyond the context the model's metadata states, capped to it with a ContextWarning (the model
    never saw longer windows, and what it samples past them is not a forecast: closes above highs)."""
    if max_context is None:
        return (metadata or ModelMetadata()).max_context
    context = positive_int(max_context, "max_context")
    if context > MAX_CONTEXT:
        raise ValueError(
            f"max_context must be at most {MAX_CONTEXT:,} bars, got {context:,}; the model's own context "
            "is the default (leave max_context unset)"
        )
    if metadata is not None and context > metadata.max_context:
        warnings.warn(
            f"max_context={context} is beyond the model's own context of {metadata.max_context} bars (its "
            f"kronos.json): it was never trained on longer windows, so {metadata.max_context} is used",
            ContextWarning,
            stacklevel=_caller_stacklevel(),
        )
        return metadata.max_context
    return context


def checked_sampling(sampling: object) -> Sampling:
    """`sampling` if it is a Sampling; a TypeError naming the argument otherwise."""
    return checked_instance(sampling, Sampling, "sampling", "Sampling(sample_count=50, seed=0)")


def _series_list(series: Series | Sequence[Series]) -> list[Series]:
    group = [series] if isinstance(series, Series) else list(series)
    if not group:
        raise ValueError("series must hold at least one Series")
    for i, one in enumerate(group):
        if not isinstance(one, Series):
            raise TypeError(
                f"series[{i}] must be a kronos.forecasting.series.Series, got {type(one).__name__}"
            )
    return group


def _futures(
    group: list[Series], horizon: int, future: pd.DatetimeIndex | Sequence[pd.DatetimeIndex] | None
) -> list[pd.DatetimeIndex]:
    """Each series' future timestamps: given (and checked), or inferred from its own."""
    if future is None:
        return [future_timestamps(one.timestamps, horizon, one.name).timestamps for one in group]
    futures = [future] if isinstance(future, pd.DatetimeIndex) else list(future)
    if len(futures) != len(group):
        raise ValueError(f"future has {len(futures)} entries for {len(group)} series: give one per series")
    futures = [pd.DatetimeIndex(one) for one in futures]
    for one, stamps in zip(group, futures):
        check_future(one.timestamps, stamps, horizon, f"future of {one.name}", "horizon")
    return futures


def _calibrations(
    calibration: Calibration | Sequence[Calibration | None] | None,
    count: int,
    sampling: Sampling,
    horizon: int,
) -> list[Calibration | None]:
    """One calibration (or None) per series, each checked against the sampling and horizon it is used with."""
    if calibration is None:
        return [None] * count
    if not isinstance(calibration, (Calibration, list, tuple)):
        raise TypeError(
            "calibration must be a kronos.forecasting.calibration.Calibration (from calibrate), a list of "
            f"them (or None) per series, or None, got {type(calibration).__name__}"
        )
    calibrations: list[Calibration | None] = (
        [calibration] if isinstance(calibration, Calibration) else list(calibration)
    )
    for i, one in enumerate(calibrations):
        if one is not None and not isinstance(one, Calibration):
            raise TypeError(f"calibration[{i}] must be a Calibration or None, got {type(one).__name__}")
    if len(calibrations) != count:
        raise ValueError(
            f"calibration has {len(calibrations)} entries for {count} series: give one per series"
        )
    for one in calibrations:
        if one is not None:
            one.check(sampling, horizon)
    return calibrations


def _time_features_of(indexes: list[pd.DatetimeIndex]) -> list[np.ndarray]:
    """`time_features` of each index, computed in one call where they share a time zone."""
    if len({str(index.tz) for index in indexes}) > 1:
        return [time_features(index) for index in indexes]
    features = time_features(indexes[0].append(indexes[1:]))
    return np.split(features, np.cumsum([len(index) for index in indexes])[:-1])


def _placed(module: ModuleT, device: torch.device, dtype: torch.dtype) -> ModuleT:
    """`module` on `device` in `dtype`: itself where it is already, else a moved copy (the caller's
    module is left as it was)."""
    tensors = [*module.parameters(), *module.buffers()]
    if all(t.device == device and (t.dtype == dtype or not t.is_floating_point()) for t in tensors):
        return module
    return copy.deepcopy(module).to(device, dtype)


def _caller_stacklevel() -> int:
    """The stacklevel of the first frame outside this package, so that warnings name the user's line."""
    package = os.path.dirname(__file__)
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _batch_size(batch_size: int | None) -> int | None:
    return None if batch_size is None else positive_int(batch_size, "batch_size")


def cpu_has_bf16_kernels() -> bool:
    """Whether PyTorch multiplies bfloat16 on this CPU with its bf16 instructions (AVX-512 BF16 or
    AMX, through oneDNN); without them it converts element by element, slower than float32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}: use one of {sorted(names)}")
    return names[dtype]


def _model_sampling(defaults: SamplingDefaults | None) -> Sampling:
    """A model's default sampling: its kronos.json's temperature and top_p, the package's where it
    sets none; a ValueError naming the key where Sampling refuses a value."""
    chosen = defaults or SamplingDefaults()
    given: dict[str, Any] = {"T": chosen.temperature, "top_p": chosen.top_p}
    try:
        return Sampling(**{name: value for name, value in given.items() if value is not None})
    except ValueError as err:
        raise ValueError(f"the model's kronos.json 'sampling': {err}") from None
