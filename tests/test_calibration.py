"""Calibration: the fit by hand, what it does to paths, the leakage test, and one path from paths to bands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kronos.commands.main import main
from kronos.engine.sampling import Sampling
from kronos.evaluation import Backtest, evaluate
from kronos.evaluation.baselines import run_baseline
from kronos.forecasting.calibration import (
    MIN_ORIGINS,
    Calibration,
    fit_origins,
    history_volatility,
    required_rows,
)
from kronos.forecasting.paths import ohlc_violations, repair_ohlc, sample_quantiles

torch.set_num_threads(1)
COLUMNS = ["open", "high", "low", "close", "volume", "amount"]
SAMPLING = Sampling(1.0, 0, 0.9, 40, 0)


def lognormal_paths(rng, n, n_paths, steps, sigma, last=100.0):
    """Bars whose close walks with per-step log volatility sigma; a consistent OHLC around it."""
    close = last * np.exp(np.cumsum(sigma * rng.standard_normal((n, n_paths, steps)), axis=-1))
    paths = np.empty((n, n_paths, steps, 6))
    paths[..., 0] = close * np.exp(0.1 * sigma * rng.standard_normal(close.shape))
    paths[..., 3] = close
    paths[..., 1] = np.maximum(paths[..., 0], close) * (1 + sigma * 0.2)
    paths[..., 2] = np.minimum(paths[..., 0], close) * (1 - sigma * 0.2)
    paths[..., 4] = 1000.0
    paths[..., 5] = paths[..., 4] * close
    return paths


def test_fit_widens_narrow_paths_drops_a_false_drift_and_keeps_bars_consistent():
    rng = np.random.default_rng(0)
    n, steps, sigma = 200, 5, 0.01
    last, vol = np.full(n, 100.0), np.full(n, sigma)
    outcomes = lognormal_paths(rng, n, 1, steps, sigma)[:, 0, :, 3]
    narrow = lognormal_paths(rng, n, 40, steps, sigma / 2)
    calibration = Calibration.fit(narrow, outcomes, last, vol, SAMPLING, lookback=50)
    assert calibration.origins == n and calibration.steps == steps and calibration.misses.shape == (n, steps)
    # a model whose every path drifts up by 2 sigma per step: its move is dropped (shrink 0)
    drifting = narrow * np.exp(2 * sigma * np.arange(1, steps + 1))[:, None]
    assert (Calibration.fit(drifting, outcomes, last, vol, SAMPLING, 50).shrink == 0).all()

    # applied: bands of the calibrated paths hold 80% of fresh outcomes, bars stay consistent
    fresh = lognormal_paths(rng, n, 40, steps, sigma / 2)
    truth = lognormal_paths(rng, n, 1, steps, sigma)[:, 0, :, 3]
    calibrated = calibration.apply(fresh, last, vol)
    low, high = sample_quantiles(fresh[..., 3], [0.1, 0.9], axis=1)
    assert ((truth >= low) & (truth <= high)).mean() < 0.55
    low, high = sample_quantiles(calibrated[..., 3], [0.1, 0.9], axis=1)
    assert ((truth >= low) & (truth <= high)).mean() == pytest.approx(0.8, abs=0.04)
    assert not ohlc_violations(calibrated).any()
    np.testing.assert_array_equal(calibrated[..., 4:], fresh[..., 4:])
    # each bar's four prices shift by one log amount, and the paths keep their order
    shift = np.log(calibrated[..., :4] / fresh[..., :4])
    np.testing.assert_allclose(shift, np.broadcast_to(shift[..., 3:], shift.shape), atol=1e-12)
    order = lambda x: np.argsort(x[..., 3], axis=1, kind="stable")  # noqa: E731
    np.testing.assert_array_equal(order(calibrated), order(fresh))
    # by hand: path of rank j goes to center + spread * the j/(P + 1) quantile of the past misses
    moves = np.log(fresh[0, ..., 3] / 100)  # [P, steps]
    center = calibration.shrink * np.median(moves, axis=0)
    spread = np.sqrt(
        calibration.weight * moves.std(axis=0) ** 2 + (1 - calibration.weight) * sigma**2 * np.arange(1, 6)
    )
    shape = sample_quantiles(calibration.misses, np.arange(1, 41) / 41)
    expected = center + spread * shape
    np.testing.assert_allclose(np.sort(np.log(calibrated[0, ..., 3] / 100), axis=0), expected, rtol=1e-9)


def test_fit_and_apply_refuse_what_they_cannot_do():
    rng = np.random.default_rng(1)
    paths = lognormal_paths(rng, MIN_ORIGINS - 1, 8, 3, 0.01)
    last, vol = np.full(len(paths), 100.0), np.full(len(paths), 0.01)
    with pytest.raises(ValueError, match=f"at least {MIN_ORIGINS} past forecasts"):
        Calibration.fit(paths, paths[:, 0, :, 3], last, vol, SAMPLING, 10)
    with pytest.raises(ValueError, match="do not fit"):
        Calibration.fit(paths, paths[:, 0, :2, 3], last, vol, SAMPLING, 10)
    calibration = Calibration(np.ones(3), np.ones(3), np.zeros((20, 3)), (1.0, 0, 0.9), 10)
    with pytest.raises(ValueError, match="fitted for 3 steps; this forecast has 4"):
        calibration.apply(lognormal_paths(rng, 1, 8, 4, 0.01)[0], 100.0, 0.01)
    with pytest.raises(ValueError, match=r"\(1.0, 0, 0.9\); this forecast samples \(1.2, 0, 1.0\)"):
        calibration.check(Sampling(1.2, 0, 1.0, 20), 3)


def test_history_volatility_is_the_random_walk_baselines():
    rng = np.random.default_rng(3)
    history = lognormal_paths(rng, 4, 1, 30, 0.02)[:, 0]  # [4, 30, 6]
    walk = run_baseline("gaussian_rw", history, 1, 4000, np.random.default_rng(0))[1][..., 3]
    spread = np.log(walk[:, :, 0] / history[:, None, -1, 3]).std(axis=1)
    np.testing.assert_allclose(spread, history_volatility(history[..., 3]), rtol=0.05)


def test_fit_origins_count_from_the_first_bar_so_longer_histories_reuse_them():
    assert fit_origins(60, 10, 5, every=4, max_origins=None).tolist() == list(range(10, 56, 4))
    assert fit_origins(60, 10, 5, every=4, max_origins=3).tolist() == [46, 50, 54]
    shorter = fit_origins(47, 10, 5, every=4, max_origins=None)
    assert set(shorter) <= set(fit_origins(60, 10, 5, every=4, max_origins=None))
    assert shorter[-1] + 5 <= 47
    assert required_rows(10, 5, 4) == 10 + 19 * 4 + 5
    assert len(fit_origins(required_rows(10, 5, 4), 10, 5, 4)) == MIN_ORIGINS
    assert len(fit_origins(required_rows(10, 5, 4) - 1, 10, 5, 4)) == MIN_ORIGINS - 1


BACKTEST = Backtest(
    steps=4,
    lookback=32,
    every=23,
    sampling=Sampling(top_p=0.9, sample_count=8, seed=5),
    calibrate=True,
    batch_size=8,
)


def test_changing_later_bars_changes_no_earlier_calibration(tiny_predictor, tiny_ohlcv):
    before = evaluate(tiny_ohlcv, tiny_predictor, BACKTEST, progress=False)
    origins = before.origins["origin"].to_numpy()
    cut = int(origins[len(origins) // 2])
    altered = tiny_ohlcv.copy()
    altered.loc[cut:, COLUMNS] = altered.loc[cut:, COLUMNS].to_numpy() * 1.7 + 2.0
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


def test_evaluate_scores_exactly_what_users_get(tiny_predictor, tiny_ohlcv):
    result = evaluate(tiny_ohlcv, tiny_predictor, BACKTEST, progress=False)
    i = len(result.origins) - 1
    t = int(result.origins["origin"].iloc[i])
    past = tiny_ohlcv.iloc[:t]
    history, future = past.iloc[-32:], tiny_ohlcv["timestamps"].iloc[t : t + 4]
    calibration = tiny_predictor.calibrate(
        past,
        past["timestamps"],
        4,
        lookback=32,
        sampling=Sampling(sample_count=8, seed=5),
        series_id="series",
    )
    fitted = result.calibrations[("series", t)]
    for part in ("shrink", "weight", "misses"):
        np.testing.assert_array_equal(getattr(calibration, part), getattr(fitted, part))
    assert (calibration.origins, calibration.sampling) == (fitted.origins, fitted.sampling)
    common = dict(sampling=Sampling(sample_count=8, seed=5), series_id=("series", t))
    for method, given in (("kronos", None), ("kronos-calibrated", calibration)):
        paths = tiny_predictor.predict_paths(
            history[COLUMNS], history["timestamps"], future, 4, calibration=given, **common
        )
        np.testing.assert_allclose(result.forecasts[method][1][i], repair_ohlc(paths), rtol=1e-6)
        table = tiny_predictor.predict_quantiles(
            history[COLUMNS],
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


def test_calibrate_needs_enough_history_and_the_same_sampling(tiny_predictor, tiny_ohlcv):
    short = tiny_ohlcv.iloc[: required_rows(32, 4) - 1]
    with pytest.raises(ValueError, match=f"needs at least {required_rows(32, 4)} bars"):
        tiny_predictor.calibrate(
            short, short["timestamps"], 4, lookback=32, sampling=Sampling(sample_count=4, seed=0)
        )
    bars = tiny_ohlcv.iloc[:200]
    calibration = tiny_predictor.calibrate(
        bars, bars["timestamps"], 4, lookback=32, sampling=Sampling(sample_count=4, seed=1)
    )
    assert calibration.origins == len(fit_origins(200, 32, 4)) and calibration.lookback == 32
    history = bars.iloc[-32:]
    with pytest.raises(ValueError, match="sampled with"):
        tiny_predictor.predict_quantiles(
            history[COLUMNS],
            history["timestamps"],
            None,
            4,
            sampling=Sampling(top_p=1.0),
            calibration=calibration,
        )
    with pytest.raises(ValueError, match="fitted for 4 steps; this forecast has 6"):
        tiny_predictor.predict_quantiles(
            history[COLUMNS], history["timestamps"], None, 6, calibration=calibration
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


def test_forecast_and_evaluate_commands_calibrate(tmp_path, tiny_dir, tiny_ohlcv, capsys):
    data = tmp_path / "bars.csv"
    tiny_ohlcv.to_csv(data, index=False)
    model = [
        "--model",
        str(tiny_dir / "model"),
        "--tokenizer",
        str(tiny_dir / "tokenizer"),
        "--max-context",
        "64",
    ]
    common = ["--lookback", "32", "--steps", "4", "--paths", "8", *model]
    out = tmp_path / "f.csv"
    assert main(["forecast", str(data), *common, "--calibrate", "--out", str(out)]) == 0
    assert (
        f"calibrated on {len(fit_origins(len(tiny_ohlcv), 32, 4))} past forecasts" in capsys.readouterr().err
    )
    forecast = pd.read_csv(out)
    assert len(forecast) == 4 and (forecast["close_q0.975"] >= forecast["close_q0.025"]).all()
    short = tmp_path / "short.csv"
    tiny_ohlcv.iloc[:50].to_csv(short, index=False)
    assert main(["forecast", str(short), *common, "--calibrate"]) == 2
    error = capsys.readouterr().err.strip()
    assert (
        error.count("\n") == 0
        and f"--calibrate needs at least {required_rows(32, 4)} bars" in error
        and "short (50 bars)" in error
    )

    report = tmp_path / "report"
    argv = ["evaluate", str(data), *common, "--origins", "6", "--calibrate", "--out", str(report), "--quiet"]
    assert main([*argv, "--bootstrap", "50", "--html"]) == 0
    summary = pd.read_csv(report / "summary.csv", index_col=0)
    assert list(summary.index[:2]) == ["kronos", "kronos-calibrated"]
    assert summary.loc["kronos-calibrated", ["crps_ratio", "coverage_80", "brier"]].notna().all()
    for name in ("by_horizon", "by_column", "pit_histogram", "reliability"):
        table = pd.read_csv(report / f"{name}.csv")
        assert {"kronos", "kronos-calibrated"} <= set(table.iloc[:, 0]), name
    assert (report / "plots" / "reliability.png").stat().st_size > 1000
    text = (report / "report.md").read_text()
    assert "**kronos-calibrated** CRPS is" in text and "## Reliability of P(up) (close)" in text
