"""kronos.forecasting.calibration: the fit by hand, what it does to paths, what it refuses, and the
origins it fits on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kronos.engine.sampling import Sampling
from kronos.evaluation.baselines import gaussian_random_walk
from kronos.forecasting.calibration import (
    MIN_ORIGINS,
    Calibration,
    PastOrigins,
    fit_origins,
    history_volatility,
    required_rows,
)
from kronos.forecasting.paths import ohlc_violations, sample_quantiles

torch.set_num_threads(1)
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


def test_past_forecasts_whose_paths_all_agree_do_not_throw_calibrated_paths_out():
    """Paths that all end at one price have no spread: with the model's spread alone chosen
    (weight 1), such a past forecast missed by billions of spreads, and its quantile threw the top
    calibrated path out of all proportion. The spread is at least a tenth of the random walk's, so
    a miss counts at most in those units."""
    rng = np.random.default_rng(3)
    n, steps, sigma = 60, 3, 0.01
    last, vol = np.full(n, 100.0), np.full(n, 20 * sigma)  # the walk's spread 20x too wide: weight 1 wins
    outcomes = lognormal_paths(rng, n, 1, steps, sigma)[:, 0, :, 3]
    paths = lognormal_paths(rng, n, 40, steps, sigma)
    paths[-4:] = paths[-4:, :1]  # four past forecasts whose 40 paths are one path
    calibration = Calibration.fit(paths, outcomes, last, vol, SAMPLING, lookback=50)
    walk_spread = 20 * sigma * np.sqrt(np.arange(1, steps + 1))
    bound = np.abs(np.log(outcomes / 100)).max(axis=0) / (0.1 * walk_spread) + 1
    assert (np.abs(calibration.misses) <= bound).all()
    calibrated = calibration.apply(lognormal_paths(rng, 5, 40, steps, sigma), last[:5], vol[:5])
    assert np.isfinite(calibrated).all()
    assert (np.abs(np.log(calibrated[..., 3] / 100)) < 1.0).all()  # within e of the price, at 1% a step


def crossing_zero(paths, which):
    """The paths `which` (an index into [..., P]) moved down by a ramp that takes them below zero
    by the last step (prices 100 at the start): the four prices of each bar alike, so bars stay consistent."""
    out = paths.copy()
    steps = paths.shape[-2]
    out[..., which, :, :4] -= (130 * np.arange(1, steps + 1) / steps)[:, None]
    return out


def test_a_path_decoded_at_or_below_zero_counts_at_the_lowest_path_that_stays_positive():
    """A model may decode a path below zero. Its series once switched to price differences, set
    against a volatility and past misses in log units, and a calibrated mean went to 3e17 times the
    price. Now such a path counts no lower than the lowest price of the paths that stay positive:
    the forecast keeps log moves, and its calibrated prices stay positive and near the price."""
    rng = np.random.default_rng(5)
    n, steps, sigma = 60, 5, 0.01
    last, vol = np.full(n, 100.0), np.full(n, sigma)
    outcomes = lognormal_paths(rng, n, 1, steps, sigma)[:, 0, :, 3]
    calibration = Calibration.fit(
        lognormal_paths(rng, n, 40, steps, sigma), outcomes, last, vol, SAMPLING, 50
    )
    fresh = lognormal_paths(rng, 1, 40, steps, sigma)[0]
    crossing = crossing_zero(fresh, 7)
    assert (crossing[7, -1, :4] < 0).all() and (crossing[7, 0, :4] > 0).all()

    calibrated = calibration.apply(crossing, 100.0, sigma)
    assert np.isfinite(calibrated).all() and (calibrated[..., :4] > 0).all()
    assert (np.abs(np.log(calibrated[..., :4] / 100)) < 0.2).all()  # paths of 1% a step, over 5 steps
    assert not ohlc_violations(calibrated).any()
    # by hand: the same as the crossing path at the lowest price of the other 39, wherever it is lower
    floor = np.delete(fresh, 7, axis=0)[..., :4].min()
    lifted = crossing.copy()
    lifted[..., :4] = np.maximum(crossing[..., :4], floor)
    np.testing.assert_allclose(calibrated, calibration.apply(lifted, 100.0, sigma), rtol=1e-12)
    assert np.argmin(calibrated[:, -1, 3]) == 7  # it stays the lowest path

    # every path below zero: no path to measure a fall by, so each counts no lower than the last close
    below = crossing_zero(fresh, slice(None))
    calibrated = calibration.apply(below, 100.0, sigma)
    assert np.isfinite(calibrated).all() and (calibrated[..., :4] > 0).all()
    assert (np.abs(np.log(calibrated[..., :4] / 100)) < 0.2).all()
    assert not ohlc_violations(calibrated).any()


def test_past_forecasts_with_paths_at_or_below_zero_fit_in_log_units():
    """Past forecasts with a path below zero (one with every path below) are fitted in log moves
    like the others, with the same floor as `apply`: the shrink, weight and misses are those of the
    crossing paths counted no lower than that floor, finite, and the misses stay in the units of
    the spread; the calibrated paths of a fresh forecast stay near the price."""
    rng = np.random.default_rng(6)
    n, steps, sigma = 60, 5, 0.01
    last, vol = np.full(n, 100.0), np.full(n, sigma)
    outcomes = lognormal_paths(rng, n, 1, steps, sigma)[:, 0, :, 3]
    paths = lognormal_paths(rng, n, 40, steps, sigma)
    clean = Calibration.fit(paths, outcomes, last, vol, SAMPLING, 50)
    lifted = paths.copy()
    for k in range(10):  # ten past forecasts with one path below zero: it counts at the others' lowest price
        lifted[k, 0, :, :4] = np.maximum(crossing_zero(paths[k], 0)[0, :, :4], paths[k, 1:, :, :4].min())
    lifted[10, ..., :4] = np.maximum(
        crossing_zero(paths[10], slice(None))[..., :4], 100.0
    )  # all: the last close
    paths[:10] = crossing_zero(paths[:10], 0)
    paths[10] = crossing_zero(paths[10], slice(None))
    calibration = Calibration.fit(paths, outcomes, last, vol, SAMPLING, 50)
    by_hand = Calibration.fit(lifted, outcomes, last, vol, SAMPLING, 50)
    for fitted, expected in zip(
        (calibration.shrink, calibration.weight, calibration.misses),
        (by_hand.shrink, by_hand.weight, by_hand.misses),
    ):
        assert np.isfinite(fitted).all()
        np.testing.assert_allclose(fitted, expected, rtol=1e-12)
    assert np.abs(calibration.misses).max() < 1.5 * np.abs(clean.misses).max()
    calibrated = calibration.apply(lognormal_paths(rng, 5, 40, steps, sigma), last[:5], vol[:5])
    assert np.isfinite(calibrated).all() and (calibrated[..., :4] > 0).all()
    assert (np.abs(np.log(calibrated[..., 3] / 100)) < 0.2).all()


def test_a_series_whose_last_close_is_not_positive_moves_in_price_differences():
    rng = np.random.default_rng(7)
    n, steps = 40, 3
    paths = lognormal_paths(rng, n, 20, steps, 0.01) - 100  # around zero, the last close at zero
    outcomes = lognormal_paths(rng, n, 1, steps, 0.01)[:, 0, :, 3] - 100
    last, vol = np.full(n, 0.0), np.full(n, 1.0)
    calibration = Calibration.fit(paths, outcomes, last, vol, SAMPLING, 50)
    assert np.isfinite(calibration.misses).all()
    fresh = paths[0]
    calibrated = calibration.apply(fresh, 0.0, 1.0)
    assert np.isfinite(calibrated).all()
    # each bar's four prices shift by one amount in price units
    shift = calibrated[..., :4] - fresh[..., :4]
    np.testing.assert_allclose(shift, np.broadcast_to(shift[..., 3:], shift.shape), atol=1e-9)


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
    walk = gaussian_random_walk(history, 1, 4000, np.random.default_rng(0))[1][..., 3]
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


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"lookback": 1}, "lookback must be at least 3 bars"),
        ({"lookback": 0}, "lookback must be a positive integer"),
        ({"every": 0}, "every must be a positive integer"),
        ({"max_origins": 0}, "max_origins must be a positive integer"),
        ({"max_origins": 5}, "max_origins must be at least 20"),
        ({"lookback": 2.5}, "lookback must be a positive integer"),
    ],
)
def test_past_origins_refuse_what_would_give_nan_bands_or_mean_all(fields, message):
    with pytest.raises(ValueError, match=message):
        PastOrigins(**fields)
    assert PastOrigins(lookback=3, every=1, max_origins=None).max_origins is None
