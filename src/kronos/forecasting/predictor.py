"""KronosPredictor: pandas in, pandas out."""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from kronos.engine.generation import SeriesBatch, check_window, decode_tokens, generate_tokens
from kronos.engine.sampling import Sampling
from kronos.forecasting.calibration import (
    MAX_ORIGINS,
    MIN_ORIGINS,
    Calibration,
    fit_origins,
    history_volatility,
    required_rows,
)
from kronos.forecasting.paths import (
    DEFAULT_QUANTILE_LEVELS,
    VolatilityWarning,
    check_quantile_levels,
    ohlc_violations,
    path_statistics,
)
from kronos.forecasting.pretrained import DEFAULT_MODEL, ModelMetadata, load_pretrained
from kronos.forecasting.schedules import (
    GAP_POLICIES,
    MIN_HISTORY,
    future_timestamps,
    report_gaps,
    split_series,
)
from kronos.forecasting.series import (
    CLOSE,
    FEATURE_COLUMNS,
    FLOAT32,
    as_timestamps,
    check_pred_len,
    check_time_order,
    denormalize,
    normalize,
    positive_int,
    prepare_ohlcv,
    time_features,
)
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer

NORMALIZE_ON = ("history", "context")
# Sampling of the probabilistic methods (predict_paths, predict_quantiles, predict_df, calibrate,
# the CLI, evaluate), chosen by measurement (docs/calibration.md). predict and predict_batch keep
# upstream's T=1, top_k=0, top_p=0.9, sample_count=1.
PATHS = 20
TEMPERATURE = 1.0
TOP_P = 0.9

# Caps on the work one call may ask for; each refusal names its cap and why (docs/reliability.md).
MAX_HISTORY = (
    20_000  # bars tokenized per series: the tokenizer attends over all, time grows with their square
)
MAX_PATH_VALUES = 2**28  # series x paths x steps x 6 values a call returns: 1 GiB in float32
GENERATION_MEMORY = 4 * 2**30  # bytes a generation call may take (estimated); larger batches are split
SMALL_MODEL_PARAMETERS = 5_000_000  # below this, generation on CPU is fastest on one thread
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


@dataclass
class PreparedSeries:
    """One series ready for generation: the normalised history with its statistics, the time
    features of history and future, and the key its random draws come from."""

    x: np.ndarray  # [L, 6] normalised and clipped
    x_stamp: np.ndarray  # [L, 5]
    y_stamp: np.ndarray  # [pred_len, 5]
    mean: np.ndarray
    std: np.ndarray
    y_timestamp: pd.DatetimeIndex
    last_close: float
    volatility: float  # per-bar volatility of the history's closes (kronos.forecasting.calibration)
    key: object = 0
    name: str = "df"

    def to_prices(self, normalised: np.ndarray, calibration: Calibration | None = None) -> np.ndarray:
        """Normalised paths [paths, steps, 6] in price units, calibrated when given one; an error
        naming the column where float32 overflows."""
        prices = denormalize(normalised, self.mean, self.std)
        finite = np.isfinite(prices).reshape(-1, prices.shape[-1]).all(axis=0)
        if not finite.all():
            col = FEATURE_COLUMNS[int(np.argmin(finite))]
            j = FEATURE_COLUMNS.index(col)
            raise ValueError(
                f"the forecast of {self.name} column {col!r} overflows float32 (its history has mean "
                f"{self.mean[j]:.3g} and standard deviation {self.std[j]:.3g}): rescale the column"
            )
        return prices if calibration is None else calibration.apply(prices, self.last_close, self.volatility)


def _checked_calibrations(calibrations, count: int, sampling: Sampling, pred_len: int) -> list:
    """One calibration (or None) per series, each checked against the sampling and horizon it is used with."""
    if calibrations is None:
        return [None] * count
    for calibration in calibrations:
        if calibration is not None:
            calibration.check(sampling, pred_len)
    return list(calibrations)


class ContextWarning(UserWarning):
    """A history is longer than the model's context."""


