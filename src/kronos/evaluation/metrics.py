"""Forecast metrics on arrays of sampled paths, and a seeded bootstrap over forecast origins.

Conventions: `samples` has the sample axis first, `[P, ...]`, and `actual` has the remaining
shape `[...]`; every function reduces the sample axis only, so the caller decides how to
aggregate over origins, horizons and columns.
"""

from __future__ import annotations

import numpy as np

from kronos.forecasting.paths import sample_quantiles

INTERVAL_LEVELS = (0.5, 0.8, 0.95)
BOOTSTRAP_CHUNK = 100  # replicates drawn at once: memory stays at 100 x origins


def crps_from_samples(samples: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Sample CRPS, E|X - y| - 1/2 E|X - X'|, with X, X' independent draws of the forecast.

    The second term uses all ordered pairs of the P samples (the plain "energy form" estimator);
    it is computed from the sorted samples in O(P log P): sum_{i,j}|x_i - x_j| = 2 sum_k (2k - P - 1) x_(k).
    A single-valued forecast gets |x - y|, its absolute error.
    """
    samples = np.asarray(samples, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    n = samples.shape[0]
    spread_to_actual = np.abs(samples - actual).mean(axis=0)
    ordered = np.sort(samples, axis=0)
    weights = (2 * np.arange(1, n + 1) - n - 1).reshape((n,) + (1,) * (samples.ndim - 1))
    mean_pair_distance = 2 * (weights * ordered).sum(axis=0) / (n * n)
    return spread_to_actual - 0.5 * mean_pair_distance


# the weighted quantile loss of the forecasting literature (e.g. Chronos, GluonTS) averages the deciles:
# part of the metric's definition, not a forecast's default levels
WQL_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def quantile_loss(samples: np.ndarray, actual: np.ndarray, levels=WQL_LEVELS) -> np.ndarray:
    """Mean over `levels` of twice the pinball loss of the empirical sample quantiles.

    Dividing a sum of these by the sum of |actual| over the same points gives the weighted
    quantile loss (wQL) used in the forecasting literature.
    """
    actual = np.asarray(actual, dtype=np.float64)
    quantiles = sample_quantiles(samples, levels)
    levels = np.asarray(levels).reshape((-1,) + (1,) * actual.ndim)
    diff = actual - quantiles
    return (2 * np.maximum(levels * diff, (levels - 1) * diff)).mean(axis=0)


def interval_bounds(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Central interval holding `level` of the forecast: the (1-level)/2 and (1+level)/2 sample quantiles.

    With P samples no interval between them can be expected to cover more than (P - 1) / (P + 1)
    (90.5% for P = 20): a 95% interval needs P >= 39.
    """
    lower, upper = sample_quantiles(samples, [(1 - level) / 2, (1 + level) / 2])
    return lower, upper


def interval_hits(samples: np.ndarray, actual: np.ndarray, level: float) -> np.ndarray:
    """1.0 where actual lies inside the central `level` interval (bounds included), else 0.0."""
    lower, upper = interval_bounds(samples, level)
    actual = np.asarray(actual, dtype=np.float64)
    return ((actual >= lower) & (actual <= upper)).astype(np.float64)


def empirical_cdf_at(samples: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """The forecast's empirical CDF at the actual, ties counted half: (#below + #equal / 2) / P."""
    samples = np.asarray(samples, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    below = (samples < actual).sum(axis=0)
    equal = (samples == actual).sum(axis=0)
    return (below + 0.5 * equal) / samples.shape[0]


def randomized_pit(samples: np.ndarray, actual: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """PIT of the actual among P samples: (#below + V (#equal + 1)) / (P + 1), V ~ U(0, 1).

    This is the rank of the actual among the P + 1 values (the rank histogram), spread uniformly
    within its rank, so it is exactly uniform on [0, 1] whenever the actual is exchangeable with the
    samples (a calibrated forecast), for any P. The plain empirical CDF with P = 20 takes only 21
    values and makes a histogram that looks miscalibrated when it is not.
    """
    samples = np.asarray(samples, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    below = (samples < actual).sum(axis=0)
    equal = (samples == actual).sum(axis=0)
    return (below + rng.random(actual.shape) * (equal + 1)) / (samples.shape[0] + 1)


def pit_histogram(pit: np.ndarray, bins: int = 10) -> np.ndarray:
    """Density of PIT values in `bins` equal bins on [0, 1] (1.0 everywhere when calibrated; NaN if no values)."""
    pit = np.asarray(pit, dtype=np.float64).ravel()
    pit = pit[np.isfinite(pit)]
    if len(pit) == 0:
        return np.full(bins, np.nan)
    counts, _ = np.histogram(pit, bins=bins, range=(0.0, 1.0))
    return counts * bins / len(pit)


def bootstrap_ratio_of_sums(
    numerators: np.ndarray,
    denominators: np.ndarray,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Estimate sum(num)/sum(den) with a percentile bootstrap CI, resampling the leading axis (origins).

    `numerators` and `denominators` are [O] or [O, K]; with K columns the statistic is the ratio
    of the first column's ratio to the second's (used for paired model/baseline ratios): every
    replicate resamples the same origins for both, so their correlation is kept.
    Returns (estimate, low, high); NaN origins are dropped first.
    """
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.ndim == 1:
        num, den = num[:, None], den[:, None]
    keep = np.isfinite(num).all(axis=1) & np.isfinite(den).all(axis=1)
    num, den = num[keep], den[keep]
    if len(num) == 0 or (den.sum(axis=0) == 0).any():
        return (np.nan, np.nan, np.nan)

    def statistic(n_sum, d_sum):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = n_sum / d_sum
        return ratios[..., 0] if ratios.shape[-1] == 1 else ratios[..., 0] / ratios[..., 1]

    estimate = float(statistic(num.sum(axis=0), den.sum(axis=0)))
    rng = np.random.default_rng(seed)
    replicates: list[np.ndarray] = []
    for start in range(0, n_boot, BOOTSTRAP_CHUNK):
        size = min(BOOTSTRAP_CHUNK, n_boot - start)
        counts = rng.multinomial(len(num), np.full(len(num), 1 / len(num)), size=size).astype(np.float64)
        replicates.append(statistic(counts @ num, counts @ den))
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(np.concatenate(replicates), [alpha, 1 - alpha])
    return estimate, float(low), float(high)
