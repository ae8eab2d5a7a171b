"""Summaries of sampled forecast paths: quantiles, direction probability, volatility, OHLC checks.

Paths are arrays [..., n_paths, pred_len, 6] in price units with columns open, high, low, close,
volume, amount (FEATURE_COLUMNS). The leading axes, if any, are series.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from kronos.forecasting.series import CLOSE, FEATURE_COLUMNS, HIGH, LOW, OPEN

# The package's one set of default quantile levels, defined here only: the median and the
# 50/80/95% bands, what predict_quantiles, predict_df, `kronos forecast`, Ray and the service give.
DEFAULT_QUANTILE_LEVELS = (0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975)
# The quantile at level q of P sampled paths is the order statistic of rank q (P + 1), interpolated
# between neighbours ("weibull"). Between the order statistics of ranks k < m lies (m - k) / (P + 1)
# of the forecast distribution on average, so a band made this way holds its nominal share of
# outcomes for any P when the paths are right. numpy's default rank 1 + q (P - 1) makes the
# central 80% band of 20 paths hold only about 72%. Levels beyond the extreme ranks (below
# 1 / (P + 1) or above P / (P + 1)) give the extreme paths: a 95% band needs 39 or more paths.
QUANTILE_METHOD: Final = "weibull"


def sample_quantiles(samples: np.ndarray, levels: Sequence[float], axis: int = 0) -> np.ndarray:
    """Quantiles of `samples` along `axis` (QUANTILE_METHOD), levels first: [len(levels), ...].

    The one quantile of the package: forecasts, the CLI and evaluation all use it.
    """
    return np.quantile(np.asarray(samples, dtype=np.float64), levels, axis=axis, method=QUANTILE_METHOD)


class VolatilityWarning(UserWarning):
    """Realised volatility is undefined (NaN) where no sampled path has a positive close."""


def check_quantile_levels(quantile_levels: Sequence[float]) -> tuple[float, ...]:
    """Levels as a sorted tuple of distinct floats, each strictly inside (0, 1)."""
    try:
        levels = [float(q) for q in quantile_levels]
    except (TypeError, ValueError) as err:
        raise ValueError(f"quantile_levels must be a sequence of numbers, got {quantile_levels!r}") from err
    if not levels:
        raise ValueError("quantile_levels must hold at least one level")
    bad = [q for q in levels if not 0 < q < 1]
    if bad:
        raise ValueError(f"quantile_levels must lie strictly between 0 and 1, got {bad}")
    if len(set(levels)) != len(levels):
        raise ValueError(f"quantile_levels has repeated levels: {levels}")
    names: dict[str, float] = {}
    for q in levels:
        if f"{q:g}" in names:
            raise ValueError(
                f"quantile_levels {names[f'{q:g}']!r} and {q!r} print alike ({q:g}), so their columns would share "
                f"one name (close_q{q:g}): give levels that differ within 6 significant digits"
            )
        names[f"{q:g}"] = q
    return tuple(sorted(levels))


def quantile_column(field: str, level: float) -> str:
    """Column name of a quantile: `close_q0.1`, `close_q0.05`, `high_q0.5` (level printed with %g)."""
    return f"{field}_q{level:g}"


def ohlc_violations(paths: np.ndarray) -> np.ndarray:
    """Boolean [..., pred_len]: True where a bar breaks high >= max(open, close) >= min(open, close) >= low.

    `high >= low` follows from the chain, so a bar with high < low is flagged too.
    """
    paths = np.asarray(paths)
    o, h, lo, c = (paths[..., i] for i in (OPEN, HIGH, LOW, CLOSE))
    return np.asarray((h < np.maximum(o, c)) | (lo > np.minimum(o, c)))


def ohlc_violation_rate(paths: np.ndarray) -> float:
    """Fraction of sampled bars (over every path and step) that break the OHLC ordering."""
    return float(ohlc_violations(paths).mean())


def repair_ohlc(paths: np.ndarray) -> np.ndarray:
    """A copy with high = max(open, high, low, close) and low = min(open, high, low, close) per bar.

    Open and close are kept, so the repaired bar is the smallest change to high and low that
    satisfies the OHLC ordering; volume and amount are untouched.
    """
    repaired = np.array(paths, copy=True)
    prices = repaired[..., [OPEN, HIGH, LOW, CLOSE]]
    repaired[..., HIGH] = prices.max(axis=-1)
    repaired[..., LOW] = prices.min(axis=-1)
    return repaired


def log_returns(start: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Log returns along the last axis of `levels`, the first one from `start` (shape levels[..., 0]).

    A non-positive price has no log return: those entries are NaN.
    """
    chain = np.concatenate([np.asarray(start, dtype=np.float64)[..., None], levels], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(chain > 0, np.log(np.where(chain > 0, chain, 1.0)), np.nan)
    return np.diff(logs, axis=-1)


def close_log_returns(paths: np.ndarray, last_close: float | np.ndarray) -> np.ndarray:
    """Log close-to-close returns [..., n_paths, pred_len], the first from the last known close."""
    close = np.asarray(paths)[..., CLOSE].astype(np.float64)
    last = np.broadcast_to(np.asarray(last_close, dtype=np.float64)[..., None], close.shape[:-1])
    return log_returns(last, close)


def realized_volatility(paths: np.ndarray, last_close: float | np.ndarray) -> np.ndarray:
    """Cumulative realised volatility per path [..., n_paths, pred_len].

    Entry h is sqrt(r_1^2 + ... + r_h^2) with r_t the log close-to-close return into step t (r_1
    from the last known close): the textbook realised volatility over the first h steps, neither
    demeaned nor annualised. The last entry is the volatility over the whole horizon, so it grows
    with the horizon. A non-positive close has no log return: NaN from that step on.
    """
    return np.asarray(np.sqrt(np.cumsum(close_log_returns(paths, last_close) ** 2, axis=-1)))


def horizon_volatility(paths: np.ndarray, last_close: float | np.ndarray) -> np.ndarray:
    """The expected realised volatility per step [..., pred_len]: the mean over paths of
    `realized_volatility`, leaving out a path from the step its close stops being positive
    (NaN where no path is left). This is the `realized_vol` column users get."""
    vol = realized_volatility(paths, last_close)
    valid = ~np.isnan(vol)
    n_valid = valid.sum(axis=-2)
    total = np.where(valid, vol, 0.0).sum(axis=-2)
    return np.where(n_valid > 0, total / np.maximum(n_valid, 1), np.nan)


def prob_above(paths: np.ndarray, last_close: float | np.ndarray) -> np.ndarray:
    """P(up) per step [..., pred_len]: the fraction of paths whose close is strictly above the last close."""
    last = np.asarray(last_close, dtype=np.float64)[..., None, None]
    return np.asarray((np.asarray(paths)[..., CLOSE] > last).mean(axis=-2))


def path_statistics(
    paths: np.ndarray,
    last_close: float | np.ndarray,
    quantile_levels: Sequence[float] = DEFAULT_QUANTILE_LEVELS,
    repair: bool = True,
) -> dict[str, np.ndarray]:
    """Per-step statistics of sampled paths, as columns of shape [..., pred_len].

    paths: [..., n_paths, pred_len, 6] in price units; last_close: the last known close (one per
    leading index). Columns, in order: `<field>_mean` and `<field>_q<level>` (see
    `quantile_column`) for each field of FEATURE_COLUMNS; `prob_close_above_last`, the fraction
    of paths whose close at that step is strictly above last_close; `realized_vol`, the expected
    realised volatility up to that step (`horizon_volatility`; the last step gives the volatility
    over the whole horizon); `ohlc_violation_rate`, the fraction of raw paths whose bar at that step
    breaks the OHLC ordering, measured before any repair. With `repair`, every other statistic
    is computed on paths repaired by `repair_ohlc`. Quantiles are `sample_quantiles` (rank
    q (P + 1)), so they never decrease as the level grows.
    """
    levels = check_quantile_levels(quantile_levels)
    paths = np.asarray(paths, dtype=np.float64)
    if paths.ndim < 3 or paths.shape[-1] != len(FEATURE_COLUMNS):
        raise ValueError(f"paths must be [..., n_paths, pred_len, {len(FEATURE_COLUMNS)}], got {paths.shape}")
    violation = ohlc_violations(paths).mean(axis=-2)
    if repair:
        paths = repair_ohlc(paths)
    mean = paths.mean(axis=-3)
    quantiles = sample_quantiles(paths, levels, axis=-3)  # [n_levels, ..., pred_len, 6]
    columns: dict[str, np.ndarray] = {}
    for j, name in enumerate(FEATURE_COLUMNS):
        columns[f"{name}_mean"] = mean[..., j]
        for k, level in enumerate(levels):
            columns[quantile_column(name, level)] = quantiles[k, ..., j]
    columns["prob_close_above_last"] = prob_above(paths, last_close)
    columns["realized_vol"] = horizon_volatility(paths, last_close)
    columns["ohlc_violation_rate"] = violation
    return columns
