"""kronos.forecasting.upstream: `predict`, `predict_batch` and `auto_regressive_inference` refuse bad
input with an error naming the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import random_bars

from kronos import auto_regressive_inference
from kronos.forecasting.series import FEATURE_COLUMNS


def call_predict(predictor, df, x_ts, y_ts, pred_len):
    return predictor.predict(df, x_ts, y_ts, pred_len=pred_len, top_k=1, verbose=False)


@pytest.fixture
def history(tiny_ohlcv):
    ts = tiny_ohlcv["timestamps"]
    return tiny_ohlcv.iloc[:40].drop(columns="timestamps"), ts.iloc[:40], ts.iloc[40:45]


def test_missing_price_column(tiny_predictor, history):
    df, x_ts, y_ts = history
    with pytest.raises(ValueError, match=r"missing price column\(s\) \['low'\]"):
        call_predict(tiny_predictor, df.drop(columns="low"), x_ts, y_ts, 5)


def test_nan_names_column_and_row(tiny_predictor, history):
    df, x_ts, y_ts = history
    df = df.copy()
    df.loc[df.index[7], "close"] = np.nan
    with pytest.raises(ValueError, match=r"column 'close' has NaN values .*row 7"):
        call_predict(tiny_predictor, df, x_ts, y_ts, 5)


def test_non_numeric_column(tiny_predictor, history):
    df, x_ts, y_ts = history
    df = df.copy()
    df["volume"] = df["volume"].astype(str)
    df.loc[df.index[3], "volume"] = "n/a"
    with pytest.raises(ValueError, match=r"column 'volume' must be numeric.*'n/a' at row 3"):
        call_predict(tiny_predictor, df, x_ts, y_ts, 5)


def test_history_and_timestamps_differ_in_length(tiny_predictor, history):
    df, x_ts, y_ts = history
    with pytest.raises(ValueError, match="40 rows but x_timestamp has 39"):
        call_predict(tiny_predictor, df, x_ts.iloc[1:], y_ts, 5)


@pytest.mark.parametrize("pred_len", [0, -3, 2.5])
def test_pred_len_must_be_positive_integer(tiny_predictor, history, pred_len):
    df, x_ts, y_ts = history
    with pytest.raises(ValueError, match="pred_len must be a positive integer"):
        call_predict(tiny_predictor, df, x_ts, y_ts, pred_len)


def test_y_timestamp_length_must_equal_pred_len(tiny_predictor, history):
    df, x_ts, y_ts = history
    with pytest.raises(ValueError, match="y_timestamp of df has 5 entries but pred_len is 6"):
        call_predict(tiny_predictor, df, x_ts, y_ts, 6)


def test_timestamps_must_be_datetimes(tiny_predictor, history):
    df, x_ts, y_ts = history
    with pytest.raises(ValueError, match="x_timestamp of df must hold timestamps"):
        call_predict(tiny_predictor, df, ["not a date"] * 40, y_ts, 5)


def test_predict_batch_needs_equal_lengths(tiny_predictor, tiny_ohlcv):
    ts = tiny_ohlcv["timestamps"]
    with pytest.raises(ValueError, match=r"same history length, got \[30, 40\]"):
        tiny_predictor.predict_batch(
            [tiny_ohlcv.iloc[:40], tiny_ohlcv.iloc[:30]],
            [ts.iloc[:40], ts.iloc[:30]],
            [ts.iloc[40:45], ts.iloc[30:35]],
            pred_len=5,
            verbose=False,
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"T": 0.0}, "temperature T must be positive"),
        ({"top_k": -1}, "top_k must be >= 0"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"sample_count": 0}, "sample_count must be >= 1"),
    ],
)
def test_sampling_arguments(tiny_model, tiny_tokenizer, kwargs, message):
    x, stamps = torch.zeros(1, 10, 6), torch.zeros(1, 13, 5)
    args = {"T": 1.0, "top_k": 0, "top_p": 0.9, "sample_count": 1} | kwargs
    with pytest.raises(ValueError, match=message):
        auto_regressive_inference(
            tiny_tokenizer, tiny_model, x, stamps[:, :10], stamps[:, 10:], 64, 3, **args
        )


def test_nat_inside_a_datetime_index_names_it(tiny_predictor):
    frame = random_bars(40)
    stamps = pd.DatetimeIndex(frame["timestamps"]).insert(3, pd.NaT).delete(4)
    with pytest.raises(ValueError, match="x_timestamp of df must hold timestamps: NaT at row 3"):
        tiny_predictor.predict(frame[FEATURE_COLUMNS[:5]], stamps, pd.date_range("2024-03-01", periods=2), 2)
