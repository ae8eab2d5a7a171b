"""The synthetic corpus shows the stylised facts of markets, measured on generated bars."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache

import numpy as np
import pandas as pd
import pytest
from helpers import load_script

from kronos.forecasting.tables import load_series
from kronos.training.synthetic import (
    CORPUS_MIX,
    GENERATOR_VERSION,
    MarketSpec,
    corpus_specs,
    session_days,
    spec_record,
    synthetic_corpus,
    synthetic_series,
)

DAILY = MarketSpec(bars=5000)
FIVE_MINUTE = MarketSpec(spacing="5min", bars=78 * 60)
FX_HOURLY = MarketSpec(market="fx", spacing="1h", bars=24 * 5 * 12, price=1.1, tick=1e-5, annual_vol=0.08)
SEEDS = range(6)


@cache
def series(spec: MarketSpec) -> pd.DataFrame:
    return synthetic_series(spec)


@cache
def corpus() -> tuple[tuple[str, pd.DataFrame], ...]:
    return tuple(synthetic_corpus(16, seed=5, bars=1500))


def log_returns(df: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(df["close"].to_numpy()))


def autocorrelation(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    return float((x[:-lag] * x[lag:]).mean() / x.var())


def daily_returns() -> list[np.ndarray]:
    return [log_returns(series(replace(DAILY, seed=seed))) for seed in SEEDS]


def test_volatility_clusters_while_returns_are_uncorrelated():
    for r in daily_returns():
        size = np.abs(r)
        assert min(autocorrelation(size, lag) for lag in range(1, 11)) > 0.08
        assert max(abs(autocorrelation(r, lag)) for lag in range(1, 11)) < 0.1
    pooled = [[autocorrelation(np.abs(r), lag) for lag in range(1, 11)] for r in daily_returns()]
    assert np.mean(pooled) > 0.15


def test_returns_have_fat_tails():
    kurtosis = [pd.Series(r).kurt() for r in daily_returns()]
    assert min(kurtosis) > 3, kurtosis


def test_falls_raise_later_volatility():
    leverage = [np.corrcoef(r[:-1], np.abs(r[1:]))[0, 1] for r in daily_returns()]
    assert np.mean(leverage) < -0.04, leverage
    assert sum(value < 0 for value in leverage) >= len(leverage) - 1, leverage
    # without leverage (no GJR asymmetry, no correlated volatility shocks) the correlation vanishes
    symmetric = replace(DAILY, garch=(0.08, 0.0, 0.88), sv_leverage=0.0)
    flat = [
        np.corrcoef(r[:-1], np.abs(r[1:]))[0, 1]
        for r in (log_returns(series(replace(symmetric, seed=seed))) for seed in SEEDS)
    ]
    assert abs(np.mean(flat)) < 0.03 < np.mean(flat) - np.mean(leverage)


def test_no_invented_drift():
    for r in daily_returns():
        assert abs(r.mean()) < 4 * r.std() / np.sqrt(len(r))
        assert 0.46 < np.mean(r > 0) < 0.54


def session_profile(df: pd.DataFrame) -> pd.DataFrame:
    """Mean |log(close/open)| and volume by time of day."""
    body = np.abs(np.log(df["close"] / df["open"]))
    clock = df["timestamps"].dt.strftime("%H:%M")
    return pd.DataFrame({"move": body, "volume": df["volume"], "clock": clock}).groupby("clock").mean()


def test_intraday_volatility_and_volume_are_u_shaped():
    profile = session_profile(series(FIVE_MINUTE))
    first, last = profile.loc["09:30":"09:55"].mean(), profile.loc["15:30":"15:55"].mean()
    midday = profile.loc["12:00":"13:55"].mean()
    for column in ("move", "volume"):
        assert first[column] > 1.5 * midday[column]
        assert last[column] > 1.2 * midday[column]


def test_fx_volatility_peaks_at_the_london_new_york_overlap():
    profile = session_profile(series(FX_HOURLY))
    assert profile.loc["13:00":"16:00", "move"].mean() > 1.5 * profile.loc["20:00":"23:00", "move"].mean()


def test_equity_sessions_open_with_a_gap_and_trade_continuously_within():
    df = series(FIVE_MINUTE)
    day = df["timestamps"].dt.normalize()
    opens_day = (day != day.shift()).to_numpy()[1:]
    jumped = df["open"].to_numpy()[1:] != df["close"].to_numpy()[:-1]
    assert jumped[opens_day].mean() > 0.9
    assert not jumped[~opens_day].any()
    daily = series(DAILY)
    assert (daily["open"].to_numpy()[1:] != daily["close"].to_numpy()[:-1]).mean() > 0.9


def test_fx_gaps_only_after_closed_days():
    df = series(FX_HOURLY)
    stamps = df["timestamps"]
    after_close = (stamps.diff() > pd.Timedelta(hours=1)).to_numpy()[1:]
    jumped = df["open"].to_numpy()[1:] != df["close"].to_numpy()[:-1]
    assert after_close.sum() >= 10
    assert jumped[after_close].mean() > 0.9
    assert not jumped[~after_close].any()


def test_weekend_gaps_are_larger_than_overnight_gaps():
    gaps, weekday = [], []
    for seed in SEEDS:
        df = series(replace(DAILY, seed=seed, closed_day_share=0.3))
        gaps.append(np.log(df["open"].to_numpy()[1:] / df["close"].to_numpy()[:-1]))
        weekday.append(df["timestamps"].dt.day_of_week.to_numpy()[1:])
    gap, day = np.concatenate(gaps), np.concatenate(weekday)
    assert np.mean(gap[day == 0] ** 2) > 1.5 * np.mean(gap[(day > 0)] ** 2)


def test_bars_are_consistent_positive_and_on_the_tick():
    for name, df in corpus():
        assert list(df.columns) == ["timestamps", "open", "high", "low", "close", "volume", "amount"], name
        prices = df[["open", "high", "low", "close"]].to_numpy()
        assert (df["high"] >= df[["open", "close"]].max(axis=1)).all(), name
        assert (df["low"] <= df[["open", "close"]].min(axis=1)).all(), name
        assert (prices > 0).all() and (df["volume"] >= 1).all(), name
        tick = 0.01 if "equity" in name else 1e-5
        assert np.abs(prices / tick - np.round(prices / tick)).max() < 1e-6, name
        typical = (df["high"] + df["low"] + df["close"]) / 3
        np.testing.assert_allclose(df["amount"], df["volume"] * typical, rtol=1e-12)
        assert (df["high"] > df["low"]).mean() > 0.5, name


def test_volume_rises_with_the_size_of_moves():
    df = series(DAILY)
    moves = np.abs(log_returns(df))
    assert np.corrcoef(np.log(df["volume"].to_numpy()[1:]), moves)[0, 1] > 0.2


def test_same_seed_same_bars_other_seed_other_bars():
    pd.testing.assert_frame_equal(synthetic_series(FIVE_MINUTE), series(FIVE_MINUTE))
    other = synthetic_series(replace(FIVE_MINUTE, seed=1))
    assert not np.allclose(other["close"], series(FIVE_MINUTE)["close"])
    again = synthetic_corpus(16, seed=5, bars=1500)
    for (name, df), (name_again, df_again) in zip(corpus(), again):
        assert name == name_again
        pd.testing.assert_frame_equal(df, df_again)
    assert [spec_record(s) for s in corpus_specs(16, seed=6, bars=1500)] != [
        spec_record(s) for s in corpus_specs(16, seed=5, bars=1500)
    ]


# NYSE full-day closures of 2005-2006, and weekday dates it traded
NYSE_2005_CLOSED = ["2005-01-17", "2005-02-21", "2005-03-25", "2005-05-30", "2005-07-04", "2005-09-05"]
NYSE_2005_CLOSED += ["2005-11-24", "2005-12-26", "2006-01-02", "2006-01-16", "2006-04-14", "2006-12-25"]


def test_equity_bars_only_in_sessions_on_trading_days():
    for df in (series(DAILY), series(FIVE_MINUTE), series(MarketSpec(spacing="1h", bars=7 * 300))):
        stamps = df["timestamps"]
        assert stamps.is_monotonic_increasing and stamps.is_unique
        assert (stamps.dt.day_of_week < 5).all()
        assert not stamps.dt.normalize().isin(pd.to_datetime(NYSE_2005_CLOSED)).any()
    intraday = series(FIVE_MINUTE)["timestamps"]
    clock = intraday.dt.hour * 60 + intraday.dt.minute
    assert clock.min() == 9 * 60 + 30 and clock.max() == 15 * 60 + 55
    assert (intraday.dt.normalize().value_counts() == 78).all()
    days = session_days("equity", "2005-01-01", 252)
    assert len(days) == 252 and days[-1] == pd.Timestamp("2005-12-30")


def test_fx_trades_around_the_clock_on_weekdays():
    stamps = series(FX_HOURLY)["timestamps"]
    assert (stamps.dt.day_of_week < 5).all() and stamps.is_monotonic_increasing
    assert set(stamps.dt.hour) == set(range(24))


def test_corpus_follows_the_mixture():
    specs = corpus_specs(4000, seed=0, bars=100)
    shares = pd.Series([(s.market, s.spacing) for s in specs]).value_counts(normalize=True)
    for kind, weight in CORPUS_MIX.items():
        assert abs(shares.get(kind, 0.0) - weight) < 0.025, kind
    assert {s.market for s in specs} == {"equity", "fx"}
    assert len({s.seed for s in specs}) == len(specs)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"spacing": "2h"}, "spacing"),
        ({"market": "crypto"}, "market"),
        ({"bars": 1}, "bars"),
        ({"garch": (0.2, 0.2, 0.8)}, "garch"),
        ({"price": float("nan")}, "price"),
        ({"tail_dof": 2.0}, "tail_dof"),
        ({"overnight": 1.0}, "overnight"),
        ({"sv_leverage": -1.0}, "sv_leverage"),
        ({"price": 0.005}, "tick"),
    ],
)
def test_bad_specs_are_refused_naming_the_knob(change, named):
    with pytest.raises(ValueError, match=named):
        MarketSpec(**change)


def test_corpus_arguments_are_checked():
    with pytest.raises(ValueError, match="n_series"):
        corpus_specs(0, seed=0)
    with pytest.raises(ValueError, match="mix"):
        corpus_specs(3, seed=0, mix={("equity", "1d"): -1.0})


def test_the_corpus_script_writes_files_the_trainer_reads(tmp_path):
    written = load_script("build_synthetic_data").build(tmp_path / "corpus", n_series=3, seed=9, bars=300)
    manifest = json.loads((tmp_path / "corpus" / "synthetic.json").read_text())
    assert manifest["generator_version"] == GENERATOR_VERSION and manifest["seed"] == 9
    assert [f["file"] for f in manifest["files"]] == [p.name for p in written]
    loaded = load_series(written)
    for one, record, spec in zip(loaded, manifest["files"], corpus_specs(3, seed=9, bars=300)):
        assert record["spec"] == json.loads(json.dumps(spec_record(spec)))
        expected = synthetic_series(spec)
        np.testing.assert_allclose(one.bars[:, 3], expected["close"], rtol=1e-12)
        np.testing.assert_allclose(one.bars[:, 5], expected["amount"], rtol=1e-12)
        assert (one.timestamps == expected["timestamps"].to_numpy()).all()
    assert sorted(p.name for p in (tmp_path / "corpus").iterdir()) == sorted(
        [*record_names(manifest), "synthetic.json"]
    )


def record_names(manifest: dict) -> list[str]:
    return [f["file"] for f in manifest["files"]]
