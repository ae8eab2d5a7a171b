"""Synthetic OHLCV series that show what markets do, for training corpora.

A bar's log return is an overnight/weekend gap (at the first bar after a close) plus a move
within the bar. Its scale is the product of a daily level, an intraday seasonal weight (a U over
the equity session, a London/New York hump for 24x5 FX), a volatility regime (a Markov chain of
levels), a slow log-normal stochastic volatility whose shocks are negatively correlated with
returns (leverage), and a GJR-GARCH factor (clustering, more after falls). Shocks are Student-t;
rare jumps are added. High and low come from a Brownian bridge of sub-steps within each bar;
prices are rounded to a tick; volume is log-normal, follows the intraday U and rises with the
volatility state and the size of the move. The model and its defaults are in docs/training.md
("Synthetic corpus"). numpy and pandas only: no network, no calendar package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    USLaborDay,
    USMartinLutherKingJr,
    USMemorialDay,
    USPresidentsDay,
    USThanksgivingDay,
    nearest_workday,
    sunday_to_monday,
)

# Bumped whenever the same spec would produce different bars (recorded by the corpus writer).
GENERATOR_VERSION = 1

SPACINGS = {
    "1d": pd.Timedelta(days=1),
    "1h": pd.Timedelta(hours=1),
    "5min": pd.Timedelta(minutes=5),
    "1min": pd.Timedelta(minutes=1),
}
# equity: 09:30-16:00 New York wall-clock time (no zone), Monday to Friday, NYSE holidays;
# fx: 24 hours a day (UTC wall-clock time, no zone), Monday to Friday, closed on 1 Jan and 25 Dec.
MARKETS = ("equity", "fx")
EQUITY_SESSION = (pd.Timedelta(hours=9, minutes=30), pd.Timedelta(hours=16))
FX_SESSION = (pd.Timedelta(0), pd.Timedelta(hours=24))
TRADING_DAYS_PER_YEAR = 252
# Volatility multipliers of the calm, normal and stressed regimes (0.6 : 1 : 1.8), scaled to a
# mean square of 1 over the chain's stationary (uniform) distribution.
REGIME_LEVELS = tuple(level / math.sqrt((0.36 + 1 + 3.24) / 3) for level in (0.6, 1.0, 1.8))
SUB_STEPS = 16  # points of the within-bar path that high and low are taken from
GARCH_CAP = 25.0  # the GJR-GARCH variance factor is capped (5x the volatility) after extreme shocks


@dataclass(frozen=True)
class MarketSpec:
    """One synthetic series: its market, bar spacing, length and seed, and the model's knobs.

    Volatilities are of log returns; `annual_vol` is the normal regime's close-to-close level.
    `garch` is (alpha, gamma, beta) of GJR-GARCH(1,1) per bar; `sv_halflife_days`, `sv_sd` and
    `sv_leverage` are the half-life, stationary sd and return correlation of the log-volatility
    AR(1); `overnight` is the share of a day's variance in the gap at an equity open, and every closed
    calendar day before a session adds `closed_day_share` of it (weekends, holidays).
    `open_boost`/`close_boost` lift the volatility at the equity session's open and close.
    """

    market: str = "equity"
    spacing: str = "1d"
    bars: int = 2000
    seed: int = 0
    start: str = "2005-01-03"
    price: float = 50.0
    tick: float = 0.01
    annual_vol: float = 0.25
    drift: float = 0.0
    garch: tuple[float, float, float] = (0.02, 0.12, 0.88)
    sv_halflife_days: float = 20.0
    sv_sd: float = 0.3
    sv_leverage: float = -0.6
    tail_dof: float = 6.0
    jumps_per_year: float = 3.0
    jump_sd: float = 3.0
    regime_bars: float = 1000.0
    overnight: float = 0.2
    closed_day_share: float = 0.1
    open_boost: float = 2.0
    close_boost: float = 1.2
    daily_volume: float = 1e6
    volume_noise: float = 0.35

    def __post_init__(self) -> None:
        if self.market not in MARKETS:
            raise ValueError(f"MarketSpec market must be one of {MARKETS}, got {self.market!r}")
        if self.spacing not in SPACINGS:
            raise ValueError(f"MarketSpec spacing must be one of {tuple(SPACINGS)}, got {self.spacing!r}")
        if self.bars < 2:
            raise ValueError(f"MarketSpec bars must be at least 2, got {self.bars}")
        alpha, gamma, beta = self.garch
        if not (min(alpha, gamma, beta) >= 0 and alpha + gamma / 2 + beta < 1):
            raise ValueError(
                f"MarketSpec garch (alpha, gamma, beta) must be non-negative with alpha + gamma/2 + beta < 1, got {self.garch}"
            )
        for name, (low, high, closed) in KNOB_BOUNDS.items():
            value = getattr(self, name)
            inside = (low <= value if closed else low < value) and value < high
            if not inside:
                bracket = "[" if closed else "("
                raise ValueError(f"MarketSpec {name} must lie in {bracket}{low}, {high}), got {value}")
        if self.tick > self.price:
            raise ValueError(
                f"MarketSpec tick ({self.tick}) must not exceed the starting price ({self.price})"
            )


# (low, high, whether low itself is allowed) of each scalar knob; NaN lies in none.
KNOB_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "price": (0.0, math.inf, False),
    "tick": (0.0, math.inf, False),
    "annual_vol": (0.0, math.inf, False),
    "drift": (-math.inf, math.inf, False),
    "sv_halflife_days": (0.0, math.inf, False),
    "sv_sd": (0.0, math.inf, True),
    "sv_leverage": (-1.0, 1.0, False),
    "tail_dof": (2.0, math.inf, False),
    "jumps_per_year": (0.0, math.inf, True),
    "jump_sd": (0.0, math.inf, True),
    "regime_bars": (1.0, math.inf, True),
    "overnight": (0.0, 1.0, True),
    "closed_day_share": (0.0, math.inf, True),
    "open_boost": (0.0, math.inf, True),
    "close_boost": (0.0, math.inf, True),
    "daily_volume": (0.0, math.inf, False),
    "volume_noise": (0.0, math.inf, True),
}


class _NyseHolidays(AbstractHolidayCalendar):
    """The NYSE's full-day holiday rules (no one-off closures, no early closes)."""

    rules = [
        Holiday("New Year's Day", month=1, day=1, observance=sunday_to_monday),
        USMartinLutherKingJr,
        USPresidentsDay,
        GoodFriday,
        USMemorialDay,
        Holiday("Juneteenth", month=6, day=19, start_date="2022-06-19", observance=nearest_workday),
        Holiday("Independence Day", month=7, day=4, observance=nearest_workday),
        USLaborDay,
        USThanksgivingDay,
        Holiday("Christmas", month=12, day=25, observance=nearest_workday),
    ]


