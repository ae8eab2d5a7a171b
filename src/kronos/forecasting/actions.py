"""Corporate actions in a series' bars: split- and jump-like bars found (`find_jumps`), said
(`SplitWarning`, from `ForecastingCore.sample` for the bars a forecast is given) and, for
split-like ones, back-adjusted on request (`adjust_splits`; `TableOptions(adjust_splits=True)`,
`kronos forecast --adjust-splits`).

A stock split divides the price at one bar by a small ratio (2:1 halves it) and a reverse split
multiplies it; unadjusted, the model sees a move of tens of standard deviations and forecasts a
return to the old level (a +100% median after a 2:1 split on the last bar). A bar is split-like
when the previous close over its open (or its close) is within SPLIT_TOLERANCE of a split ratio
and the move is at least SPLIT_SIGMAS robust standard deviations of the series' own log returns;
jump-like when the move is at least JUMP_SIGMAS of them and JUMP_MOVE in size, whatever its ratio.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import pandas as pd

from kronos.forecasting.series import CLOSE, FEATURE_COLUMNS, HIGH, LOW, OPEN, VOLUME_COLUMN, Series

SPLIT_RATIOS = tuple(
    sorted(
        {
            Fraction(a, b)
            for a, b in ((2, 1), (3, 1), (4, 1), (5, 1), (8, 1), (10, 1), (20, 1), (3, 2), (5, 4), (5, 2))
        }
        | {
            Fraction(b, a)
            for a, b in ((2, 1), (3, 1), (4, 1), (5, 1), (8, 1), (10, 1), (20, 1), (3, 2), (5, 4), (5, 2))
        }
    )
)  # previous price over new price: 2 for a 2:1 split, 1/10 for a 1:10 reverse split
SPLIT_TOLERANCE = 0.03  # a ratio within 3% of a split ratio is split-like
SPLIT_SIGMAS = 8.0  # ... if the move is this many robust standard deviations of the series' log returns
JUMP_SIGMAS = 15.0  # a move this far outside the series' own range is jump-like ...
JUMP_MOVE = 0.2  # ... if it is at least 20% (log-wise) as well
MIN_SIGMA = 1e-3  # the robust standard deviation of a series whose closes barely move (MAD 0)
VOLUME = FEATURE_COLUMNS.index(VOLUME_COLUMN)


class SplitWarning(UserWarning):
    """A history holds split- or jump-like bars (or was back-adjusted for them)."""


@dataclass(frozen=True)
class Jump:
    """A split- or jump-like bar: its row in the series (from 0), timestamp, the previous close
    over its price (`ratio`), the split ratio it looks like (None: a jump), and its size in robust
    standard deviations of the series' log returns."""

    row: int
    timestamp: pd.Timestamp
    before: float
    after: float
    split: Fraction | None
    sigmas: float

    def describe(self, bars: int) -> str:
        """'bar 171 of 200 (2024-03-05 00:00:00): close 100.2 then 50.1 (x0.50, 40 sigmas), like a 2:1 split'."""
        like = "a jump" if self.split is None else f"like a {_split_name(self.split)}"
        return (
            f"bar {self.row + 1} of {bars} ({self.timestamp}): {self.before:.6g} then {self.after:.6g} "
            f"(x{self.after / self.before:.3g}, {self.sigmas:.0f} sigmas), {like}"
        )


def _split_name(ratio: Fraction) -> str:
    if ratio > 1:
        return f"{ratio.numerator}:{ratio.denominator} split"
    return f"{ratio.numerator}:{ratio.denominator} reverse split"


def robust_sigma(closes: np.ndarray) -> float:
    """1.4826 x the median absolute deviation of the log returns of the positive closes (at least MIN_SIGMA)."""
    positive = closes[closes > 0]
    returns = np.diff(np.log(positive)) if len(positive) > 2 else np.zeros(0)
    if not len(returns):
        return MIN_SIGMA
    return max(float(1.4826 * np.median(np.abs(returns - np.median(returns)))), MIN_SIGMA)


