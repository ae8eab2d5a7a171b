"""kronos.evaluation.cross_section (with signals and portfolios): planted momentum is found and a random
walk is not, the random signal's IC sits at zero, no date's signals see a later bar, the model's signal is
its forecast's, the book arithmetic is exact on a hand-computed example, and bad settings are refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import universe_table

from kronos.engine.sampling import Sampling
from kronos.evaluation.cross_section import CrossSection, evaluate_cross_section
from kronos.evaluation.portfolios import (
    book_path,
    book_statistics,
    max_drawdown,
    newey_west_lag,
    newey_west_t,
    spearman,
    top_bottom_weights,
    turnover,
)
from kronos.forecasting.tables import TableLayout, load_series, split_table

torch.set_num_threads(1)
UNIVERSE = Path(__file__).resolve().parents[1] / "examples" / "universe_sp500_daily.csv"
BASELINES = ["momentum_5", "momentum_20", "reversal_1", "low_vol_20", "random"]


def baselines_only(table: pd.DataFrame, **settings) -> pd.DataFrame:
    return evaluate_cross_section(table, None, CrossSection(horizon=5, **settings), progress=False).summary


def test_planted_momentum_is_detected_by_the_momentum_baselines():
    summary = baselines_only(universe_table(30, 600, seed=0, persistence=0.95))
    assert list(summary.index) == BASELINES
    assert summary.loc["momentum_5", "rank_ic_t"] > 3 and summary.loc["momentum_20", "rank_ic_t"] > 3
    assert summary.loc["momentum_20", "quantile_spread"] > 0
    assert summary.loc["momentum_20", "long_short_sharpe_net"] > 1


def test_a_random_walk_universe_shows_no_momentum_and_the_random_signal_sits_at_zero():
    t_stats, random_ics = [], []
    for seed in range(20):
        result = evaluate_cross_section(
            universe_table(30, 600, seed), None, CrossSection(horizon=5), progress=False
        )
        t_stats.append(result.summary.loc[["momentum_5", "momentum_20"], "rank_ic_t"].to_numpy())
        scores = result.scores
        random_ics.extend(scores.loc[scores["method"] == "random", "rank_ic"].dropna())
    quiet = (np.abs(np.array(t_stats)) < 2).mean(axis=0)
    assert (quiet >= 0.9).all(), quiet  # each momentum baseline: |t| < 2 in at least 18 of 20 universes
    # 2,300 dates of 30 series: the pooled mean RankIC of the random signal within 3 standard errors of 0
    ics = np.array(random_ics)
    standard_error = ics.std(ddof=1) / math.sqrt(len(ics))
    assert len(ics) == 20 * 115 and standard_error < 0.005
    assert abs(ics.mean()) < 3 * standard_error


SMALL = CrossSection(horizon=3, rebalance=4, top_k=2, lookback=24, sampling=Sampling(sample_count=4, seed=3))


def test_changing_every_bar_after_a_date_leaves_earlier_signals_unchanged(tiny_predictor):
    table = universe_table(6, 90, seed=4)
    before = evaluate_cross_section(table, tiny_predictor, SMALL, progress=False).signals
    cut = before["date"].unique()[4]  # a rebalance date: the bar right after it changes too
    changed = table.copy()
    later = changed["timestamps"] > cut
    factor = np.random.default_rng(0).uniform(0.5, 2.0, later.sum())
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] *= factor
    after = evaluate_cross_section(changed, tiny_predictor, SMALL, progress=False).signals
    early = before["date"] <= cut
    assert early.sum() == 5 * 6 and (~early).sum() > 0
    signal_columns = [c for c in before.columns if c not in ("forward_return", "holding_return")]
    assert signal_columns[2:] == [
        "kronos",
        "kronos_median",
        "kronos_p_up",
        "kronos_return_over_vol",
        *BASELINES,
    ]
    pd.testing.assert_frame_equal(
        after.loc[early, signal_columns], before.loc[early, signal_columns], check_exact=True
    )
    for method in ("kronos", "momentum_5", "low_vol_20"):
        assert not np.allclose(after.loc[~early, method], before.loc[~early, method]), method


def test_the_model_signal_is_the_expected_return_of_its_forecast(tiny_predictor):
    table = universe_table(5, 60, seed=2)
    result = evaluate_cross_section(table, tiny_predictor, SMALL, progress=False)
    row = result.signals.iloc[7]
    (series,) = [s for s in split_table(table, "universe", TableLayout("symbol")) if s.key == row["series"]]
    t = int(np.flatnonzero(series.timestamps == row["date"])[0]) + 1
    window = series.window(t - 24, t, key=(row["series"], t))
    paths = tiny_predictor.sample(window, 3, SMALL.sampling, future=series.timestamps[t : t + 3]).paths[0]
    close = series.bars[t - 1, 3]
    assert row["kronos"] == pytest.approx(float((paths[:, -1, 3] / close - 1).mean()), rel=1e-12)
    assert row["kronos_p_up"] == float((paths[:, -1, 3] > close).mean())
    assert row["forward_return"] == pytest.approx(series.bars[t - 1 + 3, 3] / close - 1, rel=1e-15)


def test_book_arithmetic_on_a_hand_computed_three_stock_example():
    signals = np.array([[3.0, 1.0, 2.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0]])
    returns = np.array([[0.10, -0.05, 0.02], [0.00, 0.04, -0.01], [-0.02, 0.01, 0.03]])
    weights = [top_bottom_weights(row, 1) for row in signals]
    long = np.array([w[0] for w in weights])
    short = np.array([w[1] for w in weights])
    np.testing.assert_array_equal(long, [[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(short, [[1, -1, 0], [-1, 1, 0], [-1, 0, 1]])
    ls = book_path(short, returns, cost_bps=10)
    np.testing.assert_allclose(ls.gross, [0.15, 0.04, 0.05], rtol=1e-12)
    np.testing.assert_array_equal(
        ls.traded, [2, 4, 2]
    )  # open both legs; flip both; swap one short for a long
    np.testing.assert_allclose(ls.net, [0.148, 0.036, 0.048], rtol=1e-12)
    assert turnover(ls.traded, 2.0) == 0.75  # (4 + 2) / 2 rebalances, halved, over a gross of 2
    top = book_path(long, returns, cost_bps=10)
    np.testing.assert_allclose(top.net, [0.099, 0.038, 0.028], rtol=1e-12)
    assert turnover(top.traded, 1.0) == 1.0
    stats = book_statistics(ls.net, periods_per_year=52)
    mean = (0.148 + 0.036 + 0.048) / 3
    std = math.sqrt(((0.148 - mean) ** 2 + (0.036 - mean) ** 2 + (0.048 - mean) ** 2) / 2)
    assert stats["cumulative"] == pytest.approx(1.148 * 1.036 * 1.048 - 1, rel=1e-12)
    assert stats["return"] == pytest.approx((1.148 * 1.036 * 1.048) ** (52 / 3) - 1, rel=1e-12)
    assert stats["volatility"] == pytest.approx(std * math.sqrt(52), rel=1e-12)
    assert stats["sharpe"] == pytest.approx(mean / std * math.sqrt(52), rel=1e-12)
    assert stats["max_drawdown"] == 0.0
    # equity 1, 1.1, 0.88, 0.924, 0.8316: the fall from the peak of 1.1 to 0.8316
    assert max_drawdown(np.array([0.10, -0.20, 0.05, -0.10])) == pytest.approx(1 - 0.8316 / 1.1, rel=1e-12)


def test_newey_west_and_rank_correlation_by_hand():
    assert newey_west_lag(5, 5) == 0 and newey_west_lag(5, 1) == 4 and newey_west_lag(20, 5) == 3
    x = np.array([1.0, 2.0, 0.0, 3.0])
    d = x - 1.5
    lag1 = 2 * 0.5 * (d[1:] @ d[:-1]) / 4
    assert newey_west_t(x, 1) == pytest.approx(1.5 / math.sqrt(((d @ d) / 4 + lag1) / 4), rel=1e-12)
    assert newey_west_t(x, 0) == pytest.approx(1.5 / math.sqrt((d @ d) / 4 / 4), rel=1e-12)
    assert spearman(np.array([1.0, 2.0, 2.0, 4.0]), np.array([10.0, 30.0, 20.0, 40.0])) == pytest.approx(
        0.9486832980505138, rel=1e-12
    )


def test_the_real_universe_loads_whole_and_its_baselines_score_every_stock():
    series = load_series([UNIVERSE], TableLayout("symbol"))
    assert len(series) == 20 and all(len(one) == 1006 for one in series)
    assert all((one.timestamps == series[0].timestamps).all() for one in series)
    assert series[0].timestamps[0] == pd.Timestamp("2019-01-02") and series[0].timestamps[-1] == pd.Timestamp(
        "2022-12-28"
    )
    result = evaluate_cross_section(series, None, CrossSection(horizon=5, start="2022-06-01"), progress=False)
    assert set(result.scores.groupby("date")["n_series"].unique().explode()) == {20.0}
    closes = pd.read_csv(UNIVERSE, parse_dates=["date"]).pivot(index="date", columns="symbol", values="close")
    first = result.signals[result.signals["date"] == result.signals["date"].min()].set_index("series")
    day = closes.index.get_loc(first["date"].iloc[0])
    expected = closes.iloc[day] / closes.iloc[day - 5] - 1
    np.testing.assert_allclose(first["momentum_5"], expected[first.index], rtol=1e-12)
    np.testing.assert_allclose(
        first["forward_return"], (closes.iloc[day + 5] / closes.iloc[day] - 1)[first.index], rtol=1e-12
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: baselines_only(universe_table(6, 100).drop(columns="symbol")), "no id column 'symbol'"),
        (lambda: baselines_only(universe_table(4, 100)), "universe has 4 series .* at least 5"),
        (lambda: baselines_only(universe_table(8, 100), top_k=5), "top_k 5 is too large.* at most 4"),
        (lambda: CrossSection(horizon=5, rebalance=0), "rebalance must be a positive integer, got 0"),
        (lambda: CrossSection(horizon=5, cost_bps=-1), "cost_bps must be"),
        (lambda: CrossSection(horizon=5, quantiles=1), "quantiles must be at least 2"),
        (lambda: CrossSection(horizon=5, start="2021-02-01", end="2021-01-01"), "start .* is after end"),
        (lambda: CrossSection(horizon=5, sampling=Sampling()), "seeded"),
        (lambda: baselines_only(universe_table(6, 24)), "no date of the universe has 5 series with 21 bars"),
    ],
)
def test_bad_settings_and_universes_are_refused_naming_the_argument(build, message):
    with pytest.raises(ValueError, match=message):
        build()
