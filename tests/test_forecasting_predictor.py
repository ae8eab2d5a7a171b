"""kronos.forecasting.predictor: the pandas adapters over the core
(`predict_paths`, `predict_quantiles`, `predict_df`, `calibrate`): seeded and batched paths, the
summaries, long tables and their missing data, the checks made before any work, threads, and what a
predictor leaves alone (the caller's model and tokenizer)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import history, quantiles, random_bars

from kronos import KronosPredictor
from kronos.engine.sampling import Sampling
from kronos.evaluation import Backtest, evaluate
from kronos.forecasting.calibration import PastOrigins, fit_origins, required_rows
from kronos.forecasting.core import ContextWarning
from kronos.forecasting.paths import VolatilityWarning, ohlc_violation_rate
from kronos.forecasting.schedules import GapWarning
from kronos.forecasting.series import FEATURE_COLUMNS
from kronos.forecasting.tables import TableOptions

torch.set_num_threads(1)


def long_table(ohlcv: pd.DataFrame, pieces: dict) -> pd.DataFrame:
    """Concatenate slices of the fixture, one per id, as a long table (index left duplicated)."""
    return pd.concat([ohlcv.iloc[rows].assign(id=key) for key, rows in pieces.items()])


def parts(ohlcv: pd.DataFrame, starts, length: int = 50, steps: int = 5):
    frames = [ohlcv.iloc[s : s + length] for s in starts]
    futures = [ohlcv["timestamps"].iloc[s + length : s + length + steps] for s in starts]
    return [f[FEATURE_COLUMNS] for f in frames], [f["timestamps"] for f in frames], futures


PRICES = ["open", "high", "low", "close"]


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
    mean = (
        tiny_predictor.predict(parts[0][0], parts[0][1], futures[0], 3, top_k=1, verbose=False)
        .to_numpy()
        .copy()
    )
    mean[:, 4:] = np.maximum(
        mean[:, 4:], 0
    )  # paths hold no negative volume or amount; upstream's predict does
    np.testing.assert_allclose(mean, batch[0].mean(axis=0), rtol=1e-5)


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
    for field in FEATURE_COLUMNS:
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


def test_seeded_paths_do_not_depend_on_the_global_generator_or_on_each_other(
    tiny_model, tiny_tokenizer, tiny_ohlcv
):
    predictor = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)
    dfs, stamps, futures = parts(tiny_ohlcv, (0, 100, 200))
    torch.manual_seed(1)
    together = predictor.predict_paths_batch(
        dfs, stamps, futures, 5, sampling=Sampling(sample_count=4, seed=7), series_ids="abc"
    )
    torch.manual_seed(2)
    alone = predictor.predict_paths(
        dfs[2], stamps[2], futures[2], 5, sampling=Sampling(sample_count=4, seed=7), series_id="c"
    )
    np.testing.assert_array_equal(together[2], alone)
    assert np.ptp(alone[:, :, 3], axis=0).max() > 0  # the paths differ from one another
    other_seed = predictor.predict_paths(
        dfs[2], stamps[2], futures[2], 5, sampling=Sampling(sample_count=4, seed=8), series_id="c"
    )
    assert not np.array_equal(alone, other_seed)
    # the cached engine draws the same tokens from the same numbers
    cached = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)
    np.testing.assert_allclose(
        cached.predict_paths_batch(
            dfs, stamps, futures, 5, sampling=Sampling(sample_count=4, seed=7), series_ids="abc"
        ),
        together,
        rtol=1e-4,
        atol=0.05,  # amount swings through zero on a scale of 1e4
    )


def test_histories_beyond_the_context_warn_and_can_be_trimmed(tiny_model, tiny_tokenizer, tiny_ohlcv):
    predictor = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)
    frame, future = tiny_ohlcv.iloc[:100], tiny_ohlcv["timestamps"].iloc[100:104]
    with pytest.warns(ContextWarning, match="history of 100 bars is longer than the model's context of 64"):
        predictor.predict_paths(
            frame[FEATURE_COLUMNS], frame["timestamps"], future, 4, sampling=Sampling(sample_count=2, seed=0)
        )
    trimmed = KronosPredictor(
        tiny_model, tiny_tokenizer, device="cpu", max_context=64, normalize_on="context"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ContextWarning)
        full = trimmed.predict_paths(
            frame[FEATURE_COLUMNS], frame["timestamps"], future, 4, sampling=Sampling(sample_count=2, seed=0)
        )
    last = frame.iloc[-64:]
    expected = predictor.predict_paths(
        last[FEATURE_COLUMNS], last["timestamps"], future, 4, sampling=Sampling(sample_count=2, seed=0)
    )
    np.testing.assert_array_equal(full, expected)


def test_calibrate_needs_enough_history_and_the_same_sampling(tiny_predictor, tiny_ohlcv):
    short = tiny_ohlcv.iloc[: required_rows(32, 4) - 1]
    with pytest.raises(ValueError, match=f"needs at least {required_rows(32, 4)} bars"):
        tiny_predictor.calibrate(
            short,
            short["timestamps"],
            4,
            sampling=Sampling(sample_count=4, seed=0),
            past=PastOrigins(lookback=32),
        )
    bars = tiny_ohlcv.iloc[:200]
    calibration = tiny_predictor.calibrate(
        bars, bars["timestamps"], 4, sampling=Sampling(sample_count=4, seed=1), past=PastOrigins(lookback=32)
    )
    assert calibration.origins == len(fit_origins(200, 32, 4)) and calibration.lookback == 32
    history = bars.iloc[-32:]
    with pytest.raises(ValueError, match="sampled with"):
        tiny_predictor.predict_quantiles(
            history[FEATURE_COLUMNS],
            history["timestamps"],
            None,
            4,
            sampling=Sampling(top_p=1.0),
            calibration=calibration,
        )
    with pytest.raises(ValueError, match="fitted for 4 steps; this forecast has 6"):
        tiny_predictor.predict_quantiles(
            history[FEATURE_COLUMNS], history["timestamps"], None, 6, calibration=calibration
        )
    table = pd.concat([bars.assign(id="a"), bars.assign(id="b")])
    with pytest.raises(ValueError, match=r"calibration has no entry for id \['b'\]"):
        tiny_predictor.predict_df(table, prediction_length=4, calibration={"a": calibration})
    both = tiny_predictor.predict_df(
        table,
        prediction_length=4,
        sampling=Sampling(sample_count=4, seed=2),
        calibration={"a": calibration, "b": calibration},
    )
    plain = tiny_predictor.predict_df(table, prediction_length=4, sampling=Sampling(sample_count=4, seed=2))
    width = lambda t: (t["close_q0.9"] - t["close_q0.1"]).to_numpy()  # noqa: E731
    assert not np.allclose(width(both), width(plain))
    np.testing.assert_allclose(both["volume_mean"], plain["volume_mean"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1e300, r"df column 'close' has values too large for float32.*1e\+300 at row 5"),
        (1e-300, r"df column 'close' has values too small for float32.*1e-300 at row 5"),
    ],
)
def test_values_float32_cannot_hold_are_refused_naming_column_and_row(tiny_predictor, value, message):
    frame = random_bars(40)
    frame.loc[5, "close"] = value
    with pytest.raises(ValueError, match=message):
        quantiles(tiny_predictor, frame)


def test_a_column_whose_statistics_overflow_float32_is_refused_naming_it(tiny_predictor):
    frame = random_bars(40).assign(volume=lambda f: f["volume"] * 1e20)  # its squares overflow float32
    with pytest.raises(ValueError, match=r"df column 'volume': its mean and standard deviation .* float32"):
        quantiles(tiny_predictor, frame)


@pytest.mark.parametrize("last", [0.0, -2.0])
def test_a_last_close_without_log_returns_is_refused_before_any_work(tiny_predictor, last):
    frame = random_bars(40)
    frame.loc[39, ["open", "high", "low", "close"]] = last
    with pytest.raises(
        ValueError, match=f"the last close of df is {last:g}: realised volatility .* log returns"
    ):
        quantiles(tiny_predictor, frame)
    paths = tiny_predictor.predict_paths(
        frame[FEATURE_COLUMNS[:5]],
        frame["timestamps"],
        pd.date_range("2024-03-01", periods=3),
        3,
        sampling=Sampling(seed=0),
    )
    assert np.isfinite(paths).all()  # the raw paths need no log returns


def test_undefined_volatility_comes_with_a_warning_naming_the_step(tiny_predictor):
    """A history that crosses zero: some sampled closes are negative, and where no path has a
    positive close the realised volatility is NaN, said so by a VolatilityWarning."""
    frame = random_bars(40)
    level = np.where(np.arange(40) < 20, -100.0, 100.0) + np.linspace(0, 1, 40)
    frame[PRICES] = np.repeat(level[:, None], 4, axis=1)
    frame.loc[39, PRICES] = 0.01
    with pytest.warns(VolatilityWarning, match=r"realized_vol is NaN at \d+ steps: from step \d+ of df"):
        table = quantiles(tiny_predictor, frame, steps=8, top_k=1)
    assert table["realized_vol"].isna().any()
    assert np.isfinite(table.drop(columns="realized_vol").to_numpy()).all()


def test_every_method_forecasts_beyond_the_context(tiny_model, tiny_tokenizer, tiny_ohlcv):
    predictor = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=16)
    history, stamps = tiny_ohlcv.iloc[:30][FEATURE_COLUMNS], tiny_ohlcv["timestamps"].iloc[:30]
    future = tiny_ohlcv["timestamps"].iloc[30:70]
    mean = predictor.predict(history, stamps, future, 40, sample_count=3, verbose=False, seed=1)
    paths = predictor.predict_paths(history, stamps, future, 40, sampling=Sampling(sample_count=3, seed=1))
    table = predictor.predict_quantiles(history, stamps, None, 40, sampling=Sampling(sample_count=3, seed=1))
    assert mean.shape == (40, 6) and paths.shape == (3, 40, 6) and len(table) == 40
    assert np.isfinite(mean.to_numpy()).all() and np.isfinite(paths).all()
    # one seed, one set of paths: the same prices; volume and amount clipped at 0 in the paths (not in
    # upstream's predict), so their mean is at least upstream's mean clipped
    np.testing.assert_allclose(mean.to_numpy()[:, :4], paths.mean(axis=0)[:, :4], rtol=1e-4)
    clipped = np.maximum(mean.to_numpy()[:, 4:], 0)
    assert (paths.mean(axis=0)[:, 4:] >= clipped - 1e-4 * np.abs(clipped).max()).all()
    result = evaluate(
        tiny_ohlcv.iloc[:120],
        predictor,
        Backtest(lookback=30, steps=40, origins=2, sampling=Sampling(sample_count=2, seed=0)),
        progress=False,
    )
    assert result.forecasts["kronos"][1].shape == (2, 2, 40, 6)
    assert np.isfinite(result.records["forecast"]).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(sample_count=True), "sample_count must be >= 1"),
        (dict(sample_count=10**9), "sample_count must be at most 10,000 paths"),
        (dict(T=1e-40), "temperature T must be finite and at least 0.0001"),
        (dict(T=float("inf")), "temperature T must be finite"),
        (dict(pred_len=10**12), "pred_len must be at most 10,000 steps"),
    ],
)
def test_arguments_are_checked_before_any_work(tiny_predictor, change, message):
    frame = random_bars(40)
    args = dict(pred_len=3, sample_count=2, seed=0) | change
    pred_len = args.pop("pred_len")
    with pytest.raises(ValueError, match=message):
        tiny_predictor.predict_quantiles(
            frame.drop(columns="timestamps"), frame["timestamps"], None, pred_len, sampling=Sampling(**args)
        )


@pytest.mark.parametrize("freq", ["-1D", "0h"])
def test_a_freq_that_does_not_step_forward_is_refused(tiny_predictor, freq):
    table = random_bars(40).assign(id="a")
    with pytest.raises(ValueError, match=f"freq '{freq[:-1]}.*' does not step forward in time"):
        tiny_predictor.predict_df(
            table, prediction_length=3, sampling=Sampling(sample_count=2), table=TableOptions(freq=freq)
        )


def test_caps_on_history_and_returned_paths_name_themselves(tiny_predictor):
    long = random_bars(20_001, "min")
    with pytest.raises(ValueError, match="20,001 bars of history, more than the 20,000 the tokenizer takes"):
        tiny_predictor.predict_paths(
            long[FEATURE_COLUMNS[:5]], long["timestamps"], pd.date_range("2025-01-01", periods=2), 2
        )
    frame = random_bars(40)
    with pytest.raises(
        ValueError, match=r"1 series x 10,000 paths x 10,000 steps .* more than the 268,435,456"
    ):
        tiny_predictor.predict_paths(
            frame[FEATURE_COLUMNS[:5]], frame["timestamps"], pd.date_range("2024-03-01", periods=10_000),
            10_000, sampling=Sampling(sample_count=10_000),
        )  # fmt: skip


def test_a_zoned_intraday_session_across_a_clock_change_keeps_its_local_hours(tiny_predictor):
    days = pd.bdate_range("2024-03-01", "2024-03-15")
    local = [
        pd.Timestamp(f"{d.date()} 09:30") + pd.Timedelta(minutes=30 * i) for d in days for i in range(13)
    ]
    frame = random_bars(len(local)).assign(timestamps=pd.DatetimeIndex(local).tz_localize("America/New_York"))
    table = quantiles(tiny_predictor, frame, steps=14)
    assert table.index[0] == pd.Timestamp("2024-03-18 09:30", tz="America/New_York")
    assert table.index[-1] == pd.Timestamp("2024-03-19 09:30", tz="America/New_York")


def test_column_names_are_matched_in_any_case_as_the_cli_does(tiny_predictor, tiny_ohlcv):
    bars, stamps = history(tiny_ohlcv, slice(0, 60))
    future = tiny_ohlcv["timestamps"].iloc[60:63]
    seeded = Sampling(sample_count=4, seed=3)
    lower = tiny_predictor.predict_paths(bars, stamps, future, 3, sampling=seeded)
    shouting = bars.rename(columns=str.upper).rename(columns={"CLOSE": "Close"})
    np.testing.assert_array_equal(
        tiny_predictor.predict_paths(shouting, stamps, future, 3, sampling=seeded), lower
    )
    table = tiny_ohlcv.iloc[:60].assign(id="a").rename(columns={"open": "Open", "volume": "VOLUME"})
    mixed = tiny_predictor.predict_df(table, prediction_length=3, sampling=seeded)
    plain = tiny_predictor.predict_df(
        tiny_ohlcv.iloc[:60].assign(id="a"), prediction_length=3, sampling=seeded
    )
    pd.testing.assert_frame_equal(mixed, plain)


def test_duplicated_columns_are_refused_by_name(tiny_predictor, tiny_ohlcv):
    bars, stamps = history(tiny_ohlcv, slice(0, 60))
    future = tiny_ohlcv["timestamps"].iloc[60:63]
    both = bars.assign(Close=bars["close"] * 2)
    with pytest.raises(ValueError, match="df has two columns for 'close': 'close' and 'Close'"):
        tiny_predictor.predict_paths(both, stamps, future, 3)
    repeated = pd.concat([bars, bars[["high"]]], axis=1)
    with pytest.raises(ValueError, match="two columns for 'high': 'high' and 'high'"):
        tiny_predictor.calibrate(repeated, stamps, 3)
    table = tiny_ohlcv.iloc[:60].assign(id="a", LOW=1.0)
    with pytest.raises(ValueError, match="two columns for 'low': 'low' and 'LOW'"):
        tiny_predictor.predict_df(table, prediction_length=3)


def test_the_default_quantile_levels_are_the_clis(tiny_predictor, tiny_ohlcv):
    from kronos.commands.main import build_parser
    from kronos.forecasting.paths import DEFAULT_QUANTILE_LEVELS

    bars, stamps = history(tiny_ohlcv, slice(0, 60))
    table = tiny_predictor.predict_quantiles(bars, stamps, None, 2, sampling=Sampling(sample_count=4, seed=0))
    assert [c for c in table.columns if c.startswith("close_q")] == [
        f"close_q{q:g}" for q in DEFAULT_QUANTILE_LEVELS
    ]
    args = build_parser().parse_args(["forecast", "x.csv", "--steps", "2"])
    assert tuple(float(q) for q in args.quantiles.split(",")) == DEFAULT_QUANTILE_LEVELS


def test_the_constructor_checks_the_types_of_model_and_tokenizer(tiny_model, tiny_tokenizer):
    with pytest.raises(TypeError, match="model must be a kronos.nn.model.Kronos"):
        KronosPredictor("NeoQuasar/Kronos-small", tiny_tokenizer)
    with pytest.raises(TypeError, match="tokenizer must be a kronos.nn.tokenizer.KronosTokenizer"):
        KronosPredictor(tiny_model, tiny_model)
    with pytest.raises(ValueError, match="max_context must be a positive integer"):
        KronosPredictor(tiny_model, tiny_tokenizer, max_context=64.0)
    with pytest.raises(ValueError, match="max_context must be at most 16,384 bars, got 100,000,000"):
        KronosPredictor(tiny_model, tiny_tokenizer, max_context=100_000_000)


def test_every_argument_of_the_public_methods_is_type_checked(tiny_predictor, tiny_ohlcv):
    bars, stamps = history(tiny_ohlcv, slice(0, 60))
    future = tiny_ohlcv["timestamps"].iloc[60:62]
    with pytest.raises(TypeError, match="repair_ohlc must be True or False, got str 'no'"):
        tiny_predictor.predict_quantiles(bars, stamps, None, 2, repair_ohlc="no")
    with pytest.raises(TypeError, match="verbose must be True or False, got int 3"):
        tiny_predictor.predict_paths(bars, stamps, future, 2, verbose=3)
    with pytest.raises(TypeError, match="verbose must be True or False"):
        tiny_predictor.predict_df(tiny_ohlcv.iloc[:60].assign(id=1), prediction_length=2, verbose="yes")
    with pytest.raises(TypeError, match="calibration must be a kronos.forecasting.calibration.Calibration"):
        tiny_predictor.predict_quantiles(bars, stamps, None, 2, calibration=3)
    with pytest.raises(TypeError, match=r"calibration\[0\] must be a Calibration or None, got str"):
        tiny_predictor.predict_paths_batch([bars], [stamps], [future], 2, calibrations=["x"])
    with pytest.raises(TypeError, match="series_ids must be a list of ids, one per DataFrame, got int"):
        tiny_predictor.predict_paths_batch([bars], [stamps], [future], 2, series_ids=5)
    with pytest.raises(TypeError, match="model must be a name"):
        KronosPredictor.from_pretrained(3)
    with pytest.raises(TypeError, match="tokenizer must be a name"):
        KronosPredictor.from_pretrained("kronos-default", 3)
