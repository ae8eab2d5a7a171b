"""Probabilistic forecasts: predict_paths, predict_quantiles and the long-format predict_df."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kronos.engine.sampling import Sampling
from kronos.forecasting.paths import (
    DEFAULT_QUANTILE_LEVELS,
    ohlc_violation_rate,
    ohlc_violations,
    path_statistics,
    realized_volatility,
    repair_ohlc,
)
from kronos.forecasting.schedules import GapWarning
from kronos.forecasting.tables import TableOptions

torch.set_num_threads(1)

BAR_COLUMNS = ["open", "high", "low", "close", "volume", "amount"]


def long_table(ohlcv: pd.DataFrame, pieces: dict) -> pd.DataFrame:
    """Concatenate slices of the fixture, one per id, as a long table (index left duplicated)."""
    return pd.concat([ohlcv.iloc[rows].assign(id=key) for key, rows in pieces.items()])


def history(ohlcv: pd.DataFrame, rows: slice):
    part = ohlcv.iloc[rows]
    return part[BAR_COLUMNS], part["timestamps"]


def test_predict_paths_is_reproducible_with_a_seed(tiny_predictor, tiny_ohlcv):
    bars, stamps = history(tiny_ohlcv, slice(0, 96))
    future = tiny_ohlcv["timestamps"].iloc[96:101]
    torch.manual_seed(7)
    first = tiny_predictor.predict_paths(bars, stamps, future, 5, sampling=Sampling(sample_count=8))
    torch.manual_seed(7)
    second = tiny_predictor.predict_paths(bars, stamps, future, 5, sampling=Sampling(sample_count=8))
    torch.manual_seed(8)
    other = tiny_predictor.predict_paths(bars, stamps, future, 5, sampling=Sampling(sample_count=8))
    assert first.shape == (8, 5, 6)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    assert np.ptp(first[:, :, 3], axis=0).max() > 0  # the paths differ from one another


def test_predict_paths_batch_matches_predict_paths_in_greedy_mode(tiny_predictor, tiny_ohlcv):
    parts = [history(tiny_ohlcv, slice(start, start + 50)) for start in (0, 100)]
    futures = [tiny_ohlcv["timestamps"].iloc[start + 50 : start + 53] for start in (0, 100)]
    batch = tiny_predictor.predict_paths_batch(
        [p[0] for p in parts], [p[1] for p in parts], futures, 3, sampling=Sampling(top_k=1, sample_count=2)
    )
    assert batch.shape == (2, 2, 3, 6)
    for (bars, stamps), future, paths in zip(parts, futures, batch):
        alone = tiny_predictor.predict_paths(
            bars, stamps, future, 3, sampling=Sampling(top_k=1, sample_count=2)
        )
        np.testing.assert_allclose(paths, alone, rtol=1e-5)
        np.testing.assert_array_equal(paths[0], paths[1])  # greedy: every path is the same
    mean = tiny_predictor.predict(parts[0][0], parts[0][1], futures[0], 3, top_k=1, verbose=False)
    np.testing.assert_allclose(mean.to_numpy(), batch[0].mean(axis=0), rtol=1e-5)


def test_predict_quantiles_summarises_the_paths(tiny_predictor, tiny_ohlcv):
    bars, stamps = history(tiny_ohlcv, slice(0, 96))
    future = tiny_ohlcv["timestamps"].iloc[96:102]
    torch.manual_seed(3)
    paths = tiny_predictor.predict_paths(bars, stamps, future, 6, sampling=Sampling(sample_count=16))
    torch.manual_seed(3)
    table = tiny_predictor.predict_quantiles(
        bars, stamps, future, 6, sampling=Sampling(sample_count=16), repair_ohlc=False
    )
    assert list(table.index) == list(future)
    np.testing.assert_allclose(table["close_mean"], paths[:, :, 3].mean(axis=0), rtol=1e-6)
    # the quantile at 0.9 of 16 paths is the order statistic of rank 0.9 x 17 = 15.3, interpolated
    ordered = np.sort(paths[:, :, 1], axis=0).astype(np.float64)
    expected = ordered[14] + 0.3 * (ordered[15] - ordered[14])
    np.testing.assert_allclose(table["high_q0.9"], expected, rtol=1e-6)
    last_close = bars["close"].iloc[-1]
    np.testing.assert_allclose(table["prob_close_above_last"], (paths[:, :, 3] > last_close).mean(axis=0))
    returns = np.diff(np.log(np.concatenate([np.full((16, 1), last_close), paths[:, :, 3]], axis=1)), axis=1)
    horizon_vol = np.sqrt((returns**2).sum(axis=1)).mean()
    assert table.attrs["realized_vol"] == pytest.approx(horizon_vol, rel=1e-5)
    assert table["realized_vol"].is_monotonic_increasing
    assert table.attrs["ohlc_violation_rate"] == pytest.approx(ohlc_violation_rate(paths))


def test_quantiles_do_not_decrease_with_the_level(tiny_predictor, tiny_ohlcv):
    bars, stamps = history(tiny_ohlcv, slice(0, 120))
    levels = (0.05, 0.25, 0.5, 0.75, 0.95)
    torch.manual_seed(0)
    table = tiny_predictor.predict_quantiles(
        bars, stamps, None, 8, quantile_levels=levels, sampling=Sampling(sample_count=20)
    )
    for field in BAR_COLUMNS:
        values = table[[f"{field}_q{q:g}" for q in levels]].to_numpy()
        assert (np.diff(values, axis=1) >= 0).all(), field
        assert (values[:, -1] - values[:, 0] > 0).any(), field  # a real spread, not one repeated path
    # repaired bars: every quantile of high is at least the same quantile of open, close and low
    for q in levels:
        for other in ("open", "close", "low"):
            assert (table[f"high_q{q:g}"] >= table[f"{other}_q{q:g}"] - 1e-9).all()


def test_predict_quantiles_infers_session_timestamps(tiny_predictor, tiny_ohlcv):
    # the fixture trades 09:35-13:30 on weekdays; 96 bars end at 13:30 on the second day
    bars, stamps = history(tiny_ohlcv, slice(0, 96))
    table = tiny_predictor.predict_quantiles(bars, stamps, None, 4, sampling=Sampling(sample_count=2))
    assert list(table.index) == list(tiny_ohlcv["timestamps"].iloc[96:100])
    assert table.index[0] == pd.Timestamp("2024-03-06 09:35")


def test_predict_df_round_trips_ids_and_timestamps_in_input_order(tiny_predictor, tiny_ohlcv):
    pieces = {30: slice(0, 80), 10: slice(50, 150), 20: slice(0, 100), 5: slice(200, 290)}
    frame = long_table(tiny_ohlcv, pieces)
    torch.manual_seed(0)
    out = tiny_predictor.predict_df(
        frame, prediction_length=3, sampling=Sampling(sample_count=4), batch_size=2
    )
    assert list(out.columns[:2]) == ["id", "timestamps"]
    assert out["id"].tolist() == [30] * 3 + [10] * 3 + [20] * 3 + [5] * 3
    assert out["id"].dtype == frame["id"].dtype
    stamps = tiny_ohlcv["timestamps"]
    expected = [stamps.iloc[r.stop : r.stop + 3] for r in pieces.values()]
    assert out["timestamps"].tolist() == [t for part in expected for t in part]
    assert {"close_mean", "close_q0.1", "close_q0.9", "volume_q0.5", "prob_close_above_last"} <= set(
        out.columns
    )
    assert out.attrs["ohlc_violation_rate"] == pytest.approx(
        np.average(out["ohlc_violation_rate"], weights=np.full(len(out), 1.0))
    )


def test_predict_df_accepts_interleaved_series(tiny_predictor, tiny_ohlcv):
    frame = long_table(tiny_ohlcv, {"x": slice(0, 60), "y": slice(100, 160)})
    shuffled = frame.sort_values("timestamps", kind="stable")  # rows of x and y interleave in time
    grouped = tiny_predictor.predict_df(
        frame, prediction_length=2, sampling=Sampling(top_k=1, sample_count=1)
    )
    mixed = tiny_predictor.predict_df(
        shuffled, prediction_length=2, sampling=Sampling(top_k=1, sample_count=1)
    )
    pd.testing.assert_frame_equal(grouped, mixed)


def test_mixed_length_batch_equals_single_series_greedy(tiny_predictor, tiny_ohlcv):
    # histories of 30, 45, 45, 60 and 64 bars (max_context); "f" is cut to its last 64 bars
    pieces = {
        "a": slice(0, 30),
        "b": slice(20, 65),
        "c": slice(100, 145),
        "d": slice(0, 60),
        "e": slice(5, 69),
        "f": slice(200, 300),
    }
    frame = long_table(tiny_ohlcv, pieces)
    together = tiny_predictor.predict_df(
        frame, prediction_length=4, sampling=Sampling(top_k=1, sample_count=3), batch_size=3
    )
    for key, rows in pieces.items():
        alone = tiny_predictor.predict_df(
            frame[frame["id"] == key], prediction_length=4, sampling=Sampling(top_k=1, sample_count=3)
        )
        part = together[together["id"] == key].reset_index(drop=True)
        # equal up to float rounding: a batching bug moves values by ~1e-3 here
        pd.testing.assert_frame_equal(part, alone, rtol=1e-5)
        bars, stamps = history(tiny_ohlcv, slice(max(rows.start, rows.stop - 64), rows.stop))
        single = tiny_predictor.predict_quantiles(
            bars, stamps, None, 4, sampling=Sampling(top_k=1, sample_count=3)
        )
        np.testing.assert_allclose(part["close_mean"], single["close_mean"], rtol=1e-5)
        np.testing.assert_allclose(part["high_q0.9"], single["high_q0.9"], rtol=1e-5)


def test_predict_df_of_one_series_matches_predict_quantiles_when_sampling(tiny_predictor, tiny_ohlcv):
    frame = long_table(tiny_ohlcv, {"only": slice(0, 60)})
    torch.manual_seed(11)
    out = tiny_predictor.predict_df(frame, prediction_length=5, sampling=Sampling(sample_count=6))
    bars, stamps = history(tiny_ohlcv, slice(0, 60))
    torch.manual_seed(11)
    single = tiny_predictor.predict_quantiles(bars, stamps, None, 5, sampling=Sampling(sample_count=6))
    columns = [c for c in out.columns if c not in ("id", "timestamps")]
    np.testing.assert_array_equal(out[columns].to_numpy(), single[columns].to_numpy())


def test_predict_df_uses_the_last_max_history_bars(tiny_predictor, tiny_ohlcv):
    full = long_table(tiny_ohlcv, {"s": slice(0, 200)})
    tail = long_table(tiny_ohlcv, {"s": slice(140, 200)})
    kwargs = dict(prediction_length=3, sampling=Sampling(top_k=1, sample_count=1))
    pd.testing.assert_frame_equal(
        tiny_predictor.predict_df(full, table=TableOptions(max_history=60), **kwargs),
        tiny_predictor.predict_df(tail, **kwargs),
    )
    default = tiny_predictor.predict_df(full, **kwargs)  # max_context = 64 bars
    last64 = tiny_predictor.predict_df(long_table(tiny_ohlcv, {"s": slice(136, 200)}), **kwargs)
    pd.testing.assert_frame_equal(default, last64)


def test_predict_df_custom_columns_and_freq(tiny_predictor, tiny_ohlcv):
    frame = long_table(tiny_ohlcv, {"s": slice(0, 40)}).rename(columns={"id": "ticker", "timestamps": "t"})
    out = tiny_predictor.predict_df(
        frame,
        id_column="ticker",
        timestamp_column="t",
        prediction_length=3,
        sampling=Sampling(sample_count=2),
        table=TableOptions(freq="h"),
    )
    assert list(out.columns[:2]) == ["ticker", "t"]
    start = tiny_ohlcv["timestamps"].iloc[39]
    assert out["t"].tolist() == [start + pd.Timedelta(hours=k) for k in (1, 2, 3)]


# --- missing data and gaps ---------------------------------------------------------------------


def test_nan_values_raise_by_default_naming_id_and_timestamp(tiny_predictor, tiny_ohlcv):
    frame = long_table(tiny_ohlcv, {"a": slice(0, 50), "b": slice(0, 50)}).reset_index(drop=True)
    frame.loc[70, "close"] = np.nan
    when = frame.loc[70, "timestamps"]
    with pytest.raises(ValueError, match=rf"'close'.*id='b', timestamps={when}.*nan_policy"):
        tiny_predictor.predict_df(frame, prediction_length=2)


def test_nan_policy_ffill_and_drop(tiny_predictor, tiny_ohlcv):
    frame = long_table(tiny_ohlcv, {"a": slice(0, 64)}).reset_index(drop=True)
    frame.loc[10, ["close", "volume"]] = np.nan
    kwargs = dict(prediction_length=2, sampling=Sampling(top_k=1, sample_count=1))
    filled = frame.copy()
    filled.loc[10, ["close", "volume"]] = frame.loc[9, ["close", "volume"]].to_numpy()
    pd.testing.assert_frame_equal(
        tiny_predictor.predict_df(frame, table=TableOptions(nan_policy="ffill"), **kwargs),
        tiny_predictor.predict_df(filled, **kwargs),
    )
    with pytest.warns(GapWarning, match=r"id='a': 1 missing, first at 2024-03-04 10:25:00"):
        dropped = tiny_predictor.predict_df(frame, table=TableOptions(nan_policy="drop"), **kwargs)
    pd.testing.assert_frame_equal(
        dropped,
        tiny_predictor.predict_df(frame.drop(index=10), table=TableOptions(on_gap="ignore"), **kwargs),
    )
    with pytest.raises(ValueError, match="nan_policy must be one of"):
        tiny_predictor.predict_df(frame, table=TableOptions(nan_policy="zero"), **kwargs)


def test_gaps_warn_raise_or_are_ignored(tiny_predictor, tiny_ohlcv):
    # 10:00 and 10:05 are missing on the first day only; the second day shows they are session slots
    frame = long_table(tiny_ohlcv, {"g": slice(0, 64)}).reset_index(drop=True).drop(index=[5, 6])
    with pytest.warns(GapWarning, match=r"id='g': 2 missing, first at 2024-03-04 10:00:00"):
        tiny_predictor.predict_df(frame, prediction_length=2, sampling=Sampling(sample_count=1))
    with pytest.raises(ValueError, match=r"gaps.*id='g'.*on_gap"):
        tiny_predictor.predict_df(
            frame, prediction_length=2, sampling=Sampling(sample_count=1), table=TableOptions(on_gap="raise")
        )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", GapWarning)
        tiny_predictor.predict_df(
            frame, prediction_length=2, sampling=Sampling(sample_count=1), table=TableOptions(on_gap="ignore")
        )


def test_irregular_timestamp_is_an_error_naming_it(tiny_predictor, tiny_ohlcv):
    frame = long_table(tiny_ohlcv, {"r": slice(0, 200)}).reset_index(drop=True)
    frame.loc[100, "timestamps"] += pd.Timedelta(minutes=2)
    odd = frame.loc[100, "timestamps"]
    with pytest.raises(ValueError, match=rf"id='r': irregular timestamp {odd}.*freq="):
        tiny_predictor.predict_df(frame, prediction_length=2, table=TableOptions(max_history=200))


def test_infinite_and_non_numeric_values_name_the_row(tiny_predictor, tiny_ohlcv):
    frame = long_table(tiny_ohlcv, {"a": slice(0, 30)}).reset_index(drop=True)
    frame.index = [f"r{i}" for i in range(len(frame))]
    frame.loc["r12", "high"] = np.inf
    with pytest.raises(ValueError, match=r"'high' has infinite values .*row 'r12'"):
        tiny_predictor.predict_df(frame, prediction_length=2, table=TableOptions(nan_policy="ffill"))
    frame["high"] = frame["high"].astype(object)
    frame.loc["r12", "high"] = "n/a"
    with pytest.raises(ValueError, match=r"'high' must be numeric.*'n/a' at row 'r12'"):
        tiny_predictor.predict_df(frame, prediction_length=2)


def test_verbose_shows_a_progress_bar_over_series(tiny_predictor, tiny_ohlcv, capsys):
    frame = long_table(tiny_ohlcv, {"a": slice(0, 30), "b": slice(0, 40), "c": slice(0, 40)})
    tiny_predictor.predict_df(
        frame, prediction_length=2, sampling=Sampling(sample_count=1), batch_size=1, verbose=True
    )
    assert "3/3" in capsys.readouterr().err


# --- bad input -----------------------------------------------------------------------------------


def test_duplicate_rows_are_rejected(tiny_predictor, tiny_ohlcv):
    frame = long_table(tiny_ohlcv, {"a": slice(0, 30), "b": slice(0, 30)})
    frame = pd.concat([frame.iloc[:40], frame.iloc[[39]], frame.iloc[40:]])
    with pytest.raises(ValueError, match=r"duplicate rows: 1 .*id='b' at 2024-03-04 10:20:00"):
        tiny_predictor.predict_df(frame, prediction_length=2)


def test_unsorted_rows_are_rejected(tiny_predictor, tiny_ohlcv):
    frame = long_table(tiny_ohlcv, {"a": slice(0, 30), "b": slice(0, 30)})
    frame = pd.concat([frame.iloc[:45], frame.iloc[46:47], frame.iloc[45:46], frame.iloc[47:]])
    with pytest.raises(ValueError, match=r"not sorted by time.*id='b' has 2024-03-04 10:50:00"):
        tiny_predictor.predict_df(frame, prediction_length=2)


def test_short_series_are_rejected(tiny_predictor, tiny_ohlcv):
    frame = long_table(tiny_ohlcv, {"long": slice(0, 40), "short": slice(0, 9)})
    with pytest.raises(ValueError, match=r"id='short' has 9 bars; at least min_history=10"):
        tiny_predictor.predict_df(frame, prediction_length=2)
    out = tiny_predictor.predict_df(
        frame, prediction_length=2, sampling=Sampling(sample_count=1), table=TableOptions(min_history=5)
    )
    assert out["id"].tolist() == ["long", "long", "short", "short"]
    with pytest.raises(ValueError, match="min_history must be at least 3"):
        tiny_predictor.predict_df(frame, prediction_length=2, table=TableOptions(min_history=2))


@pytest.mark.parametrize("levels", [(0.0, 0.5), (0.5, 1.0), (-0.1,), (1.5,), ()])
def test_quantile_levels_outside_the_open_unit_interval_are_rejected(tiny_predictor, tiny_ohlcv, levels):
    frame = long_table(tiny_ohlcv, {"a": slice(0, 30)})
    with pytest.raises(ValueError, match="quantile_levels"):
        tiny_predictor.predict_df(frame, prediction_length=2, quantile_levels=levels)
    bars, stamps = history(tiny_ohlcv, slice(0, 30))
    with pytest.raises(ValueError, match="quantile_levels"):
        tiny_predictor.predict_quantiles(bars, stamps, None, 2, quantile_levels=levels)


def test_missing_columns_are_named(tiny_predictor, tiny_ohlcv):
    frame = long_table(tiny_ohlcv, {"a": slice(0, 30)})
    with pytest.raises(ValueError, match=r"id_column 'symbol' is not a column of df"):
        tiny_predictor.predict_df(frame, id_column="symbol", prediction_length=2)
    with pytest.raises(ValueError, match=r"timestamp_column 'date' is not a column of df"):
        tiny_predictor.predict_df(frame, timestamp_column="date", prediction_length=2)
    with pytest.raises(ValueError, match=r"missing price column\(s\) \['low'\]"):
        tiny_predictor.predict_df(frame.drop(columns="low"), prediction_length=2)


@pytest.mark.parametrize(
    "kwargs, table, message",
    [
        (dict(prediction_length=0), {}, "prediction_length must be a positive integer"),
        (dict(prediction_length=2, batch_size=0), {}, "batch_size must be a positive integer"),
        (dict(prediction_length=2), dict(on_gap="maybe"), "on_gap must be one of"),
        (dict(prediction_length=2), dict(max_history=5), r"max_history \(5\) is below min_history"),
        (dict(prediction_length=2), dict(freq="fortnightly-ish"), "is not a pandas frequency"),
    ],
)
def test_bad_arguments_are_named(tiny_predictor, tiny_ohlcv, kwargs, table, message):
    frame = long_table(tiny_ohlcv, {"a": slice(0, 30)})
    with pytest.raises(ValueError, match=message):
        tiny_predictor.predict_df(frame, table=TableOptions(**table), **kwargs)


# --- path statistics on hand-made paths --------------------------------------------------------


def bar(o, h, lo, c):
    return [o, h, lo, c, 1.0, 1.0]


def test_ohlc_violations_and_repair():
    paths = np.array(
        [
            [bar(10, 11, 9, 10.5), bar(10, 9.5, 9, 10.5)],  # fine; high below close
            [bar(10, 11, 10.2, 10.5), bar(10, 9, 11, 10)],  # low above open; high below low
        ]
    )
    np.testing.assert_array_equal(ohlc_violations(paths), [[False, True], [True, True]])
    assert ohlc_violation_rate(paths) == 0.75
    fixed = repair_ohlc(paths)
    assert ohlc_violation_rate(fixed) == 0.0
    np.testing.assert_array_equal(fixed[1, 1, :4], [10, 11, 9, 10])
    np.testing.assert_array_equal(fixed[0, 1, :4], [10, 10.5, 9, 10.5])
    np.testing.assert_array_equal(fixed[..., [0, 3, 4, 5]], paths[..., [0, 3, 4, 5]])
    assert ohlc_violation_rate(paths) == 0.75  # the input is not modified


def test_realized_volatility_and_direction_by_hand():
    closes = np.array([[101.0, 99.0], [100.0, 100.0], [-1.0, 100.0]])
    paths = np.repeat(closes[:, :, None], 6, axis=2)
    vol = realized_volatility(paths, 100.0)
    r1, r2 = np.log(1.01), np.log(99 / 101)
    np.testing.assert_allclose(vol[0], [abs(r1), np.hypot(r1, r2)])
    np.testing.assert_allclose(vol[1], [0.0, 0.0])
    assert np.isnan(vol[2]).all()  # a non-positive close has no log return
    stats = path_statistics(paths, 100.0, (0.5,), repair=False)
    np.testing.assert_allclose(stats["prob_close_above_last"], [1 / 3, 0.0])
    np.testing.assert_allclose(stats["realized_vol"], [abs(r1) / 2, np.hypot(r1, r2) / 2])
    np.testing.assert_allclose(stats["close_q0.5"], [100.0, 100.0])
    assert list(stats)[:3] == ["open_mean", "open_q0.5", "high_mean"]


def test_default_levels_are_the_deciles():
    assert DEFAULT_QUANTILE_LEVELS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
