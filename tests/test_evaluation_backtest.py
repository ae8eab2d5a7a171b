"""kronos.evaluation.backtest: rolling-origin backtests: origins, scores, leakage (forecasts and
calibrations), batch sizes, bad input, and the sanity check on a random walk."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import checkpoint_with_metadata, random_walk_bars

from kronos import KronosPredictor
from kronos.engine.sampling import Sampling
from kronos.evaluation import Backtest, evaluate, read_series, select_origins
from kronos.forecasting.calibration import PastOrigins
from kronos.forecasting.core import Forecast
from kronos.forecasting.paths import repair_ohlc, sample_quantiles
from kronos.forecasting.series import CLOSE, FEATURE_COLUMNS

torch.set_num_threads(1)


class RecordingPredictor:
    """Stands in for KronosPredictor and records exactly what each forecast is given."""

    max_context = 512
    center = False

    def __init__(self):
        self.calls = []
        self.series_ids = []

    def sample(
        self,
        series,
        horizon,
        sampling,
        calibration=None,
        *,
        future=None,
        batch_size=None,
        progress=False,
        center=None,
    ):
        assert calibration is None and sampling.seed is not None and center is False
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


BACKTEST = Backtest(
    steps=4,
    lookback=32,
    every=23,
    sampling=Sampling(top_p=0.9, sample_count=8, seed=5),
    calibrate=True,
    batch_size=8,
)


def test_select_origins():
    assert select_origins(20, 5, 3).tolist() == list(range(5, 18))
    assert select_origins(20, 5, 3, origins=4).tolist() == [5, 9, 13, 17]
    assert select_origins(20, 5, 3, every=5).tolist() == [7, 12, 17]
    assert select_origins(7, 5, 3).tolist() == []


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


def test_changing_later_bars_changes_no_earlier_calibration(tiny_predictor, tiny_ohlcv):
    before = evaluate(tiny_ohlcv, tiny_predictor, BACKTEST, progress=False)
    origins = before.origins["origin"].to_numpy()
    cut = int(origins[len(origins) // 2])
    altered = tiny_ohlcv.copy()
    altered.loc[cut:, FEATURE_COLUMNS] = altered.loc[cut:, FEATURE_COLUMNS].to_numpy() * 1.7 + 2.0
    after = evaluate(altered, tiny_predictor, BACKTEST, progress=False)
    unaffected = origins <= cut  # origin t sees rows < t; its calibration, rows < t as well
    assert unaffected.sum() >= 2 and (~unaffected).sum() >= 2
    for t, same in zip(origins, unaffected):
        first, second = before.calibrations[("series", t)], after.calibrations[("series", t)]
        if same:
            for part in ("shrink", "weight", "misses"):
                np.testing.assert_array_equal(getattr(first, part), getattr(second, part))
    later = [
        not np.array_equal(
            before.calibrations[("series", t)].misses, after.calibrations[("series", t)].misses
        )
        for t in origins[~unaffected]
    ]
    assert any(later)  # a calibration does use the bars before its origin
    for method in ("kronos", "kronos-calibrated"):
        np.testing.assert_array_equal(
            before.forecasts[method][1][unaffected], after.forecasts[method][1][unaffected]
        )
        assert not np.allclose(
            before.forecasts[method][1][~unaffected], after.forecasts[method][1][~unaffected]
        )


@pytest.mark.parametrize("center", [False, True], ids=["as sampled", "centered"])
def test_evaluate_scores_exactly_what_users_get(tiny_model, tiny_tokenizer, tiny_ohlcv, center):
    tiny_predictor = KronosPredictor(tiny_model, tiny_tokenizer, device="cpu", max_context=64, center=center)
    result = evaluate(tiny_ohlcv, tiny_predictor, BACKTEST, progress=False)
    i = len(result.origins) - 1
    t = int(result.origins["origin"].iloc[i])
    past = tiny_ohlcv.iloc[:t]
    history, future = past.iloc[-32:], tiny_ohlcv["timestamps"].iloc[t : t + 4]
    calibration = tiny_predictor.calibrate(
        past,
        past["timestamps"],
        4,
        sampling=Sampling(sample_count=8, seed=5),
        past=PastOrigins(lookback=32),
        series_id="series",
    )
    fitted = result.calibrations[("series", t)]
    for part in ("shrink", "weight", "misses"):
        np.testing.assert_array_equal(getattr(calibration, part), getattr(fitted, part))
    assert (calibration.origins, calibration.sampling) == (fitted.origins, fitted.sampling)
    common = dict(sampling=Sampling(sample_count=8, seed=5), series_id=("series", t))
    for method, given in (("kronos", None), ("kronos-calibrated", calibration)):
        paths = tiny_predictor.predict_paths(
            history[FEATURE_COLUMNS], history["timestamps"], future, 4, calibration=given, **common
        )
        np.testing.assert_allclose(result.forecasts[method][1][i], repair_ohlc(paths), rtol=1e-6)
        table = tiny_predictor.predict_quantiles(
            history[FEATURE_COLUMNS],
            history["timestamps"],
            future,
            4,
            quantile_levels=(0.1, 0.9),
            calibration=given,
            **common,
        )
        rows = result.records[(result.records["method"] == method) & (result.records["origin"] == t)]
        close = rows[rows["column"] == "close"]
        np.testing.assert_allclose(close["forecast"], table["close_mean"], rtol=1e-6)
        np.testing.assert_allclose(close["prob_up"], table["prob_close_above_last"])
        low, high = sample_quantiles(result.forecasts[method][1][i][..., 3], [0.1, 0.9])
        np.testing.assert_allclose(low, table["close_q0.1"], rtol=1e-6)
        np.testing.assert_allclose(high, table["close_q0.9"], rtol=1e-6)


def test_start_and_end_score_only_the_origins_whose_forecasts_lie_within():
    bars = random_walk_bars(400, seed=5)  # five-minute bars from 2024-01-01 00:00
    times = bars["timestamps"]
    start, end = times[200], times[300]
    backtest = Backtest(
        lookback=32, steps=4, start=str(start), end=str(end), every=5, baselines=["persistence"]
    )
    result = evaluate(bars, None, backtest, progress=False)
    assert result.origins["origin"].tolist() == list(
        range(202, 298, 5)
    )  # targets t .. t + 3 within [200, 300]
    records = result.records[result.records["column"] == "close"]  # bars before start were the history
    assert (records["last"].to_numpy() == bars["close"].to_numpy()[records["origin"] - 1]).all()
    assert (records["target_time"].min(), records["target_time"].max()) == (times[202], times[300])
    whole_day = Backtest(lookback=32, steps=4, end="2024-01-01", every=20, baselines=["persistence"])
    assert (
        evaluate(bars, None, whole_day, progress=False).origins["origin"].max() == 288 - 4
    )  # 288 bars a day
    assert "2024-01-01" in result.settings["start"] and result.settings["end"].startswith("2024-01-02")


def test_start_and_end_are_checked():
    bars = random_walk_bars(100, seed=5)
    with pytest.raises(ValueError, match="end 2024-01-01 00:00:00 is before start"):
        Backtest(steps=2, start="2024-02-01", end="2024-01-01")
    with pytest.raises(ValueError, match="start 'soon' is not a date"):
        Backtest(steps=2, start="soon")
    with pytest.raises(ValueError, match="after the last bar of every series"):
        evaluate(bars, None, Backtest(steps=2, lookback=10, start="2030-01-01"), progress=False)
    with pytest.raises(ValueError, match="before the first bar of every series"):
        evaluate(bars, None, Backtest(steps=2, lookback=10, end="2020-01-01"), progress=False)


def test_a_backtest_without_sampling_samples_as_the_model_says(tmp_path, tiny_dir, tiny_ohlcv):
    """Backtest(sampling=None) draws with the model's kronos.json defaults, seeded 0: the same
    forecasts as those defaults given explicitly, not the package's top_p 0.9."""
    model = checkpoint_with_metadata(tmp_path, tiny_dir, {"sampling": {"temperature": 1.0, "top_p": 1.0}})
    predictor = KronosPredictor.from_pretrained(str(model), device="cpu")
    data = tiny_ohlcv.iloc[:60]

    def records(sampling: Sampling | None):
        result = evaluate(
            data, predictor, Backtest(steps=3, lookback=20, origins=2, sampling=sampling), progress=False
        )
        return result, result.records[result.records["method"] == "kronos"]["crps"].to_numpy()

    default, crps = records(None)
    assert (default.settings["T"], default.settings["top_p"], default.settings["seed"]) == (1.0, 1.0, 0)
    np.testing.assert_array_equal(crps, records(Sampling(top_p=1.0, seed=0))[1])
    assert not np.array_equal(crps, records(Sampling(seed=0))[1])
