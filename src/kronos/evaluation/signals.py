"""Cross-sectional signals: what each method says of a series at a rebalance date, from the bars up
to that date only.

A signal ranks the universe; only its order within a date (and, for IC, its linear relation to
the forward return) matters. The model's signals are read off its sampled paths; the baselines'
off the closes up to the date.
"""

from __future__ import annotations

import numpy as np

from kronos.engine.sampling import series_key
from kronos.forecasting.paths import horizon_volatility, prob_above, sample_quantiles
from kronos.forecasting.series import CLOSE

MODEL_SIGNALS = ("kronos", "kronos_median", "kronos_p_up", "kronos_return_over_vol")
"""The model's signals, named as the report names them: expected return (the headline `kronos`),
median return, P(up), expected return over predicted volatility."""


def model_signals(paths: np.ndarray, last_close: np.ndarray) -> dict[str, np.ndarray]:
    """The model's signals from sampled paths [O, P, H, 6] and the last known closes [O].

    With Cₚ the close of path p at the horizon and C₀ the last known close:
    - `kronos`: expected return, mean over paths of Cₚ / C₀ − 1 (the mean path's return);
    - `kronos_median`: median return, the median (weibull quantile 0.5) of Cₚ / C₀ − 1;
    - `kronos_p_up`: P(up), the share of paths with Cₚ > C₀;
    - `kronos_return_over_vol`: expected return over the predicted volatility over the horizon,
      the mean over paths of √(Σₕ rₕ²) with rₕ the path's log close-to-close returns
      (`horizon_volatility`, the `realized_vol` a forecast reports); NaN where that is 0.
    """
    last = np.asarray(last_close, dtype=np.float64)
    growth = np.asarray(paths[..., -1, CLOSE], dtype=np.float64) / last[:, None] - 1  # [O, P]
    expected = growth.mean(axis=1)
    volatility = horizon_volatility(paths, last)[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_risk = np.where(volatility > 0, expected / volatility, np.nan)
    return {
        "kronos": expected,
        "kronos_median": sample_quantiles(growth, [0.5], axis=1)[0],
        "kronos_p_up": prob_above(paths, last)[:, -1],
        "kronos_return_over_vol": per_risk,
    }


def momentum(close: np.ndarray, rows: np.ndarray, lookback: int) -> np.ndarray:
    """Past return over `lookback` bars at each row i: close[i] / close[i − lookback] − 1."""
    return close[rows] / close[rows - lookback] - 1


def reversal(close: np.ndarray, rows: np.ndarray, lookback: int) -> np.ndarray:
    """Short-term reversal: minus the past return over `lookback` bars (losers are expected to bounce)."""
    return -momentum(close, rows, lookback)


def low_volatility(close: np.ndarray, rows: np.ndarray, lookback: int) -> np.ndarray:
    """Minus the sample standard deviation (n − 1) of the `lookback` log returns ending at row i
    (the calmest series rank highest)."""
    logs = np.log(close)
    windows = np.stack([np.diff(logs[i - lookback : i + 1]) for i in rows]) if len(rows) else np.empty((0, 2))
    return -windows.std(axis=1, ddof=1)


def baseline_names(
    momentum_lookbacks: tuple[int, ...], reversal_lookback: int, vol_lookback: int
) -> list[str]:
    """The baselines' names, in the report's order: momentum_L for each lookback, reversal_L,
    low_vol_L and random."""
    return [
        *(f"momentum_{k}" for k in momentum_lookbacks),
        f"reversal_{reversal_lookback}",
        f"low_vol_{vol_lookback}",
        "random",
    ]


def baseline_signals(
    close: np.ndarray,
    rows: np.ndarray,
    momentum_lookbacks: tuple[int, ...],
    reversal_lookback: int,
    vol_lookback: int,
) -> dict[str, np.ndarray]:
    """Every baseline but `random` for one series' closes at its rows `rows` (each row needs
    max(lookbacks) bars before it): name -> [len(rows)]."""
    signals = {f"momentum_{k}": momentum(close, rows, k) for k in momentum_lookbacks}
    signals[f"reversal_{reversal_lookback}"] = reversal(close, rows, reversal_lookback)
    signals[f"low_vol_{vol_lookback}"] = low_volatility(close, rows, vol_lookback)
    return signals


def random_signal(seed: int, date: int, count: int) -> np.ndarray:
    """Standard normal draws for the `count` series of the universe at rebalance date `date`
    (its position on the calendar), from (seed, date) alone: a signal with no information,
    whose IC must sit at zero."""
    return np.random.default_rng(series_key(seed, "random", date)).standard_normal(count)
