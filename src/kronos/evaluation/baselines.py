"""Naive baselines, computed from each origin's lookback window only.

Every baseline returns `(point, paths)`: point forecasts `[O, H, C]` and sample paths
`[O, P, H, C]`. Point-forecast baselines carry one degenerate path (P = 1): their CRPS equals
their absolute error and their intervals have zero width. The Gaussian random walk samples
`n_paths` real paths.
"""

from __future__ import annotations

import numpy as np

from kronos.forecasting.series import FEATURE_COLUMNS

PRICE_INDEX = [FEATURE_COLUMNS.index(c) for c in ("open", "high", "low", "close")]
ACTIVITY_INDEX = [FEATURE_COLUMNS.index(c) for c in ("volume", "amount")]


def persistence(history: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Every future bar equals the last observed bar (for close: the last close)."""
    point = np.repeat(history[:, -1:, :], steps, axis=1)
    return point, point[:, None]


def drift(history: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Random walk with drift: the last value plus h times the mean step over the lookback.

    The mean step is (last - first) / (L - 1), the straight line through the window's end points
    extended forward. A point forecast, so its one path is degenerate.
    """
    if history.shape[1] < 2:
        raise ValueError("the drift baseline needs a lookback of at least 2 bars")
    slope = (history[:, -1, :] - history[:, 0, :]) / (history.shape[1] - 1)
    horizon = np.arange(1, steps + 1, dtype=np.float64)[None, :, None]
    point = history[:, -1:, :] + horizon * slope[:, None, :]
    return point, point[:, None]


def gaussian_random_walk(
    history: np.ndarray, steps: int, n_paths: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Driftless Gaussian random walk with the lookback's volatility, sampled.

    Per column, a column that is positive throughout the lookback walks in log space (returns
    ~ N(0, sigma^2), sigma the sample std of the lookback's log returns); any other column walks
    additively with the std of its differences. The four price columns share one shock series
    and volume/amount another, so the sampled bars move together. The point forecast is the last
    value, the median of every path's distribution.
    """
    if history.shape[1] < 3:
        raise ValueError("the Gaussian random walk baseline needs a lookback of at least 3 bars")
    n_origins, _, n_columns = history.shape
    positive = np.asarray((history > 0).all(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_steps = np.diff(np.log(np.where(history > 0, history, 1.0)), axis=1)
    plain_steps = np.diff(history, axis=1)
    sigma = np.where(positive, log_steps.std(axis=1, ddof=1), plain_steps.std(axis=1, ddof=1))
    shocks = np.empty((n_origins, n_paths, steps, n_columns))
    price_shock = rng.standard_normal((n_origins, n_paths, steps, 1))
    activity_shock = rng.standard_normal((n_origins, n_paths, steps, 1))
    shocks[..., PRICE_INDEX] = price_shock
    shocks[..., ACTIVITY_INDEX] = activity_shock
    walk = np.cumsum(shocks * sigma[:, None, None, :], axis=2)
    last = history[:, -1, :][:, None, None, :]
    in_log_space = positive[:, None, None, :]
    growth = np.exp(np.where(in_log_space, walk, 0.0))  # additive columns' walks can be huge: no exp there
    paths = np.where(in_log_space, last * growth, last + walk)
    point = np.repeat(history[:, -1:, :], steps, axis=1)
    return point, paths


BASELINES = ("persistence", "drift", "gaussian_rw")


def run_baseline(
    name: str, history: np.ndarray, steps: int, n_paths: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch by name; see BASELINES."""
    if name == "persistence":
        return persistence(history, steps)
    if name == "drift":
        return drift(history, steps)
    if name == "gaussian_rw":
        return gaussian_random_walk(history, steps, n_paths, rng)
    raise ValueError(f"unknown baseline {name!r}: choose from {list(BASELINES)}")
