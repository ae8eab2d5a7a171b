"""The arithmetic of cross-sectional scoring: correlations per date, Newey-West t-statistics,
quantile portfolios, and books rebalanced with costs. Plain numpy on arrays; the formulas are in
each docstring (docs/evaluation.md explains how to read them)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two equal-length vectors, NaN when either is constant or shorter than 3:
    IC = Σ(x − x̄)(y − ȳ) / √(Σ(x − x̄)² Σ(y − ȳ)²)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    scale = math.sqrt(float((dx * dx).sum() * (dy * dy).sum()))
    return float((dx * dy).sum() / scale) if scale > 0 else math.nan


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given the mean of the ranks they span."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranked = np.empty(len(x))
    ranked[order] = np.arange(1, len(x) + 1)
    values, inverse = np.unique(x, return_inverse=True)
    if len(values) < len(x):
        sums = np.bincount(inverse, weights=ranked)
        ranked = (sums / np.bincount(inverse))[inverse]
    return ranked


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (RankIC): the Pearson correlation of the ranks (ties averaged)."""
    return pearson(ranks(x), ranks(y))


def newey_west_lag(horizon: int, rebalance: int) -> int:
    """Lags of the Newey-West variance for a series of per-date statistics whose H-bar forward
    returns overlap when dates are K bars apart: ⌈H/K⌉ − 1 (0 when they do not overlap)."""
    return max(math.ceil(horizon / rebalance) - 1, 0)


def newey_west_t(values: np.ndarray, lag: int) -> float:
    """t-statistic of the mean of `values` (NaNs dropped) with a Newey-West standard error.

    t = x̄ / √(V / n), V = γ₀ + 2 Σ_{j=1..lag} (1 − j/(lag + 1)) γⱼ, γⱼ = (1/n) Σ_t (xₜ − x̄)(xₜ₋ⱼ − x̄)
    (Bartlett weights; with lag 0, V is the variance with divisor n). NaN with fewer than 3
    values or no variance.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 3:
        return math.nan
    d = x - x.mean()
    variance = float(d @ d) / n
    for j in range(1, min(lag, n - 1) + 1):
        variance += 2 * (1 - j / (lag + 1)) * float(d[j:] @ d[:-j]) / n
    return float(x.mean() / math.sqrt(variance / n)) if variance > 0 else math.nan


def quantile_means(signal: np.ndarray, returns: np.ndarray, groups: int) -> np.ndarray:
    """Mean return of each of `groups` portfolios of (nearly) equal size, sorted by signal
    ascending: group 1 holds the lowest signals. Ties are broken by position (stable sort)."""
    order = np.argsort(signal, kind="stable")
    return np.array([returns[part].mean() for part in np.array_split(order, groups)])


def top_bottom_weights(signal: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the top-k long book (1/k on the k highest signals) and of the long-short book
    (+1/k on the k highest, −1/k on the k lowest). Ties are broken by position (stable sort)."""
    order = np.argsort(-np.asarray(signal, dtype=np.float64), kind="stable")
    long = np.zeros(len(signal))
    long[order[:top_k]] = 1 / top_k
    short = np.zeros(len(signal))
    short[order[-top_k:]] = 1 / top_k
    return long, long - short


@dataclass(frozen=True)
class BookPath:
    """A book's returns per rebalance period: gross, net of costs, and the weight traded."""

    gross: np.ndarray
    net: np.ndarray
    traded: np.ndarray  # Σᵢ |wₜ,ᵢ − wₜ₋₁,ᵢ| at each rebalance (w before the first: 0)


def book_path(weights: np.ndarray, returns: np.ndarray, cost_bps: float) -> BookPath:
    """Returns of a book held at `weights` [D, S] from each rebalance to the next, the period's
    asset returns being `returns` [D, S] (NaN where a weight is 0 and the asset has no return).

    gross_t = Σᵢ wₜ,ᵢ Rₜ,ᵢ; traded_t = Σᵢ |wₜ,ᵢ − wₜ₋₁,ᵢ| (the whole book is bought at the first
    rebalance; weights are reset to target at each one, drift within a period is not carried);
    net_t = gross_t − traded_t × cost_bps / 10⁴ (every unit bought or sold pays cost_bps).
    """
    weights = np.asarray(weights, dtype=np.float64)
    held = np.where(weights != 0, np.asarray(returns, dtype=np.float64), 0.0)
    gross = (weights * held).sum(axis=1)
    previous = np.vstack([np.zeros((1, weights.shape[1])), weights[:-1]])
    traded = np.abs(weights - previous).sum(axis=1)
    return BookPath(gross, gross - traded * cost_bps / 1e4, traded)


def turnover(traded: np.ndarray, gross_exposure: float) -> float:
    """Mean share of the book replaced per rebalance, after the first (which opens it):
    ½ Σᵢ |Δwᵢ| / Σᵢ |wᵢ|, so 1 means every position changed. NaN with a single rebalance."""
    later = np.asarray(traded, dtype=np.float64)[1:]
    return float(later.mean() / 2 / gross_exposure) if len(later) else math.nan


def max_drawdown(returns: np.ndarray) -> float:
    """Largest fall of the equity curve from its running peak, as a fraction: max over t of
    1 − Eₜ / max_{s ≤ t} Eₛ, with E₀ = 1 and Eₜ = Π_{s ≤ t} (1 + rₛ)."""
    equity = np.concatenate([[1.0], np.cumprod(1 + np.asarray(returns, dtype=np.float64))])
    return float((1 - equity / np.maximum.accumulate(equity)).max())


def _annualised(growth: float, power: float) -> float:
    """growth^power − 1; −1 (all lost) where the book lost all its value or more."""
    return float(growth**power - 1) if growth > 0 else -1.0


def book_statistics(returns: np.ndarray, periods_per_year: float) -> dict[str, float]:
    """Cumulative return Π(1 + rₜ) − 1; annualised return (1 + cumulative)^(P/n) − 1; annualised
    volatility std(r) √P (sample std, n − 1); Sharpe mean(r) / std(r) √P (no risk-free rate);
    maximum drawdown (`max_drawdown`). P: rebalance periods per year, n: periods."""
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    cumulative = float(np.prod(1 + r) - 1) if n else math.nan
    std = float(r.std(ddof=1)) if n > 1 else math.nan
    growth = 1 + cumulative
    return {
        "cumulative": cumulative,
        "return": _annualised(growth, periods_per_year / n) if n else math.nan,
        "volatility": std * math.sqrt(periods_per_year),
        "sharpe": float(r.mean() / std * math.sqrt(periods_per_year)) if std > 0 else math.nan,
        "max_drawdown": max_drawdown(r) if n else math.nan,
    }
