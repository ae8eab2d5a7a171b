"""kronos.forecasting.predictor: the core (`sample`, `fit_calibration`, `Forecast`) and what it
leaves alone (the caller's model and tokenizer)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kronos import KronosPredictor
from kronos.engine.sampling import PATHS, TEMPERATURE, TOP_P, Sampling
from kronos.forecasting.calibration import Calibration, history_volatility
from kronos.forecasting.predictor import Forecast
from kronos.forecasting.series import FEATURE_COLUMNS, Series


def tiny_series(tiny_ohlcv: pd.DataFrame, start: int, stop: int, key: object) -> Series:
    frame = tiny_ohlcv.iloc[start:stop]
    return Series.from_frame(frame[FEATURE_COLUMNS], frame["timestamps"], key=key, name=f"s{key}")


def test_sampling_has_one_set_of_defaults():
    assert Sampling() == Sampling(TEMPERATURE, 0, TOP_P, PATHS, None)
    assert (TEMPERATURE, TOP_P, PATHS) == (1.0, 0.9, 20)


def test_sample_gives_predict_paths_batch_bit_for_bit(tiny_predictor, tiny_ohlcv):
    """Histories of different lengths in one call, each seeded by its key: the core's paths are the
    adapter's, and each series' are its own whatever it is sampled with."""
    spans = [(0, 40, "a"), (10, 60, "b"), (30, 70, 7)]
    series = [tiny_series(tiny_ohlcv, *span) for span in spans]
    futures = [pd.DatetimeIndex(tiny_ohlcv["timestamps"].iloc[stop : stop + 5]) for _, stop, _ in spans]
    sampling = Sampling(sample_count=6, seed=13)
    forecast = tiny_predictor.sample(series, 5, sampling, future=futures)
    assert isinstance(forecast, Forecast)
    assert forecast.paths.shape == (3, 6, 5, 6) and forecast.paths.dtype == np.float32
    assert forecast.keys == ["a", "b", 7]
    frames = [tiny_ohlcv.iloc[a:b] for a, b, _ in spans]
    paths = tiny_predictor.predict_paths_batch(
        [f[FEATURE_COLUMNS] for f in frames], [f["timestamps"] for f in frames], futures, 5,
        sampling=Sampling(sample_count=6, seed=13), series_ids=["a", "b", 7],
    )  # fmt: skip
    np.testing.assert_array_equal(forecast.paths, paths)
    alone = tiny_predictor.sample(series[1], 5, sampling, future=futures[1])
    np.testing.assert_array_equal(alone.paths[0], forecast.paths[1])
    np.testing.assert_array_equal(forecast.last_close, [np.float32(f["close"].iloc[-1]) for f in frames])


def test_sample_infers_the_future_and_summary_equals_predict_quantiles(tiny_predictor, tiny_ohlcv):
    series = tiny_series(tiny_ohlcv, 0, 50, 0)
    forecast = tiny_predictor.sample(series, 4, Sampling(sample_count=9, seed=2))
    table = tiny_predictor.predict_quantiles(
        tiny_ohlcv[FEATURE_COLUMNS].iloc[:50], tiny_ohlcv["timestamps"].iloc[:50], None, 4,
        quantile_levels=(0.2, 0.8), sampling=Sampling(sample_count=9, seed=2),
    )  # fmt: skip
    assert forecast.future[0].equals(table.index)
    summary = forecast.summary((0.2, 0.8))
    assert list(summary) == list(table.columns)
    for column, values in summary.items():
        np.testing.assert_array_equal(values[0], table[column].to_numpy())


def test_fit_calibration_is_calibrate_and_calibrates_sample(tiny_predictor, tiny_ohlcv):
    frame = tiny_ohlcv.iloc[:160]
    series = Series.from_frame(frame[FEATURE_COLUMNS], frame["timestamps"], key="x")
    sampling = Sampling(sample_count=8, seed=1)
    fitted = tiny_predictor.fit_calibration(series, 3, sampling, lookback=40)
    same = tiny_predictor.calibrate(
        frame[FEATURE_COLUMNS],
        frame["timestamps"],
        3,
        lookback=40,
        sampling=Sampling(sample_count=8, seed=1),
        series_id="x",
    )
    assert isinstance(fitted, Calibration) and fitted.origins == same.origins == 118  # t = 40, 41, ..., 157
    for field in ("shrink", "weight", "misses"):
        np.testing.assert_array_equal(getattr(fitted, field), getattr(same, field))
    history = series.window(120, 160)
    raw = tiny_predictor.sample(history, 3, sampling)
    calibrated = tiny_predictor.sample(history, 3, sampling, fitted)
    assert calibrated.calibrations == [fitted]
    volatility = history_volatility(history.bars[:, 3].astype(np.float32))  # of the closes the model saw
    expected = fitted.apply(raw.paths[0], raw.last_close[0], volatility)
    np.testing.assert_array_equal(calibrated.paths[0], expected.astype(np.float32))
    with pytest.raises(ValueError, match="sampled with"):
        tiny_predictor.sample(history, 3, Sampling(sample_count=8, seed=1, top_p=0.5), fitted)


def test_sample_refuses_what_it_cannot_forecast(tiny_predictor, tiny_ohlcv):
    series = tiny_series(tiny_ohlcv, 0, 30, 0)
    with pytest.raises(TypeError, match=r"series\[0\] must be a kronos.forecasting.series.Series"):
        tiny_predictor.sample([tiny_ohlcv], 3)
    with pytest.raises(ValueError, match="series must hold at least one Series"):
        tiny_predictor.sample([], 3)
    with pytest.raises(TypeError, match="sampling must be"):
        tiny_predictor.sample(series, 3, {"seed": 1})
    with pytest.raises(ValueError, match="future has 2 entries for 1 series"):
        tiny_predictor.sample(series, 3, future=[series.timestamps[:3], series.timestamps[:3]])
    with pytest.raises(ValueError, match="future of s0 starts at .* not after the history's last"):
        tiny_predictor.sample(series, 3, future=series.timestamps[-3:])
    with pytest.raises(ValueError, match="horizon must be a positive integer"):
        tiny_predictor.sample(series, 0)


def test_series_checks_its_bars_and_timestamps(tiny_ohlcv):
    stamps = pd.DatetimeIndex(tiny_ohlcv["timestamps"].iloc[:5])
    bars = tiny_ohlcv[FEATURE_COLUMNS].iloc[:5].to_numpy()
    one = Series(bars, stamps, key="k", name="k")
    assert len(one) == 5 and one.bars.dtype == np.float64
    assert list(one.frame().columns) == ["timestamps", *FEATURE_COLUMNS]
    part = one.window(1, 4, key=("k", 4))
    assert len(part) == 3 and part.key == ("k", 4) and part.timestamps[0] == stamps[1]
    with pytest.raises(ValueError, match=r"bars must be \[rows, 6\]"):
        Series(bars[:, :4], stamps)
    with pytest.raises(ValueError, match="has 5 bars but 4 timestamps"):
        Series(bars, stamps[:4])
    with pytest.raises(ValueError, match="not sorted by time"):
        Series(bars, stamps[::-1])
    broken = bars.copy()
    broken[2, 3] = np.nan
    with pytest.raises(ValueError, match="column 'close' is not finite at row 2"):
        Series(broken, stamps)


@pytest.mark.parametrize("dtype", [None, "bfloat16"])
def test_the_predictor_leaves_the_model_and_tokenizer_it_is_given_as_they_were(
    tiny_model, tiny_tokenizer, tiny_ohlcv, dtype
):
    """The session-wide fixture stays float32 and keeps its training flags: a predictor casts a copy
    where it needs another dtype or device, and works on the caller's own modules otherwise."""
    before = {name: p.detach().clone() for name, p in tiny_model.state_dict().items()}
    flags = tiny_model.training, tiny_tokenizer.training
    tiny_model.train()
    try:
        predictor = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64, dtype=dtype)
        predictor.sample(tiny_series(tiny_ohlcv, 0, 30, 0), 2, Sampling(sample_count=2, seed=0))
        assert tiny_model.training  # generation ran in eval mode and restored the flag
        assert (predictor.model is tiny_model) == (dtype is None)
        assert (predictor.tokenizer is tiny_tokenizer) == (dtype is None)
        if dtype is not None:
            assert next(predictor.model.parameters()).dtype == torch.bfloat16
        for name, value in tiny_model.state_dict().items():
            assert value.dtype == before[name].dtype
            torch.testing.assert_close(value, before[name], rtol=0, atol=0)
        assert all(p.dtype == torch.float32 for p in tiny_tokenizer.parameters())
    finally:
        tiny_model.train(flags[0])
        tiny_tokenizer.train(flags[1])
