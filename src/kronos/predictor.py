"""KronosPredictor: pandas in, pandas out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .data import (
    FEATURE_COLUMNS,
    as_timestamps,
    denormalize,
    normalize,
    positive_int,
    prepare_ohlcv,
    time_features,
)
from .forecast import (
    CLOSE,
    DEFAULT_QUANTILE_LEVELS,
    check_quantile_levels,
    ohlc_violation_rate,
    ohlc_violations,
    path_statistics,
    summarize_paths,
)
from .frames import GAP_POLICIES, MIN_HISTORY, future_timestamps, report_gaps, split_series
from .generation import sample_paths
from .model import Kronos
from .tokenizer import KronosTokenizer


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


class KronosPredictor:
    """Forecast OHLCV bars with a Kronos model and tokenizer.

    Each series is normalised on its own history (per column mean and population std, clipped
    to ±clip); forecasts are mapped back with the same statistics.
    """

    def __init__(
        self,
        model: Kronos,
        tokenizer: KronosTokenizer,
        device: str | torch.device | None = None,
        max_context: int = 512,
        clip: float = 5,
        dtype: torch.dtype | str | None = None,
        use_cache: bool = True,
    ):
        if int(max_context) <= 0:
            raise ValueError(f"max_context must be positive, got {max_context}")
        self.device = pick_device(device)
        self.dtype = _as_dtype(dtype)
        self.max_context = int(max_context)
        self.clip = clip
        self.use_cache = use_cache
        self.model = model.to(self.device, self.dtype).eval()
        self.tokenizer = tokenizer.to(self.device, self.dtype).eval()
        self.price_cols = FEATURE_COLUMNS[:4]
        self.vol_col, self.amt_vol = FEATURE_COLUMNS[4:]

    def _prepare(self, df, x_timestamp, y_timestamp, pred_len, name):
        x = prepare_ohlcv(df, name)
        x_ts = as_timestamps(x_timestamp, f"x_timestamp of {name}")
        y_ts = as_timestamps(y_timestamp, f"y_timestamp of {name}")
        if len(x_ts) != len(x):
            raise ValueError(f"{name} has {len(x)} rows but x_timestamp has {len(x_ts)}")
        if len(y_ts) != pred_len:
            raise ValueError(f"y_timestamp of {name} has {len(y_ts)} entries but pred_len is {pred_len}")
        if len(x) < 2:
            raise ValueError(f"{name} needs at least 2 rows of history, got {len(x)}")
        x_norm, mean, std = normalize(x, self.clip)
        return x_norm, time_features(x_ts), time_features(y_ts), mean, std, y_ts

    def _sample(self, prepared, pred_len, T, top_k, top_p, sample_count, verbose) -> np.ndarray:
        """Normalised forecast paths [S, sample_count, pred_len, 6] for prepared series of one length."""

        def tensor(arrays):
            return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32)).to(self.device)

        paths = sample_paths(
            self.tokenizer, self.model, tensor([p[0] for p in prepared]), tensor([p[1] for p in prepared]),
            tensor([p[2] for p in prepared]), self.max_context, pred_len, self.clip, T, top_k, top_p,
            sample_count, verbose, self.use_cache,
        )  # fmt: skip
        return paths[:, :, -pred_len:]

    def _prepare_batch(self, df_list, x_timestamp_list, y_timestamp_list, pred_len):
        if not isinstance(df_list, (list, tuple)) or not df_list:
            raise ValueError("df_list must be a non-empty list of DataFrames")
        if not len(df_list) == len(x_timestamp_list) == len(y_timestamp_list):
            raise ValueError(
                f"df_list, x_timestamp_list and y_timestamp_list differ in length: "
                f"{len(df_list)}, {len(x_timestamp_list)}, {len(y_timestamp_list)}"
            )
        prepared = [
            self._prepare(df, xt, yt, pred_len, f"df_list[{i}]")
            for i, (df, xt, yt) in enumerate(zip(df_list, x_timestamp_list, y_timestamp_list))
        ]
        lengths = {len(p[0]) for p in prepared}
        if len(lengths) > 1:
            raise ValueError(
                f"all series in one batch must have the same history length, got {sorted(lengths)}"
            )
        return prepared

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
    ) -> pd.DataFrame:
        """Mean of `sample_count` sampled paths, as a DataFrame of open..amount indexed by y_timestamp."""
        prepared = [self._prepare(df, x_timestamp, y_timestamp, positive_int(pred_len, "pred_len"), "df")]
        return self._mean_frames(prepared, pred_len, T, top_k, top_p, sample_count, verbose)[0]

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
    ) -> list[pd.DataFrame]:
        """`predict` for several series of one history length at once; one DataFrame per series."""
        prepared = self._prepare_batch(
            df_list, x_timestamp_list, y_timestamp_list, positive_int(pred_len, "pred_len")
        )
        return self._mean_frames(prepared, pred_len, T, top_k, top_p, sample_count, verbose)

    def _mean_frames(self, prepared, pred_len, T, top_k, top_p, sample_count, verbose) -> list[pd.DataFrame]:
        mean_paths = self._sample(prepared, pred_len, T, top_k, top_p, sample_count, verbose).mean(axis=1)
        return [
            pd.DataFrame(denormalize(pred, p[3], p[4]), columns=FEATURE_COLUMNS, index=pd.Index(p[5]))
            for pred, p in zip(mean_paths, prepared)
        ]

    def predict_paths(
        self,
        df: pd.DataFrame,
        x_timestamp,
        y_timestamp,
        pred_len: int,
        sample_count: int = 20,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        verbose: bool = False,
    ) -> np.ndarray:
        """Every sampled path in price units: [sample_count, pred_len, 6], columns open..amount."""
        prepared = [self._prepare(df, x_timestamp, y_timestamp, positive_int(pred_len, "pred_len"), "df")]
        return self._price_paths(prepared, pred_len, T, top_k, top_p, sample_count, verbose)[0]

    def predict_paths_batch(
        self,
        df_list: list[pd.DataFrame],
        x_timestamp_list: list,
        y_timestamp_list: list,
        pred_len: int,
        sample_count: int = 20,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        verbose: bool = False,
    ) -> np.ndarray:
        """Sampled paths for several series of one history length: [S, sample_count, pred_len, 6], price units."""
        prepared = self._prepare_batch(
            df_list, x_timestamp_list, y_timestamp_list, positive_int(pred_len, "pred_len")
        )
        return self._price_paths(prepared, pred_len, T, top_k, top_p, sample_count, verbose)

    def _price_paths(self, prepared, pred_len, T, top_k, top_p, sample_count, verbose) -> np.ndarray:
        paths = self._sample(prepared, pred_len, T, top_k, top_p, sample_count, verbose)
        return np.stack([denormalize(p, prep[3], prep[4]) for p, prep in zip(paths, prepared)])

    def predict_quantiles(
        self,
        df: pd.DataFrame,
        x_timestamp,
        y_timestamp,
        pred_len: int,
        quantile_levels: Sequence[float] = DEFAULT_QUANTILE_LEVELS,
        sample_count: int = 20,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        repair_ohlc: bool = True,
        verbose: bool = False,
    ) -> pd.DataFrame:
        """Probabilistic forecast of one series: a DataFrame indexed by the future timestamps.

        Samples `sample_count` paths (`predict_paths`) and summarises them per step with
        `kronos.forecast.path_statistics`: `<field>_mean` and `<field>_q<level>` (e.g.
        `close_q0.1`) for open, high, low, close, volume and amount, `prob_close_above_last`,
        `realized_vol` (mean over paths of sqrt(sum of squared log close-to-close returns up to
        that step, the first from the last known close); the last row is the horizon's) and
        `ohlc_violation_rate` (raw paths, before repair). With `repair_ohlc` (default), each
        path's high and low are set to the max and min of its open, high, low, close before the
        statistics. `y_timestamp=None` infers the future timestamps from x_timestamp
        (`kronos.frames.future_timestamps`). `attrs` holds "ohlc_violation_rate" over all sampled
        bars and "realized_vol" over the horizon.
        """
        levels = check_quantile_levels(quantile_levels)
        pred_len = positive_int(pred_len, "pred_len")
        if y_timestamp is None:
            history = pd.DatetimeIndex(as_timestamps(x_timestamp, "x_timestamp"))
            y_timestamp = future_timestamps(history, pred_len, "x_timestamp").timestamps
        paths = self.predict_paths(
            df, x_timestamp, y_timestamp, pred_len, sample_count, T, top_k, top_p, verbose
        )
        last_close = float(prepare_ohlcv(df)[-1, CLOSE])
        table = summarize_paths(paths, last_close, levels, repair_ohlc)
        table.index = pd.DatetimeIndex(as_timestamps(y_timestamp, "y_timestamp"))
        table.attrs["ohlc_violation_rate"] = ohlc_violation_rate(paths)
        table.attrs["realized_vol"] = float(table["realized_vol"].iloc[-1])
        return table

    def predict_df(
        self,
        df: pd.DataFrame,
        id_column: str = "id",
        timestamp_column: str = "timestamps",
        *,
        prediction_length: int,
        quantile_levels: Sequence[float] = DEFAULT_QUANTILE_LEVELS,
        sample_count: int = 20,
        batch_size: int = 32,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        repair_ohlc: bool = True,
        nan_policy: str = "raise",
        freq: str | None = None,
        on_gap: str = "warn",
        max_history: int | None = None,
        min_history: int = MIN_HISTORY,
        verbose: bool = False,
    ) -> pd.DataFrame:
        """Probabilistic forecasts for every series of a long table, as a long table.

        Input: one row per (id, timestamp) with open, high, low, close and optionally volume and
        amount; series may differ in length and interleave, but each must be sorted by time
        without duplicate timestamps (`kronos.frames.split_series`; `nan_policy` "raise",
        "ffill" or "drop" decides what missing values do). Each series uses its last
        `max_history` bars (default: the predictor's max_context) and needs at least
        `min_history` (default 10). Future timestamps follow `freq` if given, else each series'
        own schedule (`kronos.frames.future_timestamps`: regular frequencies, business days,
        trading sessions); gaps in a history warn (`on_gap="warn"`), raise or are ignored.

        Output: `prediction_length` rows per series, series in order of first appearance, with
        columns `id_column`, `timestamp_column`, then `path_statistics`' columns
        (`close_mean`, `close_q0.1`, ..., `prob_close_above_last`, `realized_vol`,
        `ohlc_violation_rate`). `attrs["ohlc_violation_rate"]` is the raw rate over all bars.

        Series are grouped by history length (the generation engine needs one length per batch)
        and run `batch_size` at a time, so memory is bounded by batch_size x sample_count paths
        whatever the number of series. Normalisation is per series, so in greedy mode
        (top_k=1) a series' forecast does not depend on the series batched with it; with
        sampling the random draws do depend on the batch layout.
        """
        pred_len = positive_int(prediction_length, "prediction_length")
        levels = check_quantile_levels(quantile_levels)
        batch_size = positive_int(batch_size, "batch_size")
        min_history = positive_int(min_history, "min_history")
        if min_history < 3:
            raise ValueError(f"min_history must be at least 3 (to infer a frequency), got {min_history}")
        max_history = self.max_context if max_history is None else positive_int(max_history, "max_history")
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
        histories = [one.timestamps[-max_history:] for one in series]
        # time features of every series in one call each: per-series calls cost ~2 ms apiece
        history_features = _split_rows(_time_features_of(histories), [len(h) for h in histories])
        future_features = _split_rows(_time_features_of(futures), [pred_len] * len(futures))

        prepared, last_closes = [], []
        by_length: dict[int, list[int]] = {}
        for k, one in enumerate(series):
            # column-major, as prepare_ohlcv returns bars: numpy's float32 mean then sums in the same
            # order, so the normalisation equals predict's bit for bit
            bars = np.asfortranarray(one.bars[-max_history:])
            x_norm, mean, std = normalize(bars, self.clip)
            # the layout of _prepare's tuples, which _sample reads
            prepared.append((x_norm, history_features[k], future_features[k], mean, std, futures[k]))
            last_closes.append(float(bars[-1, CLOSE]))
            by_length.setdefault(len(bars), []).append(k)

        order, batches, n_violations = [], [], 0
        with tqdm(total=len(series), desc="series", unit="series", disable=not verbose) as progress:
            for members in by_length.values():
                for start in range(0, len(members), batch_size):
                    chunk = members[start : start + batch_size]
                    normed = self._sample(
                        [prepared[i] for i in chunk], pred_len, T, top_k, top_p, sample_count, False
                    )
                    paths = np.stack(
                        [denormalize(p, prepared[i][3], prepared[i][4]) for p, i in zip(normed, chunk)]
                    )
                    n_violations += int(ohlc_violations(paths).sum())
                    closes = np.array([last_closes[i] for i in chunk])
                    batches.append(path_statistics(paths, closes, levels, repair_ohlc))
                    order.extend(chunk)
                    progress.update(len(chunk))
        position = np.argsort(np.array(order))
        columns = {name: np.concatenate([b[name] for b in batches])[position].ravel() for name in batches[0]}
        ids = pd.Index([one.id for one in series]).repeat(pred_len)
        stamps = futures[0].append(futures[1:])
        table = pd.DataFrame({id_column: ids, timestamp_column: stamps, **columns})
        table.attrs["ohlc_violation_rate"] = n_violations / (len(series) * sample_count * pred_len)
        return table


def _time_features_of(indexes: list[pd.DatetimeIndex]) -> np.ndarray:
    return time_features(pd.Series(indexes[0].append(indexes[1:])))


def _split_rows(array: np.ndarray, lengths: list[int]) -> list[np.ndarray]:
    return np.split(array, np.cumsum(lengths)[:-1])


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
