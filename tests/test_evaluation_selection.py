"""kronos.evaluation.selection: bar-spacing families, held-out origins, the random walks' ratios to
themselves, coverage and P(up) of a known distribution, and a real model scored reproducibly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import make_bars

from kronos.evaluation.selection import (
    POOLED,
    RANDOM_WALKS,
    ForecastScorer,
    family_table,
    held_out_origins,
    spacing_family,
)
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.tables import TableLayout, map_columns, series_from_frame


def as_series(frame: pd.DataFrame, name: str):
    return series_from_frame(map_columns(frame, name, TableLayout()), name)


def gaussian_walk(n: int, seed: int, freq: str, sigma: float = 0.01) -> pd.DataFrame:
    """A driftless Gaussian walk of the log close with constant volatility: the Gaussian random
    walk baseline is the true distribution of its moves."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(sigma * rng.standard_normal(n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    return pd.DataFrame(
        {
            "timestamps": pd.date_range("2020-01-01", periods=n, freq=freq),
            "open": open_,
            "high": np.maximum(open_, close),
            "low": np.minimum(open_, close),
            "close": close,
            "volume": np.full(n, 100.0),
        }
    )


@pytest.mark.parametrize(
    ("freq", "family"),
    [("D", "daily"), ("B", "daily"), ("h", "hourly"), ("4h", "hourly"), ("5min", "minute")],
)
def test_bar_spacing_decides_the_family(freq, family):
    assert spacing_family(pd.date_range("2024-01-01", periods=50, freq=freq)) == family


def test_origins_are_shared_by_a_familys_series_and_lie_in_the_held_out_part():
    series = {
        "a": as_series(make_bars(300, 1, "D"), "a"),
        "b": as_series(make_bars(300, 2, "D"), "b"),
        "c": as_series(make_bars(300, 3, "h"), "c"),
    }
    origins = held_out_origins(series, {"a": 200, "b": 250, "c": 10}, lookback=40, steps=10, per_family=7)
    rows = {name: [t for n, t in origins if n == name] for name in series}
    assert [len(rows[name]) for name in "abc"] == [4, 3, 7]
    assert min(rows["a"]) == 200 and min(rows["b"]) == 250 and min(rows["c"]) == 40  # the lookback fits
    assert all(t + 10 <= 300 for _, t in origins)


@pytest.fixture(scope="module")
def walk_scorer() -> ForecastScorer:
    """Two daily driftless Gaussian walks, 300 origins, 400 paths."""
    series = [as_series(gaussian_walk(700, seed, "D"), f"walk{seed}") for seed in (1, 2)]
    return ForecastScorer(series, [300, 300], steps=5, lookback=100, origins=300, paths=400, seed=3)


def test_each_random_walk_against_the_best_one(walk_scorer):
    daily = walk_scorer.families == "daily"
    rows = {name: walk_scorer.family_metrics(walk_scorer.baselines[name], daily) for name in RANDOM_WALKS}
    crps = {name: rows[name]["crps"] for name in RANDOM_WALKS}
    for name, row in rows.items():
        assert row["crps"] == row[f"crps_{name}"]
        assert row["crps_ratio"] == pytest.approx(crps[name] / min(crps.values()), rel=1e-12)
    assert min(row["crps_ratio"] for row in rows.values()) == 1.0
    # on a Gaussian walk the walks hardly differ: none is 3% worse than the best
    assert max(row["crps_ratio"] for row in rows.values()) < 1.03


def test_a_true_distribution_covers_what_it_says_and_invents_no_drift(walk_scorer):
    row = walk_scorer.family_metrics(walk_scorer.baselines["gaussian_rw"], walk_scorer.families == "daily")
    assert row["origins"] == 300
    assert row["cover_80"] == pytest.approx(0.80, abs=0.06)
    assert row["cover_95"] == pytest.approx(0.95, abs=0.03)
    assert row["prob_up"] == pytest.approx(0.5, abs=0.01)  # a driftless walk in log space
    assert row["up_share"] == pytest.approx(0.5, abs=0.06)  # what the series did
    assert row["drift"] == pytest.approx(row["prob_up"] - row["up_share"])
    assert row["median_up"] == pytest.approx(0.5, abs=0.06)
    assert row["brier"] == pytest.approx(0.25, abs=0.01)  # P(up) near 1/2 scores near 1/4 whatever happens


@pytest.fixture(scope="module")
def small_scorer() -> ForecastScorer:
    series = [as_series(make_bars(260, seed, freq), f"{freq}{seed}") for seed, freq in ((1, "D"), (2, "h"))]
    return ForecastScorer(series, [200, 200], steps=4, lookback=20, origins=6, paths=8, seed=0)


def test_a_real_model_is_scored_per_family_and_pooled_reproducibly(small_scorer, tiny_dir, tmp_path):
    predictor = KronosPredictor.from_pretrained(str(tiny_dir), device="cpu")
    scores = small_scorer(predictor)
    table = family_table(scores)
    assert list(table.index) == ["daily", "hourly"]
    assert set(table.columns) >= {"crps", "crps_ratio", "cover_80", "cover_95", "brier", "qlike", "drift"}
    assert (table["origins"] == 6).all()
    for family in table.index:
        walks = [table.loc[family, f"crps_{name}"] for name in RANDOM_WALKS]
        assert table.loc[family, "crps_ratio"] == pytest.approx(table.loc[family, "crps"] / min(walks))
        assert 0 <= table.loc[family, "cover_80"] <= table.loc[family, "cover_95"] <= 1
        assert np.isfinite(table.loc[family, "qlike"]) and table.loc[family, "qlike"] >= 0
    assert scores["crps_ratio"] == pytest.approx(table["crps_ratio"].mean())
    assert scores["abs_drift"] == pytest.approx(table["drift"].abs().mean())
    assert set(POOLED) <= set(scores)
    # seeded: the same numbers again, and from the checkpoint directory
    assert small_scorer(predictor) == scores
    assert small_scorer(tiny_dir) == scores


def test_bad_arguments_are_named(small_scorer):
    series = list(small_scorer.series.values())
    with pytest.raises(ValueError, match="held_out_from gives 1 rows for 2 series"):
        ForecastScorer(series, [200], steps=4, lookback=20)
    with pytest.raises(ValueError, match="no series has a held-out origin"):
        ForecastScorer(series, [259, 259], steps=4, lookback=20)
    with pytest.raises(ValueError, match="paths must be a positive integer"):
        ForecastScorer(series, [200, 200], steps=4, lookback=20, paths=0)