class _FxHolidays(AbstractHolidayCalendar):
    rules = [Holiday("New Year's Day", month=1, day=1), Holiday("Christmas", month=12, day=25)]


def holidays(market: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """The market's full-day closures between start and end (weekends aside)."""
    calendar = _NyseHolidays() if market == "equity" else _FxHolidays()
    return calendar.holidays(start, end)


def session_days(market: str, start: str | pd.Timestamp, count: int) -> pd.DatetimeIndex:
    """The first `count` trading days on or after `start`: Monday to Friday, less holidays."""
    first = pd.Timestamp(start).normalize()
    end = first + pd.Timedelta(days=int(count * 7 / 5) + 30)
    closed = holidays(market, first, end)
    return pd.bdate_range(first, periods=count, freq="C", holidays=closed)


@dataclass(frozen=True)
class _Grid:
    """Where each bar lies: its timestamp, its share of its day's session variance (`weight`),
    its share of the day's volume, and the variance of the gap before it in daily units."""

    timestamps: pd.DatetimeIndex
    weight: np.ndarray
    volume_share: np.ndarray
    gap: np.ndarray


def _intensity(spec: MarketSpec, clock: np.ndarray) -> np.ndarray:
    """Volatility (not variance) intensity at hours `clock` of the session's day."""
    if spec.market == "equity":
        open_hours, close_hours = (t / pd.Timedelta(hours=1) for t in EQUITY_SESSION)
        tau = (clock - open_hours) / (close_hours - open_hours)
        return 1 + spec.open_boost * np.exp(-tau / 0.06) + spec.close_boost * np.exp(-(1 - tau) / 0.06)
    # FX: quiet in the Asian afternoon, a hump at the London open and a larger one at the overlap
    return 0.6 + 0.4 * np.exp(-(((clock - 8) / 1.5) ** 2)) + 0.8 * np.exp(-(((clock - 14.5) / 3) ** 2))


def bar_starts(spec: MarketSpec) -> np.ndarray:
    """The start offsets of a day's bars from midnight (one bar at 00:00 for daily bars)."""
    if spec.spacing == "1d":
        return np.array([pd.Timedelta(0)], dtype="timedelta64[ns]")
    open_, close = EQUITY_SESSION if spec.market == "equity" else FX_SESSION
    starts = pd.timedelta_range(open_, close - pd.Timedelta(1), freq=SPACINGS[spec.spacing])
    return starts.to_numpy()


def _day_weights(spec: MarketSpec) -> tuple[np.ndarray, np.ndarray]:
    """Each of a day's bars' share of the session's variance and of its volume (each sums to 1):
    the squared intensity integrated over the bar's interval, by the minute."""
    if spec.spacing == "1d":
        return np.ones(1), np.ones(1)
    open_, close = EQUITY_SESSION if spec.market == "equity" else FX_SESSION
    minutes = np.arange(open_ / pd.Timedelta(minutes=1), close / pd.Timedelta(minutes=1)) + 0.5
    variance = _intensity(spec, minutes / 60) ** 2
    per_bar = int(SPACINGS[spec.spacing] / pd.Timedelta(minutes=1))
    edges = np.arange(0, len(minutes), per_bar)
    weight = np.add.reduceat(variance, edges)
    weight /= weight.sum()
    # volume follows the volatility U (in proportion to the volatility intensity)
    volume = np.add.reduceat(variance**0.5, edges)
    return weight, volume / volume.sum()


def _overnight(spec: MarketSpec) -> float:
    """The overnight gap's share of a day's variance: none for FX, which trades through the night
    (it gaps only after a closed day)."""
    return spec.overnight if spec.market == "equity" else 0.0


def _grid(spec: MarketSpec) -> _Grid:
    starts = bar_starts(spec)
    weight, volume_share = _day_weights(spec)
    per_day = len(starts)
    days = session_days(spec.market, spec.start, -(-spec.bars // per_day))
    stamps = (days.to_numpy()[:, None] + starts[None, :]).ravel()[: spec.bars]
    closed_days = np.diff(days.to_numpy()).astype("timedelta64[D]").astype(np.int64) - 1
    gap = np.zeros((len(days), per_day))
    gap[:, 0] = _overnight(spec) + spec.closed_day_share * np.concatenate([[0], closed_days])
    return _Grid(
        timestamps=pd.DatetimeIndex(stamps),
        weight=np.tile(weight * (1 - _overnight(spec)), len(days))[: spec.bars],
        volume_share=np.tile(volume_share, len(days))[: spec.bars],
        gap=gap.ravel()[: spec.bars],
    )


def _student(rng: np.random.Generator, dof: float, size: int) -> np.ndarray:
    """Student-t shocks scaled to unit variance."""
    return rng.standard_t(dof, size) * math.sqrt((dof - 2) / dof)


def _regimes(rng: np.random.Generator, n: int, mean_length: float) -> np.ndarray:
    """The volatility multiplier of each bar: a Markov chain over REGIME_LEVELS that leaves its
    state with probability 1/mean_length per bar, for one of the other two at random."""
    switches = rng.random(n) < 1 / mean_length
    steps = rng.integers(1, len(REGIME_LEVELS), n) * switches
    state = (1 + np.cumsum(steps)) % len(REGIME_LEVELS)
    return np.asarray(REGIME_LEVELS)[state]


def _volatility_factor(spec: MarketSpec, z: np.ndarray, w: np.ndarray, x0: float, per_day: int) -> np.ndarray:
    """sqrt(q_t) * exp(x_t - sv_sd^2) per bar: GJR-GARCH(1,1) on its own shock e_t = sqrt(q_t) z_t
    and a log-volatility AR(1) x_t (from x0) whose shock has correlation `sv_leverage` with z_t.
    Each factor has mean square 1 and neither feeds on the other (a GARCH on the product would
    compound them), so `annual_vol` keeps its meaning."""
    alpha, gamma, beta = spec.garch
    omega = 1 - alpha - gamma / 2 - beta
    phi = 0.5 ** (1 / (spec.sv_halflife_days * per_day))
    scale = spec.sv_sd * math.sqrt(1 - phi * phi)
    rho, rho_c = spec.sv_leverage, math.sqrt(1 - spec.sv_leverage**2)
    shift = spec.sv_sd**2
    q, x = 1.0, x0
    out = np.empty(len(z))
    for t, (zt, wt) in enumerate(zip(z.tolist(), w.tolist())):
        out[t] = math.sqrt(q) * math.exp(x - shift)
        e = math.sqrt(q) * zt
        q = min(omega + (alpha + (gamma if e < 0 else 0.0)) * e * e + beta * q, GARCH_CAP)
        x = phi * x + scale * (rho * zt + rho_c * wt)
    return out


@dataclass(frozen=True)
class _Moves:
    """Log moves per bar: the gap before its open, and from open to close (with `jump`, which
    happens at sub-step `jump_at`), with the bar's volatility `sigma` for the path within it."""

    gap: np.ndarray
    body: np.ndarray
    sigma: np.ndarray
    jump: np.ndarray
    jump_at: np.ndarray


def _moves(spec: MarketSpec, grid: _Grid, rng: np.random.Generator) -> _Moves:
    n, per_day = spec.bars, len(bar_starts(spec))
    daily_sd = spec.annual_vol / math.sqrt(TRADING_DAYS_PER_YEAR)
    z, gap_z = _student(rng, spec.tail_dof, n), _student(rng, spec.tail_dof, n)
    w, x0 = rng.standard_normal(n), spec.sv_sd * rng.standard_normal()
    regime = _regimes(rng, n, spec.regime_bars)
    jump_hits = rng.random(n) < spec.jumps_per_year / (TRADING_DAYS_PER_YEAR * per_day)
    jump = jump_hits * rng.standard_normal(n) * spec.jump_sd * daily_sd * regime
    jump_at = rng.integers(1, SUB_STEPS + 1, n)
    level = daily_sd * regime
    bar_sd = level * np.sqrt(grid.weight)
    factor = _volatility_factor(spec, z, w, x0, per_day)
    sigma = bar_sd * factor
    drift = spec.drift / TRADING_DAYS_PER_YEAR * grid.weight / (1 - _overnight(spec))
    gap = level * factor * np.sqrt(grid.gap) * gap_z
    return _Moves(gap=gap, body=drift + sigma * z + jump, sigma=sigma, jump=jump, jump_at=jump_at)


def _paths(moves: _Moves, rng: np.random.Generator) -> np.ndarray:
    """Log price relative to the bar's open at SUB_STEPS + 1 points from open to close: a
    Brownian bridge of the bar's volatility around the line to the close, the jump a step."""
    n = len(moves.body)
    steps = rng.standard_normal((n, SUB_STEPS)) / math.sqrt(SUB_STEPS)
    walk = np.concatenate([np.zeros((n, 1)), np.cumsum(steps, axis=1)], axis=1)
    frac = np.arange(SUB_STEPS + 1) / SUB_STEPS
    bridge = walk - frac[None, :] * walk[:, -1:]
    smooth = (moves.body - moves.jump)[:, None] * frac[None, :]
    jumped = (np.arange(SUB_STEPS + 1)[None, :] >= moves.jump_at[:, None]) * moves.jump[:, None]
    return smooth + moves.sigma[:, None] * bridge + jumped


def _prices(spec: MarketSpec, moves: _Moves, paths: np.ndarray) -> dict[str, np.ndarray]:
    """Open, high, low and close rounded to the tick (at least one tick): rounding is monotone,
    so high >= max(open, close) and low <= min(open, close) hold after it as before."""
    close_log = math.log(spec.price) + np.cumsum(moves.gap + moves.body)
    open_log = close_log - moves.body
    levels = {
        "open": open_log,
        "high": open_log + paths.max(axis=1),
        "low": open_log + paths.min(axis=1),
        "close": close_log,
    }
    # rounded again to the tick's decimals plus two, so that 49.87 is not written as 49.870000000000005
    decimals = max(0, -math.floor(math.log10(spec.tick))) + 2
    return {
        k: np.round(np.maximum(np.round(np.exp(v) / spec.tick), 1) * spec.tick, decimals)
        for k, v in levels.items()
    }


def _volume(spec: MarketSpec, grid: _Grid, moves: _Moves, rng: np.random.Generator) -> np.ndarray:
    """Log-normal volume: the day's level shared out by the intraday U, raised by the bar's
    volatility state and by the size of its move (in its own standard deviations), with an
    independent log-normal noise; whole units, at least 1."""
    daily_sd = spec.annual_vol / math.sqrt(TRADING_DAYS_PER_YEAR)
    typical = daily_sd * np.sqrt(grid.weight + grid.gap)
    state = np.log(np.maximum(moves.sigma, 1e-300) / (daily_sd * np.sqrt(grid.weight)))
    size = np.abs(moves.gap + moves.body) / typical
    log_volume = (
        np.log(spec.daily_volume * grid.volume_share)
        + 0.6 * state
        + 0.15 * np.minimum(size, 8)
        + spec.volume_noise * rng.standard_normal(len(size))
    )
    return np.maximum(np.round(np.exp(log_volume)), 1)


def synthetic_series(spec: MarketSpec) -> pd.DataFrame:
    """Bars of one synthetic series: timestamps, open, high, low, close, volume, amount
    (volume x typical price (high + low + close) / 3), the same for the same spec."""
    rng = np.random.default_rng(spec.seed)
    grid = _grid(spec)
    moves = _moves(spec, grid, rng)
    prices = _prices(spec, moves, _paths(moves, rng))
    volume = _volume(spec, grid, moves, rng)
    typical = (prices["high"] + prices["low"] + prices["close"]) / 3
    return pd.DataFrame(
        {"timestamps": grid.timestamps, **prices, "volume": volume, "amount": volume * typical}
    )


# Share of each (market, bar spacing) in a corpus: to be tuned by held-out measurement.
CORPUS_MIX: dict[tuple[str, str], float] = {
    ("equity", "1d"): 0.30,
    ("equity", "1h"): 0.15,
    ("equity", "5min"): 0.15,
    ("equity", "1min"): 0.15,
    ("fx", "1d"): 0.05,
    ("fx", "1h"): 0.10,
    ("fx", "5min"): 0.05,
    ("fx", "1min"): 0.05,
}
# Ranges the corpus draws each series' knobs from, uniformly ("log": log-uniformly), by market
# where they differ. `persistence` is alpha + gamma/2 + beta of the GJR-GARCH.
KNOB_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "common": {
        "alpha": (0.01, 0.06),
        "gamma": (0.06, 0.18),
        "persistence": (0.85, 0.98),
        "sv_halflife_days": (5.0, 60.0),
        "sv_sd": (0.15, 0.45),
        "sv_leverage": (-0.8, -0.3),
        "tail_dof": (4.0, 10.0),
        "jumps_per_year": (0.0, 10.0),
        "jump_sd": (2.0, 6.0),
        "regime_bars": (300.0, 3000.0),
        "drift": (-0.05, 0.05),
        "volume_noise": (0.2, 0.5),
        "start_year": (1995.0, 2022.0),
    },
    "equity": {
        "price": (10.0, 500.0),  # log
        "annual_vol": (0.12, 0.6),  # log
        "overnight": (0.1, 0.35),
        "closed_day_share": (0.05, 0.15),
        "open_boost": (1.0, 3.0),
        "close_boost": (0.3, 1.5),
        "daily_volume": (2e5, 5e7),  # log
    },
    "fx": {
        "price": (0.5, 2.0),  # log
        "annual_vol": (0.05, 0.15),  # log
        "overnight": (0.0, 0.0),
        "closed_day_share": (0.05, 0.2),
        "daily_volume": (2e4, 2e5),  # log
    },
}
LOG_UNIFORM = ("price", "annual_vol", "daily_volume")
FX_TICK = 1e-5
EQUITY_TICK = 0.01


def _draw(rng: np.random.Generator, name: str, bounds: tuple[float, float]) -> float:
    low, high = bounds
    if name in LOG_UNIFORM:
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return float(rng.uniform(low, high))


def draw_spec(rng: np.random.Generator, market: str, spacing: str, bars: int) -> MarketSpec:
    """A spec with knobs drawn from KNOB_RANGES and a seed of its own, both from `rng`."""
    knobs = {
        name: _draw(rng, name, bounds)
        for name, bounds in {**KNOB_RANGES["common"], **KNOB_RANGES[market]}.items()
    }
    alpha, gamma = knobs.pop("alpha"), knobs.pop("gamma")
    beta = max(knobs.pop("persistence") - alpha - gamma / 2, 0.0)
    year = knobs.pop("start_year")
    start = pd.Timestamp(int(year), 1, 1) + pd.Timedelta(days=int((year % 1) * 365))
    return MarketSpec(
        market=market,
        spacing=spacing,
        bars=bars,
        seed=int(rng.integers(2**63)),
        start=str(start.date()),
        tick=EQUITY_TICK if market == "equity" else FX_TICK,
        garch=(alpha, gamma, beta),
        **knobs,
    )


def corpus_specs(
    n_series: int, seed: int, bars: int = 4000, mix: dict[tuple[str, str], float] | None = None
) -> list[MarketSpec]:
    """`n_series` specs: (market, spacing) drawn with the probabilities of `mix` (CORPUS_MIX),
    knobs from KNOB_RANGES, all from `seed`."""
    mix = CORPUS_MIX if mix is None else mix
    if n_series < 1:
        raise ValueError(f"n_series must be at least 1, got {n_series}")
    kinds = list(mix)
    weights = np.asarray([mix[k] for k in kinds], dtype=float)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"mix weights must be non-negative with a positive sum, got {mix}")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(kinds), size=n_series, p=weights / weights.sum())
    return [draw_spec(rng, kinds[k][0], kinds[k][1], bars) for k in picks]


def synthetic_corpus(
    n_series: int, seed: int, bars: int = 4000, mix: dict[tuple[str, str], float] | None = None
) -> list[tuple[str, pd.DataFrame]]:
    """(name, bars) of `n_series` synthetic series (corpus_specs), named SYN_<i>_<market>_<spacing>."""
    return [
        (f"SYN_{i:04d}_{spec.market}_{spec.spacing}", synthetic_series(spec))
        for i, spec in enumerate(corpus_specs(n_series, seed, bars, mix))
    ]


def spec_record(spec: MarketSpec) -> dict[str, object]:
    """A spec as plain JSON values (for a corpus manifest)."""
    return {f.name: (list(v) if isinstance(v := getattr(spec, f.name), tuple) else v) for f in fields(spec)}


__all__ = [
    "CORPUS_MIX",
    "GENERATOR_VERSION",
    "KNOB_RANGES",
    "MarketSpec",
    "corpus_specs",
    "draw_spec",
    "spec_record",
    "synthetic_corpus",
    "synthetic_series",
]
