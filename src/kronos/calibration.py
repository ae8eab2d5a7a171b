"""Calibration: a per-step correction of forecast paths, fitted on the series' own past.

A forecast made at an earlier origin t of a series, from the bars before t, can be compared with
the bars that followed. Rolling such origins through the history gives pairs of (paths, outcome);
the correction that makes those past forecasts right is applied to the forecast from the end of
the history. Only bars of the history are used, so a calibration never sees the future it is
applied to.

The correction (chosen by measurement, docs/calibration.md): per forecast step h, every path's
log move from the last close is pulled toward or pushed away from the median path by a factor
s_h, the one that minimises the mean CRPS of the past forecasts' close. Open, high, low and close
of a bar move by the same monotone map, so a consistent bar stays consistent; volume and amount
are kept. Bands, P(up) and every other statistic are then read off the calibrated paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import CLOSE, HIGH, LOW, OPEN, positive_int
from .generation import Sampling

PRICES = [OPEN, HIGH, LOW, CLOSE]
MIN_ORIGINS = 20  # past forecasts needed to fit one
MAX_ORIGINS = 200  # the most recent past forecasts used
SCALES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 49))  # candidate factors, ~6% apart


def default_every(steps: int) -> int:
    """Bars between two past origins: a quarter of the horizon, so that 200 of them span 50 horizons."""
    return max(1, steps // 4)


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


def required_rows(lookback: int, steps: int, every: int | None = None, min_origins: int = MIN_ORIGINS) -> int:
    """The shortest history that holds `min_origins` past forecasts with their outcomes."""
    every = default_every(steps) if every is None else every
    return lookback + (min_origins - 1) * every + steps


@dataclass(frozen=True, eq=False)
class Calibration:
    """A fitted per-step correction of one series' forecast paths (`apply`).

    scale: [steps] factor on each path's log move from the last close, around the median path.
    origins: how many past forecasts it was fitted on. sampling: (T, top_k, top_p) of the paths
    it was fitted on; forecasts sampled otherwise have another spread and are refused.
    """

    scale: np.ndarray
    origins: int
    sampling: tuple[float, int, float]
    lookback: int

    @property
    def steps(self) -> int:
        return len(self.scale)

    @classmethod
    def fit(
        cls,
        paths: np.ndarray,
        outcomes: np.ndarray,
        last_close: np.ndarray,
        sampling: Sampling,
        lookback: int,
    ) -> Calibration:
        """Fit on N past forecasts: paths [N, P, steps, 6] in price units, the closes that followed
        [N, steps] and the last close each forecast saw [N]."""
        paths = np.asarray(paths, dtype=np.float64)
        outcomes = np.asarray(outcomes, dtype=np.float64)
        last = np.asarray(last_close, dtype=np.float64)
        if (
            paths.ndim != 4
            or outcomes.shape != (paths.shape[0], paths.shape[2])
            or last.shape != paths.shape[:1]
        ):
            raise ValueError(
                f"paths [N, P, steps, 6], outcomes [N, steps] and last_close [N] do not fit: "
                f"{paths.shape}, {outcomes.shape}, {last.shape}"
            )
        if paths.shape[0] < MIN_ORIGINS:
            raise ValueError(
                f"a calibration needs at least {MIN_ORIGINS} past forecasts, got {paths.shape[0]}"
            )
        positive, last = _positive(paths, last)[:, None, None], last[:, None, None]
        moves = _moves(paths[..., CLOSE], last, positive)  # [N, P, steps]
        outcome = _moves(outcomes[:, None], last, positive)[:, 0]  # [N, steps]
        center = np.median(moves, axis=1)
        spread = moves - center[:, None]  # [N, P, steps]
        miss = outcome - center  # [N, steps]
        scale = np.array([_best_scale(spread[..., h], miss[..., h]) for h in range(moves.shape[-1])])
        return cls(scale, len(paths), (sampling.T, sampling.top_k, sampling.top_p), int(lookback))

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

    def apply(self, paths: np.ndarray, last_close: float | np.ndarray) -> np.ndarray:
        """Calibrated copy of paths [..., P, pred_len, 6] (pred_len <= steps), last_close one per
        leading index: open, high, low and close of every bar moved by the step's factor."""
        paths = np.asarray(paths, dtype=np.float64)
        pred_len = paths.shape[-2]
        self._check_steps(pred_len)
        last = np.asarray(last_close, dtype=np.float64)
        positive = _positive(paths, last)
        last = last[..., None, None, None]
        moves = _moves(paths[..., PRICES], last, positive[..., None, None, None])
        center = np.median(moves[..., CLOSE : CLOSE + 1], axis=-3, keepdims=True)
        scale = self.scale[:pred_len, None]
        out = paths.copy()
        out[..., PRICES] = _prices(center + scale * (moves - center), last, positive[..., None, None, None])
        return out


def _positive(paths: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Per series: whether every price and the last close are positive, so that moves are log returns."""
    prices = paths[..., PRICES]
    return (prices > 0).all(axis=(-1, -2, -3)) & (np.asarray(last) > 0)


def _moves(prices: np.ndarray, last: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Log returns from the last close where positive, else price differences."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.where(positive, prices, 1.0) / np.where(positive, last, 1.0))
    return np.where(positive, logs, prices - last)


def _prices(moves: np.ndarray, last: np.ndarray, positive: np.ndarray) -> np.ndarray:
    return np.where(positive, last * np.exp(np.where(positive, moves, 0.0)), last + moves)


def _best_scale(spread: np.ndarray, miss: np.ndarray) -> float:
    """The factor s of SCALES minimising the mean sample CRPS of `center + s * spread` against the
    outcomes: E|s d - e| - s E|d - d'| / 2 with d the paths' spread [N, P] and e the miss [N]."""
    n = spread.shape[1]
    ordered = np.sort(spread, axis=1)
    pair = 2 * (ordered * (2 * np.arange(1, n + 1) - n - 1)).sum(axis=1) / (n * n)  # E|d - d'|
    loss = [np.abs(s * spread - miss[:, None]).mean() - 0.5 * s * pair.mean() for s in SCALES]
    return float(SCALES[int(np.argmin(loss))])
