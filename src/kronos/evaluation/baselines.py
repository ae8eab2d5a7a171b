"""Naive baselines, computed from each origin's lookback window only.

Every baseline returns `(point, paths)`: point forecasts `[O, H, C]` and sample paths
`[O, P, H, C]`. Point-forecast baselines carry one degenerate path (P = 1): their CRPS equals
their absolute error and their intervals have zero width. The random walks (Gaussian with the
lookback's volatility, EWMA, GARCH(1,1)) sample `n_paths` real paths; EWMA and GARCH are fitted
at each origin on the bars before it (kronos.evaluation.volatility), longer than the lookback.
"""

from __future__ import annotations

import numpy as np

from kronos.evaluation.volatility import GarchFit, OriginVolatility
from kronos.forecasting.series import CLOSE, FEATURE_COLUMNS

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
    price_shocks = rng.standard_normal((history.shape[0], n_paths, steps))
    return _walk(history, price_shocks, rng)


def ewma_walk(
    history: np.ndarray, steps: int, n_paths: int, rng: np.random.Generator, variance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian random walk with the close's EWMA volatility (RiskMetrics, `variance` [O], per
    bar) in place of the lookback's: the EWMA forecast is flat, so every step has that variance.
    The price columns take it scaled by their lookback volatility relative to the close's (the
    same volatility where, as usual, they move alike); volume and amount walk as in the Gaussian one."""
    ratio = np.sqrt(variance) / _close_sigma(history)
    price_shocks = rng.standard_normal((history.shape[0], n_paths, steps)) * ratio[:, None, None]
    return _walk(history, price_shocks, rng)


def garch_walk(
    history: np.ndarray, steps: int, n_paths: int, rng: np.random.Generator, fits: list[GarchFit]
) -> tuple[np.ndarray, np.ndarray]:
    """Paths simulated from each origin's GARCH(1,1): per path the variance follows
    h_{k+1} = omega + alpha r_k^2 + beta h_k from the fitted h at the first bar, with unit-variance
    Student-t shocks (Gaussian where the fit fell back, see GarchFit.shocks). The close's log
    returns are r_k; the other columns move as in `ewma_walk`."""
    sigma = _close_sigma(history)
    price_shocks = np.empty((history.shape[0], n_paths, steps))
    for i, fit in enumerate(fits):
        if np.isfinite(fit.nu):
            z = rng.standard_t(fit.nu, (n_paths, steps)) * np.sqrt((fit.nu - 2) / fit.nu)
        else:
            z = rng.standard_normal((n_paths, steps))
        variance = np.full(n_paths, fit.next_variance)
        for k in range(steps):
            r = np.sqrt(variance) * z[:, k]
            price_shocks[i, :, k] = r / sigma[i]
            variance = fit.omega + fit.alpha * r * r + fit.beta * variance
    return _walk(history, price_shocks, rng)


def _close_sigma(history: np.ndarray) -> np.ndarray:
    """The lookback's std of close log returns per origin [O] (1 where it is 0 or undefined, so
    that ratios to it stay finite: such a close does not move in the lookback's walk either)."""
    sigma = _lookback_sigma(history)[1][:, CLOSE]
    return np.where(np.isfinite(sigma) & (sigma > 0), sigma, 1.0)


def _lookback_sigma(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per origin and column [O, C]: positive throughout the lookback, and the std of its log
    returns there (else the std of its differences)."""
    if history.shape[1] < 3:
        raise ValueError("the random walk baselines need a lookback of at least 3 bars")
    positive = np.asarray((history > 0).all(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_steps = np.diff(np.log(np.where(history > 0, history, 1.0)), axis=1)
    plain_steps = np.diff(history, axis=1)
    return positive, np.where(positive, log_steps.std(axis=1, ddof=1), plain_steps.std(axis=1, ddof=1))


def _walk(
    history: np.ndarray, price_shocks: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Paths [O, P, H, C] from the last bar: each column's steps are its shock times its lookback
    sigma, in log space for positive columns; the price columns share `price_shocks` [O, P, H],
    volume and amount share standard normal shocks. Point forecast: the last bar."""
    n_origins, n_paths, steps = price_shocks.shape
    positive, sigma = _lookback_sigma(history)
    shocks = np.empty((n_origins, n_paths, steps, history.shape[2]))
    shocks[..., PRICE_INDEX] = price_shocks[..., None]
    shocks[..., ACTIVITY_INDEX] = rng.standard_normal((n_origins, n_paths, steps, 1))
    walk = np.cumsum(shocks * sigma[:, None, None, :], axis=2)
    last = history[:, -1, :][:, None, None, :]
    in_log_space = positive[:, None, None, :]
    growth = np.exp(np.where(in_log_space, walk, 0.0))  # additive columns' walks can be huge: no exp there
    paths = np.where(in_log_space, last * growth, last + walk)
    point = np.repeat(history[:, -1:, :], steps, axis=1)
    return point, paths


BASELINES = ("persistence", "drift", "gaussian_rw", "ewma", "garch11")


def run_baseline(
    name: str,
    history: np.ndarray,
    steps: int,
    n_paths: int,
    rng: np.random.Generator,
    volatility: OriginVolatility,
) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch by name; see BASELINES. `volatility` holds the EWMA and GARCH fits at the same origins."""
    if name == "persistence":
        return persistence(history, steps)
    if name == "drift":
        return drift(history, steps)
    if name == "gaussian_rw":
        return gaussian_random_walk(history, steps, n_paths, rng)
    if name == "ewma":
        return ewma_walk(history, steps, n_paths, rng, volatility.ewma)
    if name == "garch11":
        return garch_walk(history, steps, n_paths, rng, volatility.garch)
    raise ValueError(f"unknown baseline {name!r}: choose from {list(BASELINES)}")
