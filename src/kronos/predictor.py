"""KronosPredictor: pandas in, pandas out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .data import FEATURE_COLUMNS, as_timestamps, denormalize, normalize, prepare_ohlcv, time_features
from .generation import decode_tokens, eval_mode, generate_tokens
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

        with eval_mode(self.tokenizer, self.model):
            tokens = generate_tokens(
                self.tokenizer,
                self.model,
                tensor([p[0] for p in prepared]),
                tensor([p[1] for p in prepared]),
                tensor([p[2] for p in prepared]),
                self.max_context,
                pred_len,
                self.clip,
                T,
                top_k,
                top_p,
                sample_count,
                verbose,
                self.use_cache,
            )
            paths = decode_tokens(self.tokenizer, tokens, self.max_context, self.use_cache)
        return paths[:, :, -pred_len:].float().cpu().numpy()

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
        prepared = [self._prepare(df, x_timestamp, y_timestamp, _check_pred_len(pred_len), "df")]
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
        prepared = self._prepare_batch(df_list, x_timestamp_list, y_timestamp_list, _check_pred_len(pred_len))
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
        prepared = [self._prepare(df, x_timestamp, y_timestamp, _check_pred_len(pred_len), "df")]
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
        prepared = self._prepare_batch(df_list, x_timestamp_list, y_timestamp_list, _check_pred_len(pred_len))
        return self._price_paths(prepared, pred_len, T, top_k, top_p, sample_count, verbose)

    def _price_paths(self, prepared, pred_len, T, top_k, top_p, sample_count, verbose) -> np.ndarray:
        paths = self._sample(prepared, pred_len, T, top_k, top_p, sample_count, verbose)
        return np.stack([denormalize(p, prep[3], prep[4]) for p, prep in zip(paths, prepared)])


def _check_pred_len(pred_len) -> int:
    if isinstance(pred_len, bool) or not isinstance(pred_len, (int, np.integer)) or pred_len <= 0:
        raise ValueError(f"pred_len must be a positive integer, got {pred_len!r}")
    return int(pred_len)


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
