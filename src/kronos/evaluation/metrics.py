"""Forecast metrics on arrays of sampled paths, a seeded bootstrap over forecast origins, the
Diebold-Mariano test of equal loss, and the losses of a volatility forecast.

Conventions: `samples` has the sample axis first, `[P, ...]`, and `actual` has the remaining
shape `[...]`; every function reduces the sample axis only, so the caller decides how to
aggregate over origins, horizons and columns.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from kronos.forecasting.paths import sample_quantiles

INTERVAL_LEVELS = (0.5, 0.8, 0.95)
BOOTSTRAP_CHUNK = 100  # replicates drawn at once: memory stays at 100 x origins


def crps_from_samples(samples: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Fair (unbiased) sample CRPS: E|X - y| - 1/(2 P (P - 1)) sum_{i,j} |x_i - x_j|.

    The spread term averages over the P (P - 1) pairs of distinct samples, so its expectation is
    the forecast's own E|X - X'| for any number of samples P: the score is unbiased for the CRPS of
    the distribution the paths are drawn from, and a method with 20 paths is not handicapped
    against one with 1,000 (the plain estimator, dividing by P^2, adds E|X - X'| / (2P) on average).
    It is computed from the sorted samples in O(P log P): sum_{i,j}|x_i - x_j| = 2 sum_k (2k - P - 1) x_(k).
    A single-valued forecast (P = 1) is a point mass and gets |x - y|, its absolute error.
    """
    samples = np.asarray(samples, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    n = samples.shape[0]
    spread_to_actual = np.abs(samples - actual).mean(axis=0)
    if n == 1:
        return spread_to_actual
    ordered = np.sort(samples, axis=0)
    weights = (2 * np.arange(1, n + 1) - n - 1).reshape((n,) + (1,) * (samples.ndim - 1))
    mean_pair_distance = 2 * (weights * ordered).sum(axis=0) / (n * (n - 1))
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


def diebold_mariano(differences: list[np.ndarray], horizon: int) -> tuple[float, float]:
    """Diebold-Mariano test of equal expected loss, with the Harvey-Leybourne-Newbold correction.

    `differences` holds one or more sequences of loss differentials d_t = loss(A) - loss(B) in time
    order (one per series; series are taken as independent, so a pooled test adds their long-run
    variances). `horizon` h is how many consecutive forecasts share an outcome: the long-run
    variance is Newey-West's with h - 1 lags (Bartlett weights 1 - k/h) around the pooled mean,
    the statistic d_bar / sqrt(var(d_bar)) is scaled by HLN's sqrt((n + 1 - 2h + h(h-1)/n) / n)
    and compared with Student's t with n - 1 degrees of freedom. Returns (statistic, two-sided
    p-value); negative statistics favour A. NaN when fewer than 3 differentials or no variance.
    """
    positive_horizon = int(horizon)
    if positive_horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    pieces = [np.asarray(d, dtype=np.float64) for d in differences]
    pieces = [d[np.isfinite(d)] for d in pieces]
    n = sum(len(d) for d in pieces)
    if n < 3:
        return (np.nan, np.nan)
    mean = sum(d.sum() for d in pieces) / n
    total_variance = sum(len(d) * newey_west_variance(d - mean, positive_horizon - 1) for d in pieces)
    if not total_variance > 1e-300:
        return (np.nan, np.nan)
    statistic = mean / np.sqrt(total_variance / n**2)
    h = positive_horizon
    correction = (n + 1 - 2 * h + h * (h - 1) / n) / n
    if correction <= 0:
        return (np.nan, np.nan)
    corrected = statistic * np.sqrt(correction)
    return float(corrected), float(2 * stats.t.sf(abs(corrected), n - 1))


def newey_west_variance(centred: np.ndarray, lags: int) -> float:
    """Long-run variance of a centred sequence: gamma_0 + 2 sum_{k<=lags} (1 - k/(lags+1)) gamma_k,
    gamma_k = sum_t x_t x_{t-k} / n (Newey-West, Bartlett weights; never negative)."""
    n = len(centred)
    variance = float(centred @ centred) / n
    for k in range(1, min(lags, n - 1) + 1):
        variance += 2 * (1 - k / (lags + 1)) * float(centred[k:] @ centred[:-k]) / n
    return variance


def mincer_zarnowitz(realised: np.ndarray, forecast: np.ndarray) -> tuple[float, float, float]:
    """OLS of realised on forecast, realised = a + b forecast + e: (intercept a, slope b, R^2).

    An unbiased forecast has a = 0 and b = 1; R^2 says how much of the realised variation it
    explains. Non-finite pairs are dropped; NaN with fewer than 3 pairs or a constant forecast.
    """
    x = np.asarray(forecast, dtype=np.float64).ravel()
    y = np.asarray(realised, dtype=np.float64).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or np.ptp(x) == 0:
        return (np.nan, np.nan, np.nan)
    dx, dy = x - x.mean(), y - y.mean()
    slope = float(dx @ dy / (dx @ dx))
    intercept = float(y.mean() - slope * x.mean())
    residual = dy - slope * dx
    total = float(dy @ dy)
    r2 = 1 - float(residual @ residual) / total if total > 0 else np.nan
    return intercept, slope, r2


def qlike(realised_variance: np.ndarray, forecast_variance: np.ndarray) -> np.ndarray:
    """QLIKE loss of a variance forecast h against a realised variance s: s/h - ln(s/h) - 1.

    Zero for a perfect forecast, and (like the MSE of variances) robust to noise in the realised
    proxy (Patton 2011): the ranking of forecasts it gives is the one of the true variance. It
    punishes under-prediction more than over-prediction. NaN where s or h is not positive.
    """
    s = np.asarray(realised_variance, dtype=np.float64)
    h = np.asarray(forecast_variance, dtype=np.float64)
    valid = (s > 0) & (h > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(valid, s / np.where(valid, h, 1.0), np.nan)
    return ratio - np.log(ratio) - 1
