"""Calibration: a per-step correction of forecast paths, fitted on the series' own past.

A forecast made at an earlier origin t of a series, from the bars before t, can be compared with
the bars that followed. Rolling such origins through the history gives pairs of (paths, outcome);
the correction that makes those past forecasts right is applied to the forecast from the end of
the history. Only bars of the history are used, so a calibration never sees the future it is
applied to.

The correction (chosen by measurement among others, docs/calibration.md) works per forecast step h
on each path's log move from the last close (a path that a model decodes at or below zero counts
no lower than the forecast's lowest path that stays positive, `_floor`; price differences only
where the last close itself is not positive). With c the median path's close move, sd the paths'
spread (std) and vol the per-bar volatility of the history's closes (as the Gaussian random walk
baseline estimates it):

    center = shrink_h * c,   spread = sqrt(weight_h * sd^2 + (1 - weight_h) * vol^2 * h)

(the spread no less than a tenth of the random walk's, vol * sqrt(h): paths that all agree must
not read as a forecast that knew the future, whose misses would be unbounded).

`shrink` pulls the model's expected move toward no move and `weight` blends the model's spread
with the random walk's; both are chosen on a grid to minimise the mean CRPS of the past forecasts
(closed form of a normal with that center and spread, times a free scale). The past misses in
units of that spread, z = (outcome - center) / spread, then give the shape: the path of rank j
of P is moved to center + spread * (the j / (P + 1) quantile of z), a split-conformal band
drawn as paths. Open, high, low and close of a path's bar shift by the same log amount, so a
consistent bar stays consistent; volume and amount are kept. Bands, P(up) and every other
statistic are then read off the calibrated paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kronos.engine.sampling import Sampling
from kronos.forecasting.paths import sample_quantiles
from kronos.forecasting.series import CLOSE, HIGH, LOW, OPEN, positive_int

PRICES = [OPEN, HIGH, LOW, CLOSE]
MIN_ORIGINS = 20  # past forecasts needed to fit one
MAX_ORIGINS = 200  # the most recent past forecasts used
SHRINKS = np.linspace(0.0, 1.0, 6)
WEIGHTS = np.linspace(0.0, 1.0, 6)
SCALES = np.exp(np.linspace(np.log(0.4), np.log(2.5), 33))  # ~6% apart; only to choose shrink and weight
TINY = 1e-12
# The calibrated spread is at least this share of the random walk's: a past forecast whose paths
# all agree would otherwise miss by billions of spreads, and its quantile throw a path far out.
MIN_WALK_SHARE = 0.1


def default_every(steps: int) -> int:
    """Bars between two past origins: half the horizon (measured, docs/calibration.md), so that 200 of
    them span 100 horizons; closer origins would mostly repeat what their neighbours saw."""
    return max(1, steps // 2)


def fit_origins(
    n_rows: int, lookback: int, steps: int, every: int | None = None, max_origins: int | None = MAX_ORIGINS
) -> np.ndarray:
    """The origins (rows t; the forecast sees rows t - lookback .. t - 1) at which a calibration is
    fitted inside a history of n_rows bars: t = lookback + k * every, counted from the history's
    first bar, with t + steps <= n_rows (the outcome is known); the last `max_origins` of them.

    Counting from the first bar means that a longer history of the same series reuses the
    origins of a shorter one, so a backtest computes each past forecast once.
    """
    every = default_every(steps) if every is None else positive_int(every, "every")
    origins = np.arange(lookback, n_rows - steps + 1, every, dtype=np.int64)
    return origins if max_origins is None else origins[-max_origins:]


MIN_LOOKBACK = 3  # bars a past forecast sees at least: their volatility takes two log returns


@dataclass(frozen=True)
class PastOrigins:
    """Which past forecasts a calibration is fitted on (`fit_origins`): each from the `lookback`
    bars before its origin (None: the model's), one origin every `every` bars (None: half the
    horizon), the last `max_origins` of them (None: all). Checked when made, naming the field."""

    lookback: int | None = None
    every: int | None = None
    max_origins: int | None = MAX_ORIGINS

    def __post_init__(self) -> None:
        if self.lookback is not None and positive_int(self.lookback, "lookback") < MIN_LOOKBACK:
            raise ValueError(
                f"lookback must be at least {MIN_LOOKBACK} bars (a history's volatility takes two log "
                f"returns), got {self.lookback}"
            )
        if self.every is not None:
            positive_int(self.every, "every")
        if self.max_origins is not None and positive_int(self.max_origins, "max_origins") < MIN_ORIGINS:
            raise ValueError(
                f"max_origins must be at least {MIN_ORIGINS} (the past forecasts a calibration needs) or None "
                f"for all, got {self.max_origins}"
            )


PAST_ORIGINS = PastOrigins()


def required_rows(lookback: int, steps: int, every: int | None = None, min_origins: int = MIN_ORIGINS) -> int:
    """The shortest history that holds `min_origins` past forecasts with their outcomes."""
    every = default_every(steps) if every is None else every
    return lookback + (min_origins - 1) * every + steps


def history_volatility(closes: np.ndarray) -> np.ndarray:
    """Per-bar volatility of closes [..., L]: the sample std of their log returns (of their
    differences where a close is not positive), as the Gaussian random walk baseline estimates it."""
    closes = np.asarray(closes, dtype=np.float64)
    positive = (closes > 0).all(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.diff(np.log(np.where(positive, closes, 1.0)), axis=-1)
    volatility: np.ndarray = np.where(positive, logs, np.diff(closes, axis=-1)).std(axis=-1, ddof=1)
    return volatility


def origin_volatility(bars: np.ndarray, origins: np.ndarray, lookback: int) -> np.ndarray:
    """The volatility [N] of the history each past forecast saw: `history_volatility` of the float32
    closes (as the model sees them) of bars[t - lookback : t], for each origin t."""
    closes = np.asarray(bars[:, CLOSE], dtype=np.float32)
    return np.array([float(history_volatility(closes[t - lookback : t])) for t in origins])


def fit_past_forecasts(
    paths: np.ndarray, bars: np.ndarray, origins: np.ndarray, lookback: int, sampling: Sampling
) -> Calibration:
    """A calibration from past forecasts of a series: paths [N, P, steps, 6] sampled at origins
    [N] (rows t of the series' bars [n, 6], float64) from the `lookback` bars before each, with
    `sampling`. Each is compared with the closes that followed it (bars[t : t + steps])."""
    origins = np.asarray(origins, dtype=np.int64)
    steps = paths.shape[2]
    outcomes = np.stack([bars[t : t + steps, CLOSE] for t in origins])
    volatility = origin_volatility(bars, origins, lookback)
    return Calibration.fit(paths, outcomes, bars[origins - 1, CLOSE], volatility, sampling, lookback)


@dataclass(frozen=True, eq=False)
class Calibration:
    """A fitted per-step correction of one series' forecast paths (`apply`).

    shrink, weight: [steps], see the module's docstring. misses: [N, steps] the past forecasts'
    misses in units of their calibrated spread. origins: how many past forecasts it was fitted
    on. sampling: (T, top_k, top_p) of the paths it was fitted on; forecasts sampled otherwise
    have another spread and are refused. lookback: the history each past forecast saw.
    """

    shrink: np.ndarray
    weight: np.ndarray
    misses: np.ndarray
    sampling: tuple[float, int, float]
    lookback: int

    @property
    def steps(self) -> int:
        return len(self.shrink)

    @property
    def origins(self) -> int:
        return len(self.misses)

    @classmethod
    def fit(
        cls,
        paths: np.ndarray,
        outcomes: np.ndarray,
        last_close: np.ndarray,
        volatility: np.ndarray,
        sampling: Sampling,
        lookback: int,
    ) -> Calibration:
        """Fit on N past forecasts: paths [N, P, steps, 6] in price units, the closes that followed
        [N, steps], the last close each forecast saw [N] and its history's volatility [N]."""
        paths = np.asarray(paths, dtype=np.float64)
        outcomes = np.asarray(outcomes, dtype=np.float64)
        last = np.asarray(last_close, dtype=np.float64)
        vol = np.asarray(volatility, dtype=np.float64)
        n = paths.shape[0]
        if (
            paths.ndim != 4
            or outcomes.shape != (n, paths.shape[2])
            or last.shape != (n,)
            or vol.shape != (n,)
        ):
            raise ValueError(
                "paths [N, P, steps, 6], outcomes [N, steps], last_close [N] and volatility [N] do not "
                f"fit: {paths.shape}, {outcomes.shape}, {last.shape}, {vol.shape}"
            )
        if n < MIN_ORIGINS:
            raise ValueError(f"a calibration needs at least {MIN_ORIGINS} past forecasts, got {n}")
        floor, last = _floor(paths, last)[:, None, None], last[:, None, None]
        moves = _moves(paths[..., CLOSE], last, floor)  # [N, P, steps]
        # an outcome is a real close: only one at or below zero counts as the floor
        outcome_floor = np.minimum(floor[:, 0], np.where(outcomes > 0, outcomes, np.inf))
        outcome = _moves(outcomes, last[:, 0], outcome_floor)  # [N, steps]
        median, sd = np.median(moves, axis=1), moves.std(axis=1)  # [N, steps]
        walk = vol[:, None] ** 2 * np.arange(1, moves.shape[-1] + 1)  # [N, steps]
        best = [_best(median[:, h], sd[:, h], walk[:, h], outcome[:, h]) for h in range(moves.shape[-1])]
        shrink, weight = (np.array(v) for v in zip(*best))
        center, spread = shrink * median, _spread(weight, sd, walk)
        misses = np.sort((outcome - center) / spread, axis=0)
        return cls(shrink, weight, misses, (sampling.T, sampling.top_k, sampling.top_p), int(lookback))

    def check(self, sampling: Sampling, pred_len: int) -> None:
        """Refuse a forecast this calibration does not describe: another sampling or a longer horizon."""
        drawn = (sampling.T, sampling.top_k, sampling.top_p)
        if drawn != self.sampling:
            raise ValueError(
                f"the calibration was fitted on paths sampled with (T, top_k, top_p) = {self.sampling}; "
                f"this forecast samples {drawn}"
            )
        self._check_steps(pred_len)

    def _check_steps(self, pred_len: int) -> None:
        if pred_len > self.steps:
            raise ValueError(
                f"the calibration was fitted for {self.steps} steps; this forecast has {pred_len}"
            )

    def apply(
        self, paths: np.ndarray, last_close: float | np.ndarray, volatility: float | np.ndarray
    ) -> np.ndarray:
        """Calibrated copy of paths [..., P, pred_len, 6] (pred_len <= steps), with the last close
        and the history's volatility of each series (one per leading index)."""
        paths = np.asarray(paths, dtype=np.float64)
        n_paths, pred_len = paths.shape[-3], paths.shape[-2]
        self._check_steps(pred_len)
        last = np.asarray(last_close, dtype=np.float64)
        floor = _floor(paths, last)[..., None, None, None]
        last = last[..., None, None, None]
        moves = _moves(paths[..., PRICES], last, floor)  # [..., P, pred_len, 4]
        close = moves[..., CLOSE]  # [..., P, pred_len]
        walk = np.asarray(volatility, dtype=np.float64)[..., None, None] ** 2 * np.arange(1, pred_len + 1)
        center = self.shrink[:pred_len] * np.median(close, axis=-2, keepdims=True)
        spread = _spread(self.weight[:pred_len], close.std(axis=-2, keepdims=True), walk)
        levels = np.arange(1, n_paths + 1) / (n_paths + 1)
        shape = sample_quantiles(self.misses[:, :pred_len], levels)  # [P, pred_len], increasing
        rank = np.argsort(np.argsort(close, axis=-2, kind="stable"), axis=-2, kind="stable")
        target = center + spread * np.take_along_axis(np.broadcast_to(shape, close.shape), rank, axis=-2)
        out = paths.copy()
        out[..., PRICES] = _prices(moves + (target - close)[..., None], last)
        return out


def _spread(weight: np.ndarray, sd: np.ndarray, walk: np.ndarray) -> np.ndarray:
    """The spread of the module's docstring, at least MIN_WALK_SHARE of the walk's (and TINY)."""
    blend = np.sqrt(weight * sd**2 + (1 - weight) * walk)
    spread: np.ndarray = np.maximum(blend, np.maximum(MIN_WALK_SHARE * np.sqrt(walk), TINY))
    return spread


def _floor(paths: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Per forecast: the lowest price its paths count at, the lowest price of its paths that stay
    positive, or its last close if lower (or if no path stays positive).

    A model may decode a path at or below zero, where a log move is undefined; on its way there
    such a path passes prices near zero (a thousandth of the last close, seen on ETH/USD daily),
    whose log moves are as much a decoding failure. Counting every price of the forecast no lower
    than the floor changes only the paths that cross zero: they stay the lowest paths, their bars
    stay consistent (a monotone map of the four prices), and they stay in the median and spread,
    which therefore stay those of the paths the model decoded (dropping them made the spread of a
    forecast with few paths left collapse). Not used where the last close is not positive.
    """
    prices = paths[..., PRICES]
    stays = (prices > 0).all(axis=(-1, -2), keepdims=True)  # per path
    lowest = np.where(stays, prices, np.inf).min(axis=(-1, -2, -3))
    floor: np.ndarray = np.minimum(lowest, last)
    return floor


def _moves(prices: np.ndarray, last: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Moves from the last close: where it is positive, log returns of the prices counted no lower
    than the forecast's `_floor`, so that every forecast of such a series is in the log units of
    its history's volatility and of the past misses; price differences where it is not."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.maximum(prices, floor) / last)
    moves: np.ndarray = np.where(last > 0, logs, prices - last)
    return moves


def _prices(moves: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The prices of `_moves` from the last close: positive wherever the last close is."""
    with np.errstate(over="ignore", invalid="ignore"):
        grown = last * np.exp(moves)
    prices: np.ndarray = np.where(last > 0, grown, last + moves)
    return prices


def _best(median: np.ndarray, sd: np.ndarray, walk: np.ndarray, outcome: np.ndarray) -> tuple[float, float]:
    """(shrink, weight) of the grid minimising, with the best scale s, the mean CRPS of
    N(shrink * median, s^2 (weight sd^2 + (1 - weight) walk)) at the outcomes of N past forecasts."""
    mean = SHRINKS[:, None, None, None] * median  # [shrinks, 1, 1, N]
    sd_grid = SCALES[:, None] * _spread(WEIGHTS[:, None, None], sd, walk)  # [weights, scales, N]
    loss = normal_crps(mean, sd_grid, outcome).mean(axis=-1)
    i, j, _ = np.unravel_index(int(np.argmin(loss)), loss.shape)
    return float(SHRINKS[i]), float(WEIGHTS[j])


def normal_crps(mean: np.ndarray, sd: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of N(mean, sd^2) at y: sd (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)), z = (y - mean) / sd."""
    z = (y - mean) / sd
    return np.asarray(
        sd * (z * _erf(z / np.sqrt(2)) + 2 * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) - 1 / np.sqrt(np.pi))
    )


def _erf(x: np.ndarray) -> np.ndarray:
    """erf from its rational approximation (Abramowitz and Stegun 7.1.26, error below 1.5e-7)."""
    t = 1 / (1 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf: np.ndarray = np.sign(x) * (1 - poly * np.exp(-x * x))
    return erf
