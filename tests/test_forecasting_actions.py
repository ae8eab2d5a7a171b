"""kronos.forecasting.actions: split- and jump-like bars found, warned about by every forecast,
and back-adjusted on request."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import random_bars
from hypothesis import given
from hypothesis import strategies as st

from kronos.engine.sampling import Sampling
from kronos.forecasting.actions import SplitWarning, adjust_splits, find_jumps
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.series import Series
from kronos.forecasting.tables import TableOptions

torch.set_num_threads(1)


def split_at(frame: pd.DataFrame, row: int, ratio: float) -> pd.DataFrame:
    """`frame` with a split at `row`: the prices from it on divided by `ratio`, the volume multiplied."""
    out = frame.copy()
    out.loc[row:, ["open", "high", "low", "close"]] /= ratio
    out.loc[row:, "volume"] *= ratio
    return out


@pytest.mark.parametrize(
    "ratio, name",
    [
        (2, "2:1 split"),
        (3, "3:1 split"),
        (1.5, "3:2 split"),
        (0.1, "1:10 reverse split"),
        (0.5, "1:2 reverse split"),
    ],
)
@pytest.mark.parametrize("back", [1, 30])
def test_a_split_is_found_naming_its_bar_and_ratio(ratio, name, back):
    frame = random_bars(200)
    series = Series.from_frame(split_at(frame, len(frame) - back, ratio), name="s")
    (jump,) = find_jumps(series)
    assert jump.row == len(frame) - back and jump.timestamp == frame["timestamps"].iloc[-back]
    assert jump.split == Fraction(ratio).limit_denominator(10)
    assert f"bar {200 - back + 1} of 200 ({jump.timestamp})" in jump.describe(200) and name in jump.describe(
        200
    )
    adjusted = adjust_splits(series, warn=False)
    np.testing.assert_allclose(
        adjusted.bars[:, :4],
        series.bars[:, :4][-1]
        / frame[["open", "high", "low", "close"]].to_numpy()[-1]
        * frame[["open", "high", "low", "close"]].to_numpy(),
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        adjusted.bars[:, 4] / series.bars[:, 4][-1], frame["volume"] / frame["volume"].iloc[-1], rtol=1e-9
    )
    assert find_jumps(adjusted) == []


def test_a_close_only_split_and_a_crash_are_found():
    frame = random_bars(120)
    closes = split_at(frame, 90, 4.0).assign(open=lambda f: f["close"].shift(1).fillna(f["close"]))
    (jump,) = find_jumps(Series.from_frame(closes))
    assert jump.split == 4 and jump.row == 90  # open = previous close: the close carries it
    crash = frame.copy()
    crash.loc[100:, ["open", "high", "low", "close"]] *= 0.6  # -40%: no split ratio, far outside the range
    (jump,) = find_jumps(Series.from_frame(crash))
    assert jump.split is None and jump.row == 100 and "a jump" in jump.describe(120)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "error"
        )  # nothing to adjust: left as it is, without a word (the forecast warns)
        np.testing.assert_array_equal(
            adjust_splits(Series.from_frame(crash)).bars, Series.from_frame(crash).bars
        )


@given(
    sigma=st.sampled_from([0.0005, 0.005, 0.02, 0.05]),
    seed=st.integers(0, 10_000),
    n=st.integers(3, 400),
)
def test_series_without_corporate_actions_have_no_jumps(sigma, seed, n):
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(np.clip(rng.standard_t(4, n), -6, 6) * sigma))  # fat tails, up to 6 sigmas
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, sigma / 3, n))
    frame = pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close), "close": close}
    )
    assert find_jumps(Series.from_frame(frame, pd.date_range("2024-01-01", periods=n))) == []


@pytest.fixture(scope="module")
def shipped() -> KronosPredictor:
    # the model's own paths: centered, a forecast keeps its median at the last close, reverting or not
    return KronosPredictor.from_pretrained("kronos-default", device="cpu", center=False)


@pytest.mark.parametrize("back", [1, 30])
def test_a_split_is_warned_about_and_adjusted_away_by_predict_df(shipped, back):
    table = split_at(random_bars(300, "B"), 300 - back, 2.0).assign(id="s")
    last = table["close"].iloc[-1]
    options = dict(prediction_length=5, sampling=Sampling(sample_count=20, seed=0))
    with pytest.warns(
        SplitWarning,
        match=rf"split- or jump-like bars in the history of series id='s': bar {shipped.lookback - back + 1} of {shipped.lookback} .*like a 2:1 split",
    ):
        raw = shipped.predict_df(table, **options)
    with pytest.warns(SplitWarning, match="prices before 1 split-like bar"):
        adjusted = shipped.predict_df(table, table=TableOptions(adjust_splits=True), **options)
    if back == 1:  # unadjusted, the forecast reverts towards the old price (+100% away) by a third or more
        assert (raw["close_q0.5"] / last).min() > 1.3
    assert ((adjusted["close_q0.5"] / last).between(0.8, 1.25)).all()
    with pytest.raises(TypeError, match="adjust_splits must be True or False"):
        TableOptions(adjust_splits="yes")  # type: ignore[arg-type]
