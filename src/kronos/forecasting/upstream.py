"""Upstream Kronos's API, with its names, signatures, defaults and numbers: `predict` and
`predict_batch` (methods of `KronosPredictor`, mixed in from `UpstreamMethods`) and
`auto_regressive_inference`. Their defaults (T=1, top_k=0, top_p=0.9, one path; 0.99 and five
paths for `auto_regressive_inference`) are upstream's, not the package's
(`kronos.engine.sampling.Sampling`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from kronos.engine.generation import SeriesBatch, decode_tokens, generate_tokens
from kronos.engine.sampling import Sampling
from kronos.forecasting.core import ForecastingCore
from kronos.forecasting.series import (
    FEATURE_COLUMNS,
    check_pred_len,
    series_list_with_futures,
    series_with_future,
)
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer


class UpstreamMethods(ForecastingCore):
    """`predict` and `predict_batch`: the mean of sampled paths, averaged before mapping back to prices."""

    def predict(
        self,
        df: pd.DataFrame,
        x_timestamp: object,
        y_timestamp: object,
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
        series, future = series_with_future(df, x_timestamp, y_timestamp, pred_len)
        (mean,) = self._mean_prices([series], [future], pred_len, sampling, verbose)
        return pd.DataFrame(mean, columns=FEATURE_COLUMNS, index=future)

    def predict_batch(
        self,
        df_list: list[pd.DataFrame],
        x_timestamp_list: list[object],
        y_timestamp_list: list[object],
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
        series, futures = series_list_with_futures(df_list, x_timestamp_list, y_timestamp_list, pred_len)
        lengths = sorted({len(one) for one in series})
        if len(lengths) > 1:
            raise ValueError(f"all series in one batch must have the same history length, got {lengths}")
        means = self._mean_prices(series, futures, pred_len, sampling, verbose)
        return [
            pd.DataFrame(mean, columns=FEATURE_COLUMNS, index=future) for mean, future in zip(means, futures)
        ]


def auto_regressive_inference(
    tokenizer: KronosTokenizer,
    model: Kronos,
    x: torch.Tensor,
    x_stamp: torch.Tensor,
    y_stamp: torch.Tensor,
    max_context: int,
    pred_len: int,
    clip: float = 5,
    T: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.99,
    sample_count: int = 5,
    verbose: bool = False,
) -> np.ndarray:
    """Sample `sample_count` paths per series and return their mean, decoded (upstream's signature).

    Returns float32 [S, max(min(H + pred_len, max_context), pred_len), d_in]: the decoded last
    window of history plus forecast (with any forecast before it, `decode_tokens`), so the
    forecast is `[:, -pred_len:]`.
    """
    if y_stamp.dim() < 2 or y_stamp.shape[1] != pred_len:
        raise ValueError(f"y_stamp shape {tuple(y_stamp.shape)} does not hold pred_len={pred_len} stamps")
    sampling = Sampling(T=T, top_k=top_k, top_p=top_p, sample_count=sample_count)
    batch = SeriesBatch(x, x_stamp, y_stamp)
    tokens = generate_tokens(tokenizer, model, batch, sampling, max_context, clip, verbose)
    decoded = decode_tokens(tokenizer, tokens, max_context).float().cpu().numpy()
    return np.asarray(decoded.mean(axis=1))
