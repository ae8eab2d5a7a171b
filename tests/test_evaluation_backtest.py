"""Rolling-origin backtests: origins, baselines, leakage, data loading, the sanity check on a random walk."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from kronos import KronosPredictor
from kronos.engine.sampling import Sampling
from kronos.evaluation import (
    Backtest,
    drift,
    evaluate,
    gaussian_random_walk,
    persistence,
    read_series,
    select_origins,
)
from kronos.forecasting.predictor import Forecast
from kronos.forecasting.series import CLOSE


def random_walk_bars(n: int, seed: int = 0, sigma: float = 0.01, start="2024-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(sigma * rng.standard_normal(n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    volume = rng.uniform(100, 200, n)
    return pd.DataFrame(
        {
            "timestamps": pd.date_range(start, periods=n, freq="5min"),
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": volume,
            "amount": volume * close,
        }
    )


def test_select_origins():
    assert select_origins(20, 5, 3).tolist() == list(range(5, 18))
    assert select_origins(20, 5, 3, origins=4).tolist() == [5, 9, 13, 17]
    assert select_origins(20, 5, 3, every=5).tolist() == [7, 12, 17]
    assert select_origins(7, 5, 3).tolist() == []


def test_point_baselines_by_hand():
    history = np.array([[[1.0], [2.0], [4.0]]])  # one origin, lookback 3, one column
    point, paths = persistence(history, 2)
    assert point.ravel().tolist() == [4.0, 4.0] and paths.shape == (1, 1, 2, 1)
    point, paths = drift(history, 2)
    assert point.ravel().tolist() == [5.5, 7.0] and paths.shape == (1, 1, 2, 1)


def test_gaussian_random_walk_uses_the_lookback_volatility():
    bars = random_walk_bars(200, seed=1, sigma=0.02)
    history = bars[["open", "high", "low", "close", "volume", "amount"]].to_numpy()[None]
    point, paths = gaussian_random_walk(history, 3, 20_000, np.random.default_rng(0))
    closes = history[0, :, 3]
    sigma = np.diff(np.log(closes)).std(ddof=1)
    first_returns = np.log(paths[0, :, 0, 3] / closes[-1])
    assert first_returns.std() == pytest.approx(sigma, rel=0.03)
    assert np.log(paths[0, :, 2, 3] / closes[-1]).std() == pytest.approx(sigma * np.sqrt(3), rel=0.03)
    assert np.median(paths[0, :, 2, 3]) == pytest.approx(closes[-1], rel=0.01)
    assert point[0, :, 3].tolist() == [closes[-1]] * 3


def test_baseline_scores_match_hand_computation():
    bars = random_walk_bars(60, seed=2)
    result = evaluate(
        bars, None, Backtest(lookback=10, steps=2, every=7, baselines=("persistence",)), progress=False
    )
    close = bars["close"].to_numpy()
    rows = select_origins(60, 10, 2, every=7)
    errors = np.abs(np.stack([close[t : t + 2] - close[t - 1] for t in rows]))
    summary = result.summary(n_boot=200)
    assert summary.loc["persistence", "mae"] == pytest.approx(errors.mean())
    assert summary.loc["persistence", "crps"] == pytest.approx(errors.mean())
    assert result.by_horizon().loc[("persistence", 2), "mae"] == pytest.approx(errors[:, 1].mean())
    assert len(result.records) == len(rows) * 2 * 6
    assert np.isnan(summary.loc["persistence", "direction_acc"])


def test_random_walk_sanity_no_baseline_beats_the_volatility_random_walk():
    bars = random_walk_bars(3000, seed=3)
    result = evaluate(
        bars,
        None,
        Backtest(lookback=64, steps=10, origins=300, sampling=Sampling(sample_count=50, seed=1)),
        progress=False,
    )
    summary = result.summary(n_boot=500)
    assert (summary["crps_best_baseline"] == "gaussian_rw").all()
    assert (summary["crps_ratio_high"] >= 1).all()
    assert summary.loc["gaussian_rw", "coverage_80"] == pytest.approx(0.8, abs=0.06)
    assert summary.loc["gaussian_rw", "coverage_95"] == pytest.approx(0.95, abs=0.04)
    pit = result.pit_histogram().loc["gaussian_rw"].to_numpy()
    assert np.abs(pit - 1).max() < 0.3


class RecordingPredictor:
    """Stands in for KronosPredictor and records exactly what each forecast is given."""

    max_context = 512

    def __init__(self):
        self.calls = []
        self.series_ids = []

    def sample(
        self, series, horizon, sampling, calibration=None, *, future=None, batch_size=None, progress=False
    ):
        assert calibration is None and sampling.seed is not None
        self.calls.extend(zip(series, future))
        self.series_ids.extend(one.key for one in series)
        last = np.stack([one.bars[-1] for one in series])
        paths = np.repeat(last[:, None, None, :], sampling.sample_count, axis=1).repeat(horizon, axis=2)
        return Forecast(
            paths.astype(np.float32),
            list(future),
            [one.key for one in series],
            last[:, 3],
            [None] * len(series),
            [one.name for one in series],
        )


def test_the_model_is_given_the_lookback_and_the_target_timestamps_only():
    bars = random_walk_bars(80, seed=4)
    predictor = RecordingPredictor()
    result = evaluate(
        bars,
        predictor,
        Backtest(lookback=12, steps=4, every=9, batch_size=2, sampling=Sampling(sample_count=3, seed=0)),
        progress=False,
    )
    assert len(predictor.calls) == len(result.origins)
    assert predictor.series_ids == list(zip(result.origins["series"], result.origins["origin"]))
    for (window, future), t in zip(predictor.calls, result.origins["origin"]):
        assert list(window.timestamps) == bars["timestamps"].iloc[t - 12 : t].tolist()
        np.testing.assert_array_equal(window.bars[:, CLOSE], bars["close"].iloc[t - 12 : t])
        assert list(future) == bars["timestamps"].iloc[t : t + 4].tolist()
    summary = result.summary(n_boot=100)
    assert summary.loc["kronos", "mae"] == pytest.approx(summary.loc["persistence", "mae"])


def test_changing_data_after_an_origin_leaves_its_forecast_unchanged(tiny_model, tiny_tokenizer, tiny_ohlcv):
    predictor = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64)
    backtest = Backtest(
        steps=6, lookback=40, every=25, sampling=Sampling(sample_count=4, seed=11), batch_size=4
    )
    before = evaluate(tiny_ohlcv, predictor, backtest, progress=False)
    origins = before.origins["origin"].to_numpy()
    cut = int(origins[len(origins) // 2])
    altered = tiny_ohlcv.copy()
    columns = ["open", "high", "low", "close", "volume", "amount"]
    altered.loc[cut:, columns] = altered.loc[cut:, columns].to_numpy() * 1.5 + 3.0
    after = evaluate(altered, predictor, backtest, progress=False)
    unaffected = origins <= cut  # origin t forecasts rows t.. from rows < t only
    assert unaffected.sum() >= 2 and (~unaffected).sum() >= 2
    for method in ("kronos", "persistence", "drift", "gaussian_rw"):
        paths_before, paths_after = before.forecasts[method][1], after.forecasts[method][1]
        np.testing.assert_array_equal(paths_before[unaffected], paths_after[unaffected])
        assert not np.allclose(paths_before[~unaffected], paths_after[~unaffected])
    # the same run repeated gives the same paths: the seed fixes the sampling
    np.testing.assert_array_equal(
        evaluate(tiny_ohlcv, predictor, backtest, progress=False).forecasts["kronos"][1],
        before.forecasts["kronos"][1],
    )


def test_the_numbers_do_not_depend_on_the_batch_size(tiny_ohlcv):
    predictor = KronosPredictor.from_pretrained(device="cpu")
    backtest = Backtest(
        steps=5, lookback=60, every=40, sampling=Sampling(sample_count=4, seed=2), batch_size=32
    )
    together = evaluate(tiny_ohlcv, predictor, backtest, progress=False)
    alone = evaluate(tiny_ohlcv, predictor, replace(backtest, batch_size=1), progress=False)
    assert len(together.origins) >= 4
    pd.testing.assert_frame_equal(alone.records, together.records, check_exact=True)


def test_long_table_with_id_column_and_several_files(tmp_path):
    a, b = random_walk_bars(50, seed=5), random_walk_bars(70, seed=6)
    long = pd.concat([a.assign(symbol="AAA"), b.assign(symbol="BBB")]).sample(frac=1, random_state=0)
    long.to_csv(tmp_path / "long.csv", index=False)
    series = read_series(tmp_path / "long.csv", id_column="symbol")
    assert sorted(series) == ["AAA", "BBB"]
    assert series["BBB"].bars[:, CLOSE] == pytest.approx(b["close"].to_numpy())
    folder = tmp_path / "symbols"
    folder.mkdir()
    a.to_csv(folder / "AAA.csv", index=False)
    b.to_parquet(folder / "BBB.parquet")
    (folder / "notes.md").write_text("not data")
    files = read_series([folder / "AAA.csv", folder / "BBB.parquet"])
    assert sorted(files) == ["AAA", "BBB"] and len(files["BBB"]) == 70
    from_folder = read_series(folder)
    assert sorted(from_folder) == ["AAA", "BBB"]
    assert from_folder["AAA"].bars[:, CLOSE] == pytest.approx(a["close"].to_numpy())
    with pytest.warns(UserWarning, match="AAA"):
        result = evaluate(files, None, Backtest(lookback=40, steps=15, every=5), progress=False)
    assert set(result.origins["series"]) == {"BBB"} and "AAA" in result.skipped


def test_bad_input_is_refused_with_a_clear_message(tmp_path):
    bars = random_walk_bars(40)
    long = pd.concat([bars.assign(symbol="A"), bars.assign(symbol="B")])
    long.to_csv(tmp_path / "long.csv", index=False)
    with pytest.raises(ValueError, match="duplicate timestamps.*--id-column"):
        read_series(tmp_path / "long.csv")
    with pytest.raises(ValueError, match="no id column 'ticker'"):
        read_series(tmp_path / "long.csv", id_column="ticker")
    with pytest.raises(ValueError, match="'close'"):
        evaluate(bars.drop(columns="close"), None, Backtest(lookback=5, steps=2), progress=False)
    with pytest.raises(ValueError, match="'timestamps'"):
        evaluate(bars.drop(columns="timestamps"), None, Backtest(lookback=5, steps=2), progress=False)
    broken = bars.astype({"timestamps": str})
    broken.loc[3, "timestamps"] = "not a time"
    with pytest.raises(ValueError, match="row 3"):
        evaluate(broken, None, Backtest(lookback=5, steps=2), progress=False)
    with pytest.raises(ValueError, match="either origins or every"):
        evaluate(bars, None, Backtest(lookback=5, steps=2, origins=3, every=2), progress=False)
    with pytest.raises(ValueError, match="lookback"):
        evaluate(bars, None, Backtest(lookback=0, steps=2), progress=False)
    with pytest.raises(ValueError, match="nothing to evaluate"), pytest.warns(UserWarning, match="40 rows"):
        evaluate(bars, None, Backtest(lookback=30, steps=20), progress=False)
    with pytest.raises(ValueError, match="unknown baseline"):
        evaluate(bars, None, Backtest(lookback=5, steps=2, baselines=("naive",)), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .csv or .parquet files"):
        read_series(tmp_path / "empty")
    (tmp_path / "long.json").write_text("{}")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_series(tmp_path / "long.json")