class KronosPredictor:
    """Forecast OHLCV bars with a Kronos model and tokenizer.

    Each series is normalised on its own history (per column mean and population std, clipped
    to ±clip); forecasts are mapped back with the same statistics. `max_context` defaults to
    the model's own (its metadata; 512 without any, as upstream). `normalize_on="context"` keeps
    only the last `max_context` bars of a longer history, so that normalisation and tokenizer
    see just the bars the model sees; the default "history" uses them all, as upstream.

    `num_threads` sets torch's CPU threads while generating. Without it, a model under 5M
    parameters generates on one thread (faster: its matrices are too small to share out),
    unless torch's thread count was changed after kronos was imported or OMP_NUM_THREADS /
    MKL_NUM_THREADS is set; the count is restored after each call. `memory_budget` (bytes) bounds
    one generation call's estimated memory: larger batches are split, and one series that needs
    more is refused. A predictor holds no per-call state: threads may share one (use `seed=`).

    `dtype="bfloat16"` halves the bytes of the weights (see docs/performance.md for when it pays);
    `window="streaming"` slides a full context window without recomputing it (see
    `kronos.engine.generation.WINDOWS`), the default "exact" gives upstream's numbers.
    """

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
    ):
        self.metadata = getattr(model, "metadata", None) or ModelMetadata()
        max_context = self.metadata.max_context if max_context is None else max_context
        self.max_context = positive_int(max_context, "max_context")
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
        self.dtype = _as_dtype(dtype)
        if self.dtype == torch.bfloat16 and self.device.type == "cpu" and not cpu_has_bf16_kernels():
            warnings.warn(
                "this CPU has no bfloat16 matrix instructions (oneDNN reports none): bfloat16 runs in "
                "PyTorch's generic kernels, slower than float32 (docs/performance.md)",
                stacklevel=_caller_stacklevel(),
            )
        check_window(window)
        self.window = window
        self.model = model.to(self.device, self.dtype).eval()
        self.tokenizer = tokenizer.to(self.device, self.dtype).eval()
        self.n_parameters = sum(p.numel() for p in self.model.parameters())

    @property
    def lookback(self) -> int:
        """Bars of history a forecast should give the model: the history it was trained with
        (its metadata; its context without any), within this predictor's context."""
        return min(self.metadata.lookback, self.max_context)

    @classmethod
    def from_pretrained(
        cls, model: str = DEFAULT_MODEL, tokenizer: str | None = None, **kwargs
    ) -> KronosPredictor:
        """A predictor for a shipped model ('kronos-default'), a directory or a Hub id.

        The tokenizer is the model's own (beside it, or the published companion of a Hub model)
        unless named. Keyword arguments go to the constructor; defaults follow the model's metadata.
        """
        loaded_model, loaded_tokenizer = load_pretrained(model, tokenizer)
        return cls(loaded_model, loaded_tokenizer, **kwargs)

    # --- preparation -------------------------------------------------------------------------------

    def _prepare(
        self, df, x_timestamp, y_timestamp, pred_len: int, name: str, key: object = 0
    ) -> PreparedSeries:
        bars = prepare_ohlcv(df, name)
        x_ts = as_timestamps(x_timestamp, f"x_timestamp of {name}")
        y_ts = as_timestamps(y_timestamp, f"y_timestamp of {name}")
        if len(x_ts) != len(bars):
            raise ValueError(f"{name} has {len(bars)} rows but x_timestamp has {len(x_ts)}")
        if len(y_ts) != pred_len:
            raise ValueError(f"y_timestamp of {name} has {len(y_ts)} entries but pred_len is {pred_len}")
        if len(bars) < 2:
            raise ValueError(f"{name} needs at least 2 rows of history, got {len(bars)}")
        check_time_order(x_ts, f"x_timestamp of {name}")
        check_time_order(y_ts, f"y_timestamp of {name}")
        zones = (x_ts.dt.tz, y_ts.dt.tz)
        if (zones[0] is None) != (zones[1] is None):
            raise ValueError(f"x_timestamp of {name} has time zone {zones[0]} but y_timestamp has {zones[1]}")
        if y_ts.iloc[0] <= x_ts.iloc[-1]:
            raise ValueError(
                f"y_timestamp of {name} starts at {y_ts.iloc[0]}, not after the history's last timestamp {x_ts.iloc[-1]}"
            )
        return self._prepare_arrays(
            bars, time_features(x_ts), time_features(y_ts), pd.DatetimeIndex(y_ts), key, name
        )

    def _prepare_arrays(
        self, bars, x_stamp, y_stamp, y_timestamp, key: object, name: str = "df"
    ) -> PreparedSeries:
        """A series from validated float32 bars [L, 6] and time features.

        Refuses a history longer than MAX_HISTORY bars (what reaches the tokenizer), and columns
        whose normalisation statistics, or the forecasts they map back to, do not fit float32.
        """
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
        return PreparedSeries(x, x_stamp, y_stamp, mean, std, y_timestamp, last_close, volatility, key, name)

    def _prepare_list(self, df_list, x_timestamp_list, y_timestamp_list, pred_len: int, series_ids=None):
        if not isinstance(df_list, (list, tuple)) or not df_list:
            raise ValueError("df_list must be a non-empty list of DataFrames")
        for what, values in (("x_timestamp_list", x_timestamp_list), ("y_timestamp_list", y_timestamp_list)):
            if not isinstance(values, (list, tuple)):
                raise TypeError(
                    f"{what} must be a list, one entry per DataFrame, got {type(values).__name__}"
                )
        if not len(df_list) == len(x_timestamp_list) == len(y_timestamp_list):
            raise ValueError(
                f"df_list, x_timestamp_list and y_timestamp_list differ in length: "
                f"{len(df_list)}, {len(x_timestamp_list)}, {len(y_timestamp_list)}"
            )
        keys = range(len(df_list)) if series_ids is None else list(series_ids)
        if len(keys) != len(df_list):
            raise ValueError(f"series_ids has {len(keys)} ids for {len(df_list)} series")
        return [
            self._prepare(df, xt, yt, pred_len, f"df_list[{i}]", key)
            for i, (df, xt, yt, key) in enumerate(zip(df_list, x_timestamp_list, y_timestamp_list, keys))
        ]

    # --- the one core --------------------------------------------------------------------------------

    def _sample(
        self,
        prepared: list[PreparedSeries],
        pred_len: int,
        sampling: Sampling,
        verbose: bool = False,
        batch_size: int | None = None,
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        """Normalised forecast paths, per generation call: (indices into `prepared`, [k, sample_count,
        pred_len, 6]).

        Series run in groups of one history length (generation needs one length per call), at most
        `batch_size` at a time and as many as fit in the memory budget.
        """
        self._warn_beyond_context(prepared)
        chunks = self._chunks(prepared, pred_len, sampling.sample_count, batch_size)
        with tqdm(
            total=len(prepared), desc="series", unit="series", disable=not verbose or len(chunks) == 1
        ) as bar:
            for chunk in chunks:
                group = [prepared[i] for i in chunk]
                with self._generation_threads():
                    batch = SeriesBatch(
                        self._tensor([p.x for p in group]),
                        self._tensor([p.x_stamp for p in group]),
                        self._tensor([p.y_stamp for p in group]),
                        keys=[p.key for p in group],
                    )
                    tokens = generate_tokens(
                        self.tokenizer, self.model, batch, sampling, self.max_context, self.clip,
                        verbose=verbose and len(chunks) == 1, window=self.window,
                    )  # fmt: skip
                    decoded = decode_tokens(self.tokenizer, tokens, self.max_context)
                paths = decoded.float().cpu().numpy()
                bar.update(len(chunk))
                yield chunk, paths[:, :, -pred_len:]

    def _chunks(
        self, prepared: list[PreparedSeries], pred_len: int, sample_count: int, batch_size: int | None
    ) -> list[list[int]]:
        by_length: dict[int, list[int]] = {}
        for i, one in enumerate(prepared):
            by_length.setdefault(len(one.x), []).append(i)
        chunks = []
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
    def _generation_threads(self) -> Iterator[None]:
        """torch's CPU thread count for a generation call (`num_threads` in the class docstring)."""
        wanted = self.num_threads
        if wanted is None and self.n_parameters < SMALL_MODEL_PARAMETERS:
            chosen = (
                any(os.environ.get(v) for v in _THREAD_VARIABLES) or torch.get_num_threads() != _TORCH_THREADS
            )
            wanted = None if chosen else 1
        before = torch.get_num_threads()
        if self.device.type != "cpu" or wanted is None or wanted == before:
            yield
            return
        torch.set_num_threads(wanted)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _tensor(self, arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32)).to(self.device)

    def _price_paths(
        self, prepared, pred_len, sampling, verbose=False, batch_size=None, calibrations=None
    ) -> np.ndarray:
        """Every path in price units, [S, sample_count, pred_len, 6]; series i calibrated by
        calibrations[i] (None: as sampled)."""
        values = len(prepared) * sampling.sample_count * pred_len * len(FEATURE_COLUMNS)
        if values > MAX_PATH_VALUES:
            raise ValueError(
                f"{len(prepared):,} series x {sampling.sample_count:,} paths x {pred_len:,} steps x 6 columns is "
                f"{values:,} values, more than the {MAX_PATH_VALUES:,} (1 GiB) one call returns: ask for fewer "
                "series, paths or steps at once, or summarise them with predict_df"
            )
        calibrations = _checked_calibrations(calibrations, len(prepared), sampling, pred_len)
        out = np.empty((len(prepared), sampling.sample_count, pred_len, 6), dtype=np.float32)
        for chunk, paths in self._sample(prepared, pred_len, sampling, verbose, batch_size):
            for i, one in zip(chunk, paths):
                out[i] = prepared[i].to_prices(one, calibrations[i])
        return out

    def _mean_frames(self, prepared, pred_len, sampling, verbose) -> list[pd.DataFrame]:
        """Upstream's output: the mean path, averaged before mapping back to prices."""
        frames: list[pd.DataFrame] = [pd.DataFrame()] * len(prepared)
        for chunk, paths in self._sample(prepared, pred_len, sampling, verbose):
            for i, mean in zip(chunk, paths.mean(axis=1)):
                one = prepared[i]
                frames[i] = pd.DataFrame(
                    one.to_prices(mean), columns=FEATURE_COLUMNS, index=pd.Index(one.y_timestamp)
                )
        return frames

    def _summaries(
        self, prepared, pred_len, sampling, levels, repair, verbose=False, batch_size=None, calibrations=None
    ):
        """`path_statistics` of every series (calibrated by calibrations[i] where given), [S, pred_len]
        per column, computed one generation call at a time so that memory is bounded by the batch;
        and the OHLC violation rate over all bars."""
        _check_last_close(prepared)
        calibrations = _checked_calibrations(calibrations, len(prepared), sampling, pred_len)
        columns: dict[str, np.ndarray] = {}
        violations = 0
        for chunk, paths in self._sample(prepared, pred_len, sampling, verbose, batch_size):
            prices = np.stack([prepared[i].to_prices(p, calibrations[i]) for i, p in zip(chunk, paths)])
            closes = np.array([prepared[i].last_close for i in chunk])
            stats = path_statistics(prices, closes, levels, repair)
            for key, value in stats.items():
                columns.setdefault(key, np.empty((len(prepared), pred_len)))[chunk] = value
            violations += int(ohlc_violations(prices).sum())
        _warn_undefined_volatility(columns["realized_vol"], prepared)
        return columns, violations / (len(prepared) * sampling.sample_count * pred_len)

    def _warn_beyond_context(self, prepared: list[PreparedSeries]) -> None:
        longest = max(len(p.x) for p in prepared)
        if longest > self.max_context:
            warnings.warn(
                f"history of {longest} bars is longer than the model's context of {self.max_context}: the model "
                f"attends to the last {self.max_context} tokens only, while all {longest} bars set the "
                f"normalisation (mean and std) and pass through the tokenizer. To use only the bars the model "
                f"sees, pass normalize_on='context' (kronos --normalize context) or a shorter history.",
                ContextWarning,
                stacklevel=_caller_stacklevel(),
            )

    # --- upstream's API ------------------------------------------------------------------------------

    def predict(
        self,
        df: pd.DataFrame,
        x_timestamp,
        y_timestamp,
        pred_len: int,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        sample_count: int = 1,
        verbose: bool = True,
        seed: int | None = None,
    ) -> pd.DataFrame:
        """Mean of `sample_count` sampled paths, as a DataFrame of open..amount indexed by y_timestamp."""
        sampling = Sampling(T, top_k, top_p, sample_count, seed)
        pred_len = check_pred_len(pred_len, "pred_len")
        prepared = [self._prepare(df, x_timestamp, y_timestamp, pred_len, "df")]
        return self._mean_frames(prepared, pred_len, sampling, verbose)[0]

    def predict_batch(
        self,
        df_list: list[pd.DataFrame],
        x_timestamp_list: list,
        y_timestamp_list: list,
        pred_len: int,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        sample_count: int = 1,
        verbose: bool = True,
        seed: int | None = None,
    ) -> list[pd.DataFrame]:
        """`predict` for several series of one history length at once; one DataFrame per series."""
        sampling = Sampling(T, top_k, top_p, sample_count, seed)
        pred_len = check_pred_len(pred_len, "pred_len")
        prepared = self._prepare_list(df_list, x_timestamp_list, y_timestamp_list, pred_len)
        lengths = sorted({len(p.x) for p in prepared})
        if len(lengths) > 1:
            raise ValueError(f"all series in one batch must have the same history length, got {lengths}")
        return self._mean_frames(prepared, pred_len, sampling, verbose)

    # --- every path, and their summaries -------------------------------------------------------------

    def predict_paths(
        self,
        df: pd.DataFrame,
        x_timestamp,
        y_timestamp,
        pred_len: int,
        sample_count: int = PATHS,
        T: float = TEMPERATURE,
        top_k: int = 0,
        top_p: float = TOP_P,
        verbose: bool = False,
        seed: int | None = None,
        series_id: object = 0,
        calibration: Calibration | None = None,
    ) -> np.ndarray:
        """Every sampled path in price units: [sample_count, pred_len, 6], columns open..amount.

        With `seed`, the paths come from (seed, series_id) alone, not from torch's global
        generator; `predict_df` and `predict_paths_batch` give a series with the same id the same paths.
        With `calibration` (from `calibrate` on this series), the paths are calibrated.
        """
        sampling = Sampling(T, top_k, top_p, sample_count, seed)
        pred_len = check_pred_len(pred_len, "pred_len")
        prepared = [self._prepare(df, x_timestamp, y_timestamp, pred_len, "df", series_id)]
        return self._price_paths(prepared, pred_len, sampling, verbose, calibrations=[calibration])[0]

    def predict_paths_batch(
        self,
        df_list: list[pd.DataFrame],
        x_timestamp_list: list,
        y_timestamp_list: list,
        pred_len: int,
        sample_count: int = PATHS,
        T: float = TEMPERATURE,
        top_k: int = 0,
        top_p: float = TOP_P,
        verbose: bool = False,
        seed: int | None = None,
        series_ids: Sequence | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Sampled paths of several series, [S, sample_count, pred_len, 6] in price units.

        Histories may differ in length. With `seed`, series i draws from (seed, series_ids[i])
        alone (default: its position i), so its paths do not depend on the rest of the batch.
        """
        sampling = Sampling(T, top_k, top_p, sample_count, seed)
        pred_len = check_pred_len(pred_len, "pred_len")
        prepared = self._prepare_list(df_list, x_timestamp_list, y_timestamp_list, pred_len, series_ids)
        return self._price_paths(prepared, pred_len, sampling, verbose, _batch_size(batch_size))

    def predict_quantiles(
        self,
        df: pd.DataFrame,
        x_timestamp,
        y_timestamp,
        pred_len: int,
        quantile_levels: Sequence[float] = DEFAULT_QUANTILE_LEVELS,
        sample_count: int = PATHS,
        T: float = TEMPERATURE,
        top_k: int = 0,
        top_p: float = TOP_P,
        repair_ohlc: bool = True,
        verbose: bool = False,
        seed: int | None = None,
        series_id: object = 0,
        calibration: Calibration | None = None,
    ) -> pd.DataFrame:
        """Probabilistic forecast of one series: a DataFrame indexed by the future timestamps.

        Samples `sample_count` paths (`predict_paths`) and summarises them per step with
        `kronos.forecasting.paths.path_statistics`: `<field>_mean` and `<field>_q<level>` (e.g.
        `close_q0.1`) for open, high, low, close, volume and amount, `prob_close_above_last`,
        `realized_vol` (mean over paths of sqrt(sum of squared log close-to-close returns up to
        that step, the first from the last known close); the last row is the horizon's) and
        `ohlc_violation_rate` (raw paths, before repair). With `repair_ohlc` (default), each
        path's high and low are set to the max and min of its open, high, low, close before the
        statistics. `y_timestamp=None` infers the future timestamps from x_timestamp
        (`kronos.forecasting.schedules.future_timestamps`). `attrs` holds "ohlc_violation_rate" over all sampled
        bars and "realized_vol" over the horizon. `seed` and `series_id` as in `predict_paths`.
        """
        levels = check_quantile_levels(quantile_levels)
        sampling = Sampling(T, top_k, top_p, sample_count, seed)
        pred_len = check_pred_len(pred_len, "pred_len")
        if y_timestamp is None:
            history = pd.DatetimeIndex(as_timestamps(x_timestamp, "x_timestamp"))
            y_timestamp = future_timestamps(history, pred_len, "x_timestamp").timestamps
        prepared = self._prepare(df, x_timestamp, y_timestamp, pred_len, "df", series_id)
        columns, violation_rate = self._summaries(
            [prepared], pred_len, sampling, levels, repair_ohlc, verbose, calibrations=[calibration]
        )
        table = pd.DataFrame({k: v[0] for k, v in columns.items()}, index=prepared.y_timestamp)
        table.attrs["ohlc_violation_rate"] = violation_rate
        table.attrs["realized_vol"] = float(table["realized_vol"].iloc[-1])
        return table

    def calibrate(
        self,
        df: pd.DataFrame,
        x_timestamp,
        pred_len: int,
        *,
        lookback: int | None = None,
        every: int | None = None,
        max_origins: int | None = MAX_ORIGINS,
        sample_count: int = PATHS,
        T: float = TEMPERATURE,
        top_k: int = 0,
        top_p: float = TOP_P,
        seed: int | None = 0,
        series_id: object = 0,
        batch_size: int = 32,
        verbose: bool = False,
    ) -> Calibration:
        """Fit a `Calibration` of `pred_len`-step forecasts on one series' own history `df`.

        Forecasts the history from within: at origins t = lookback + k * every (`every` defaults
        to pred_len // 2; the last `max_origins`, `kronos.forecasting.calibration.fit_origins`), each from the
        `lookback` bars before t (default: the model's), with the sampling given here, and
        compares them with the bars that followed. Pass the result as `calibration=` to
        `predict_paths`, `predict_quantiles` or `predict_df` with the same sampling. Past origin t
        draws from (seed, series_id, t), as `kronos evaluate` does. Needs
        `kronos.forecasting.calibration.required_rows` bars (20 past forecasts) and raises ValueError otherwise.
        """
        pred_len = positive_int(pred_len, "pred_len")
        lookback = self.lookback if lookback is None else positive_int(lookback, "lookback")
        sampling = Sampling(T, top_k, top_p, sample_count, seed)
        prices = prepare_ohlcv(df, "df", np.float64)
        stamps = as_timestamps(x_timestamp, "x_timestamp")
        if len(stamps) != len(prices):
            raise ValueError(f"df has {len(prices)} rows but x_timestamp has {len(stamps)}")
        origins = fit_origins(len(prices), lookback, pred_len, every, max_origins)
        if len(origins) < MIN_ORIGINS:
            needed = required_rows(lookback, pred_len, every)
            raise ValueError(
                f"calibrating {pred_len}-step forecasts from {lookback} bars of history needs at least {needed} "
                f"bars ({MIN_ORIGINS} past forecasts and their outcomes); df has {len(prices)}"
            )
        bars = prices.astype(np.float32)
        features = time_features(stamps)
        prepared = [
            self._prepare_arrays(
                np.asfortranarray(bars[t - lookback : t]),
                features[t - lookback : t],
                features[t : t + pred_len],
                pd.DatetimeIndex(stamps.iloc[t : t + pred_len]),
                (series_id, int(t)),
            )
            for t in origins
        ]
        paths = self._price_paths(prepared, pred_len, sampling, verbose, batch_size)
        outcomes = np.stack([prices[t : t + pred_len, CLOSE] for t in origins])
        volatility = np.array([one.volatility for one in prepared])
        return Calibration.fit(paths, outcomes, prices[origins - 1, CLOSE], volatility, sampling, lookback)

    def predict_df(
        self,
        df: pd.DataFrame,
        id_column: str = "id",
        timestamp_column: str = "timestamps",
        *,
        prediction_length: int,
        quantile_levels: Sequence[float] = DEFAULT_QUANTILE_LEVELS,
        sample_count: int = PATHS,
        batch_size: int = 32,
        T: float = TEMPERATURE,
        top_k: int = 0,
        top_p: float = TOP_P,
        repair_ohlc: bool = True,
        nan_policy: str = "raise",
        freq: str | None = None,
        on_gap: str = "warn",
        max_history: int | None = None,
        min_history: int = MIN_HISTORY,
        verbose: bool = False,
        seed: int | None = None,
        calibration: Mapping[object, Calibration] | None = None,
    ) -> pd.DataFrame:
        """Probabilistic forecasts for every series of a long table, as a long table.

        Input: one row per (id, timestamp) with open, high, low, close and optionally volume and
        amount; series may differ in length and interleave, but each must be sorted by time
        without duplicate timestamps (`kronos.forecasting.schedules.split_series`; `nan_policy` "raise",
        "ffill" or "drop" decides what missing values do). Each series uses its last
        `max_history` bars (default: the predictor's `lookback`) and needs at least
        `min_history` (default 10). Future timestamps follow `freq` if given, else each series'
        own schedule (`kronos.forecasting.schedules.future_timestamps`: regular frequencies, business days,
        trading sessions); gaps in a history warn (`on_gap="warn"`), raise or are ignored.

        Output: `prediction_length` rows per series, series in order of first appearance, with
        columns `id_column`, `timestamp_column`, then `path_statistics`' columns
        (`close_mean`, `close_q0.1`, ..., `prob_close_above_last`, `realized_vol`,
        `ohlc_violation_rate`). `attrs["ohlc_violation_rate"]` is the raw rate over all bars.

        Series are grouped by history length and run `batch_size` at a time, so generation's
        memory is bounded by batch_size x sample_count paths whatever the number of series (the
        sampled bars of all series, 4 x S x sample_count x prediction_length x 6 bytes, are kept
        until summarised). With `seed`,
        each series draws from (seed, its id) alone: its forecast is the same whatever the batch
        size or the other series in the table. Without one, torch's global generator is used and
        the draws depend on the batch layout. `calibration` maps ids to their `calibrate`d
        corrections; every series of the table needs one.
        """
        pred_len = check_pred_len(prediction_length, "prediction_length")
        levels = check_quantile_levels(quantile_levels)
        sampling = Sampling(T, top_k, top_p, sample_count, seed)
        batch_size = positive_int(batch_size, "batch_size")
        min_history = positive_int(min_history, "min_history")
        if min_history < 3:
            raise ValueError(f"min_history must be at least 3 (to infer a frequency), got {min_history}")
        max_history = self.lookback if max_history is None else positive_int(max_history, "max_history")
        if max_history < min_history:
            raise ValueError(f"max_history ({max_history}) is below min_history ({min_history})")
        if on_gap not in GAP_POLICIES:
            raise ValueError(f"on_gap must be one of {GAP_POLICIES}, got {on_gap!r}")
        series = split_series(df, id_column, timestamp_column, nan_policy)
        futures, gaps = [], []
        for one in series:
            name = f"{id_column}={one.id!r}"
            if len(one.bars) < min_history:
                raise ValueError(
                    f"series {name} has {len(one.bars)} bars; at least min_history={min_history} are needed"
                )
            future = future_timestamps(one.timestamps, pred_len, name, freq)
            futures.append(future.timestamps)
            if future.gap is not None:
                future.gap.id = one.id
                gaps.append(future.gap)
        report_gaps(gaps, on_gap, id_column)
        if calibration is not None:
            uncalibrated = [one.id for one in series if one.id not in calibration]
            if uncalibrated:
                raise ValueError(f"calibration has no entry for {id_column} {uncalibrated[:5]}")
        histories = [one.timestamps[-max_history:] for one in series]
        # time features of every series in one call each: per-series calls cost ~2 ms apiece
        history_features = _split_rows(_time_features_of(histories), [len(h) for h in histories])
        future_features = _split_rows(_time_features_of(futures), [pred_len] * len(futures))
        prepared = [
            # column-major, as prepare_ohlcv returns bars: numpy's float32 mean then sums in the
            # same order, so the normalisation equals predict's bit for bit
            self._prepare_arrays(
                np.asfortranarray(one.bars[-max_history:]),
                history_features[k],
                future_features[k],
                futures[k],
                one.id,
                f"series {id_column}={one.id!r}",
            )
            for k, one in enumerate(series)
        ]
        calibrations = None if calibration is None else [calibration[one.id] for one in series]
        columns, violation_rate = self._summaries(
            prepared, pred_len, sampling, levels, repair_ohlc, verbose, batch_size, calibrations
        )
        ids = pd.Index([one.id for one in series]).repeat(pred_len)
        stamps = futures[0].append(futures[1:])
        table = pd.DataFrame(
            {id_column: ids, timestamp_column: stamps, **{k: v.ravel() for k, v in columns.items()}}
        )
        table.attrs["ohlc_violation_rate"] = violation_rate
        return table


def _check_last_close(prepared: list[PreparedSeries]) -> None:
    """Refuse a series whose last close is not positive: its realised volatility and direction
    are measured by log returns from it."""
    for one in prepared:
        if not one.last_close > 0:
            raise ValueError(
                f"the last close of {one.name} is {one.last_close:g}: realised volatility is measured in log "
                "returns from the last close, which need a positive price; predict_paths gives the raw paths"
            )


def _warn_undefined_volatility(volatility: np.ndarray, prepared: list[PreparedSeries]) -> None:
    """Name the first series and step where no sampled path has a positive close (realized_vol NaN)."""
    undefined = np.isnan(volatility)
    if undefined.any():
        series, step = (int(i[0]) for i in np.nonzero(undefined))
        warnings.warn(
            f"realized_vol is NaN at {int(undefined.sum())} steps: from step {step + 1} of "
            f"{prepared[series].name}, no sampled path has a positive close (log returns need one)",
            VolatilityWarning,
            stacklevel=_caller_stacklevel(),
        )


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


def _time_features_of(indexes: list[pd.DatetimeIndex]) -> np.ndarray:
    return time_features(pd.Series(indexes[0].append(indexes[1:])))


def _split_rows(array: np.ndarray, lengths: list[int]) -> list[np.ndarray]:
    return np.split(array, np.cumsum(lengths)[:-1])


def cpu_has_bf16_kernels() -> bool:
    """Whether PyTorch multiplies bfloat16 on this CPU with its bf16 instructions (AVX-512 BF16 or
    AMX, through oneDNN); without them it converts element by element, slower than float32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _as_dtype(dtype) -> torch.dtype:
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