def find_jumps(series: Series) -> list[Jump]:
    """The split- and jump-like bars of `series` (module docstring), in time order."""
    bars = series.bars
    if len(bars) < 3:
        return []
    sigma = robust_sigma(bars[:, CLOSE])
    previous, opens, closes = bars[:-1, CLOSE], bars[1:, OPEN], bars[1:, CLOSE]
    with np.errstate(divide="ignore", invalid="ignore"):
        move = np.maximum(np.abs(np.log(previous / opens)), np.abs(np.log(previous / closes)))
    smallest = np.log(float(min(r for r in SPLIT_RATIOS if r > 1)) * (1 - SPLIT_TOLERANCE))
    candidates = (
        (previous > 0) & (opens > 0) & (closes > 0) & (move >= SPLIT_SIGMAS * sigma) & (move >= smallest)
    )
    jumps = []
    for i in np.flatnonzero(candidates):
        jump = _jump(int(i) + 1, previous[i], opens[i], closes[i], sigma, series.timestamps[i + 1])
        if jump is not None:
            jumps.append(jump)
    return jumps


def _jump(
    row: int, before: float, open_: float, close: float, sigma: float, when: pd.Timestamp
) -> Jump | None:
    """The bar at `row` as a Jump, or None when it moves as the series does."""
    for price in (open_, close):  # the open carries a split whole; a close-only series has it in the close
        ratio = before / price
        sigmas = abs(np.log(ratio)) / sigma
        split = min(SPLIT_RATIOS, key=lambda r: abs(ratio / float(r) - 1))
        if abs(ratio / float(split) - 1) <= SPLIT_TOLERANCE and sigmas >= SPLIT_SIGMAS:
            return Jump(row, when, float(before), float(price), split, float(sigmas))
    move = max(abs(np.log(before / open_)), abs(np.log(before / close)))
    if move >= JUMP_SIGMAS * sigma and move >= JUMP_MOVE:
        price = open_ if abs(np.log(before / open_)) >= abs(np.log(before / close)) else close
        return Jump(row, when, float(before), float(price), None, float(move / sigma))
    return None


def adjust_splits(series: Series, warn: bool = True) -> Series:
    """`series` back-adjusted for its split-like bars: the prices before each divided by its ratio
    and the volume multiplied by it (the amount traded is unchanged), as data vendors adjust them.
    Jump-like bars are left as they are. Says what it adjusted (SplitWarning) unless `warn` is False."""
    jumps = find_jumps(series)
    splits = [jump for jump in jumps if jump.split is not None]
    if not splits:
        return series
    bars = series.bars.copy()
    for jump in splits:
        ratio = float(jump.split)  # type: ignore[arg-type]
        bars[: jump.row, [OPEN, HIGH, LOW, CLOSE]] /= ratio
        bars[: jump.row, VOLUME] *= ratio
    if warn:
        warnings.warn(
            f"{series.name}: prices before {len(splits)} split-like bar(s) back-adjusted: "
            + "; ".join(jump.describe(len(series)) for jump in splits[:5]),
            SplitWarning,
            stacklevel=2,
        )
    return replace(series, bars=bars)


def jumps_note(group: Sequence[Series]) -> str | None:
    """The split- and jump-like bars of each series in one line (None: there are none); series of
    one name (the windows of one series) are said once, each bar once."""
    said: dict[str, dict[pd.Timestamp, str]] = {}
    for one in group:
        for jump in find_jumps(one):
            said.setdefault(one.name, {}).setdefault(jump.timestamp, jump.describe(len(one)))
    if not said:
        return None
    shown = "; ".join(
        f"{name}: {', '.join(list(bars.values())[:3])}" for name, bars in list(said.items())[:5]
    )
    more = f" (and {len(said) - 5} more series)" if len(said) > 5 else ""
    return (
        f"split- or jump-like bars in the history of {shown}{more}. Unadjusted, a split reads as a move of "
        "tens of standard deviations and the forecast reverts towards the old price: back-adjust split-like "
        "bars (kronos forecast --adjust-splits, TableOptions(adjust_splits=True), or "
        "kronos.forecasting.actions.adjust_splits), and check jump-like ones"
    )
