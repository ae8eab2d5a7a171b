"""kronos.evaluation.baselines: the point and random-walk baselines by hand."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import random_walk_bars

from kronos.evaluation import drift, gaussian_random_walk, persistence


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


def test_ewma_walk_takes_the_ewma_volatility_and_garch_walk_its_variance_recursion():
    from kronos.evaluation import ewma_walk, garch_walk
    from kronos.evaluation.volatility import GarchFit

    bars = random_walk_bars(200, seed=2, sigma=0.02)
    history = bars[["open", "high", "low", "close", "volume", "amount"]].to_numpy()[None]
    last = history[0, -1, 3]
    _, paths = ewma_walk(history, 3, 40_000, np.random.default_rng(0), np.array([0.03**2]))
    assert np.log(paths[0, :, 0, 3] / last).std() == pytest.approx(0.03, rel=0.03)
    assert np.log(paths[0, :, 2, 3] / last).std() == pytest.approx(0.03 * np.sqrt(3), rel=0.03)
    fit = GarchFit(omega=1e-4, alpha=0.2, beta=0.5, nu=8.0, next_variance=9e-4, shocks="t")
    point, paths = garch_walk(history, 3, 40_000, np.random.default_rng(1), [fit])
    returns = np.diff(np.log(np.concatenate([np.full((40_000, 1), last), paths[0, :, :, 3]], axis=1)), axis=1)
    assert returns.var(axis=0) == pytest.approx(fit.variance_path(3), rel=0.05)  # 9e-4, 7.3e-4, 6.11e-4
    kurtosis = (returns[:, 0] ** 4).mean() / returns[:, 0].var() ** 2
    assert kurtosis == pytest.approx(3 + 6 / (8 - 4), rel=0.2)  # Student t with 8 degrees of freedom
    assert point[0, :, 3].tolist() == [last] * 3
