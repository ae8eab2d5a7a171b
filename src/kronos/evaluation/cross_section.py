"""Cross-sectional evaluation: does a model rank a universe better than momentum, after costs?

At each rebalance date d (every K bars of the universe's calendar) every series with enough
history up to d and H bars after it is forecast (through the public core, many series per call,
or on Ray with `engine=`), and every method (the model's signals and the baselines') ranks the
series. Each date is scored against the realised forward return R = close[d + H] / close[d] − 1
(IC, RankIC, quantile portfolios), and books rebalanced every K bars (a top-k long, a long-short)
are held from d to d + K with costs. Nothing at date d uses a bar after d.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from kronos.engine.sampling import Sampling
from kronos.evaluation.backtest import (
    Engine,
    Origin,
    OriginForecast,
    SeededRun,
    context_note,
    forecast_here,
    origin_batches,
    run_sampling,
)
from kronos.evaluation.cross_section_report import write_cross_section_report
from kronos.evaluation.portfolios import (
    book_path,
    book_statistics,
    newey_west_lag,
    newey_west_t,
    pearson,
    quantile_means,
    spearman,
    top_bottom_weights,
    turnover,
)
from kronos.evaluation.signals import (
    MODEL_SIGNALS,
    baseline_names,
    baseline_signals,
    model_signals,
    random_signal,
)
from kronos.forecasting.core import ContextWarning
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.series import CLOSE, Series, check_pred_len, positive_int
from kronos.forecasting.tables import TableLayout, split_table

MIN_SERIES = 5  # a universe smaller than this has no cross-section worth ranking
DAYS_PER_YEAR = 365.25


COST_BPS = 10.0  # default cost per unit of weight traded, basis points
SUMMARY_COLUMNS = [  # what a terminal summary of the methods shows
    "rank_ic_mean",
    "rank_ic_t",
    "ic_mean",
    "icir",
    "turnover",
    "long_short_return_net",
    "long_short_sharpe_net",
]


@dataclass(frozen=True)
class CrossSection(SeededRun):
    """What a cross-sectional evaluation scores, and how. Checked when made.

    `horizon` H: bars of the forward return (and of each forecast); `rebalance` K: bars between
    rebalance dates (None: H, so forward returns do not overlap); `top_k`: series held long (and
    short) by the books (None: a `quantiles`-th of the universe, at least 1); `cost_bps`: cost of
    every unit of weight bought or sold, in basis points; `quantiles`: portfolios sorted by signal;
    `momentum_lookbacks`, `reversal_lookback`, `vol_lookback`: the baselines' bars; `lookback`:
    bars of history each forecast sees (None: the model's; without a model, the longest baseline
    lookback + 1); `start`, `end`: the first and last rebalance dates allowed (inclusive);
    `sampling`: the model's paths (None: the model's defaults, seeded 0), and with its seed the random signal (series s at date d
    draws from (seed, s, origin) alone); `batch_size`: series forecast per model call;
    `bars_per_year`: for annualising (None: the calendar's bars per 365.25 days).
    """

    horizon: int
    rebalance: int | None = None
    top_k: int | None = None
    cost_bps: float = COST_BPS
    quantiles: int = 5
    momentum_lookbacks: tuple[int, ...] = (5, 20)
    reversal_lookback: int = 1
    vol_lookback: int = 20
    lookback: int | None = None
    start: pd.Timestamp | str | None = None
    end: pd.Timestamp | str | None = None
    sampling: Sampling | None = None
    batch_size: int = 64
    bars_per_year: float | None = None

    def __post_init__(self) -> None:
        check_pred_len(self.horizon, "horizon")
        for name in ("rebalance", "top_k", "lookback"):
            if getattr(self, name) is not None:
                positive_int(getattr(self, name), name)
        for name in ("reversal_lookback", "vol_lookback", "batch_size"):
            positive_int(getattr(self, name), name)
        if self.vol_lookback < 2:
            raise ValueError(
                f"vol_lookback must be at least 2 (a standard deviation of returns), got {self.vol_lookback}"
            )
        if positive_int(self.quantiles, "quantiles") < 2:
            raise ValueError(f"quantiles must be at least 2 (a top and a bottom), got {self.quantiles}")
        lookbacks = tuple(positive_int(k, "momentum_lookbacks") for k in self.momentum_lookbacks)
        if len(set(lookbacks)) != len(lookbacks):
            raise ValueError(f"momentum_lookbacks must be distinct, got {lookbacks}")
        object.__setattr__(self, "momentum_lookbacks", lookbacks)
        if isinstance(self.cost_bps, bool) or not (self.cost_bps == 0 or _positive_number(self.cost_bps)):
            raise ValueError(
                f"cost_bps must be a finite number of basis points, 0 or more, got {self.cost_bps!r}"
            )
        if self.bars_per_year is not None and not _positive_number(self.bars_per_year):
            raise ValueError(f"bars_per_year must be a positive finite number, got {self.bars_per_year!r}")
        if self.sampling is not None and self.sampling.seed is None:
            raise ValueError("a cross-section is seeded: give Sampling(seed=...)")
        self._dates()

    @property
    def every(self) -> int:
        """K, the bars between rebalance dates."""
        return self.horizon if self.rebalance is None else self.rebalance

    @property
    def baselines(self) -> list[str]:
        return baseline_names(self.momentum_lookbacks, self.reversal_lookback, self.vol_lookback)

    @property
    def baseline_history(self) -> int:
        """Bars up to a date (inclusive) the baselines need: the longest lookback + 1."""
        return max(*self.momentum_lookbacks, self.reversal_lookback, self.vol_lookback) + 1

    def _dates(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """`start` and `end` as timestamps, checked."""
        bounds = []
        for name in ("start", "end"):
            value = getattr(self, name)
            try:
                bounds.append(None if value is None else pd.Timestamp(value))
            except (ValueError, TypeError) as err:
                raise ValueError(f"{name} must be a date such as 2020-01-31, got {value!r}") from err
        start, end = bounds
        if start is not None and end is not None and start > end:
            raise ValueError(f"start {start} is after end {end}")
        return start, end


def _positive_number(value: object) -> bool:
    """Whether `value` is a real number (not a bool) above 0 and finite."""
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and bool(0 < value < math.inf)
    )


@dataclass(frozen=True)
class CrossSectionResult:
    """What `evaluate_cross_section` found.

    `signals`: one row per rebalance date and series scored: the forward return over H bars, the
    holding return over K bars, and every method's signal. `scores`: one row per date and
    method: IC, RankIC, the quantile portfolios' mean forward returns, the books' gross and net
    returns over the period and the weight they traded. `summary`: one row per method
    (`summary_row`). `settings`: what the report states.
    """

    signals: pd.DataFrame
    scores: pd.DataFrame
    summary: pd.DataFrame
    settings: dict = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        return list(self.summary.index)

    def headline(self) -> str:
        """The methods' SUMMARY_COLUMNS as a text table, as the command and the scripts print it."""
        return str(self.summary[SUMMARY_COLUMNS].to_string(float_format=lambda v: f"{v:.4g}"))

    def write_report(self, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
        """cross_section.csv, the per-date tables, plots and report.md in `out_dir` (written whole or not at all)."""
        return write_cross_section_report(self, out_dir, plots=plots)


@dataclass(frozen=True)
class _Panel:
    """The universe on its calendar: `rows[p, s]` is series s's row at calendar date p (−1 where
    it has no bar), `dates` the calendar positions of the rebalance dates and `eligible[d, s]`
    whether series s is scored at date d."""

    series: list[Series]
    calendar: pd.DatetimeIndex
    rows: np.ndarray
    dates: np.ndarray
    eligible: np.ndarray

    def row(self, d: int, s: int) -> int:
        return int(self.rows[self.dates[d], s])


def evaluate_cross_section(
    universe: pd.DataFrame | Sequence[Series],
    predictor: KronosPredictor | None,
    settings: CrossSection,
    *,
    id_column: str = "symbol",
    engine: Engine | None = None,
    progress: bool = True,
) -> CrossSectionResult:
    """Score the model's signals (none with `predictor` None) and the baselines on a universe.

    `universe`: a long table with `id_column` (split by `kronos.forecasting.tables.split_table`)
    or the series themselves (each keyed by its id). `engine` makes the model's forecasts
    elsewhere (`kronos.ray.engine.RayEngine`); series s at date d is forecast from its `lookback`
    bars up to d and draws from (seed, s, its row after d) alone, so every engine gives the same
    numbers. Refuses a universe of fewer than `MIN_SERIES` series, a `top_k` above half of it, and
    a universe with no date where enough series can be scored.
    """
    settings = _checked_settings(settings)
    settings = replace(settings, sampling=run_sampling(settings.sampling, predictor))
    series = _universe(universe, id_column)
    lookback = _lookback(settings, predictor)
    top_k = _top_k(settings, len(series))
    need = max(lookback, settings.baseline_history)
    panel = _panel(series, settings, need, max(2 * top_k, settings.quantiles))
    signals = _baseline_table(panel, settings)
    notes: list[str] = []
    if predictor is not None:
        notes = _context_notes(predictor, lookback)
        run = engine or forecast_here(predictor, progress, int(panel.eligible.sum()))
        signals = {**_model_table(panel, settings, lookback, run), **signals}
    forward = _returns(panel, settings.horizon)
    holding = _returns(panel, settings.every)
    scores = _scores(panel, signals, forward, holding, settings, top_k)
    periods = _bars_per_year(panel.calendar, settings) / settings.every
    lag = newey_west_lag(settings.horizon, settings.every)
    summary = pd.DataFrame(
        [summary_row(scores[scores["method"] == name], settings, top_k, periods, lag) for name in signals],
        index=pd.Index(list(signals), name="method"),
    )
    return CrossSectionResult(
        signals=_signal_frame(panel, signals, forward, holding),
        scores=scores,
        summary=summary,
        settings=_settings(settings, panel, lookback, top_k, periods, lag, predictor, notes),
    )


def _checked_settings(settings: object) -> CrossSection:
    if not isinstance(settings, CrossSection):
        raise TypeError(
            f"settings must be a CrossSection, e.g. CrossSection(horizon=5), got {type(settings).__name__}"
        )
    return settings


def _universe(universe: pd.DataFrame | Sequence[Series], id_column: str) -> list[Series]:
    """The universe's series, keyed by their ids as text; at least MIN_SERIES of them."""
    if isinstance(universe, pd.DataFrame):
        series = split_table(universe, "universe", TableLayout(id_column))
    else:
        series = list(universe)
        bad = [type(one).__name__ for one in series if not isinstance(one, Series)]
        if bad:
            raise TypeError(f"universe must be a DataFrame or a sequence of Series, got a {bad[0]} in it")
    keys = [str(one.key) for one in series]
    if len(set(keys)) != len(keys):
        raise ValueError(f"universe: series keys must be distinct, got {sorted(keys)}")
    if len(series) < MIN_SERIES:
        raise ValueError(
            f"universe has {len(series)} series (by {id_column!r}); a cross-section needs at least {MIN_SERIES}"
        )
    return series


def _lookback(settings: CrossSection, predictor: KronosPredictor | None) -> int:
    if settings.lookback is not None:
        return settings.lookback
    if predictor is None:
        return settings.baseline_history
    return positive_int(predictor.lookback, "lookback")


def _top_k(settings: CrossSection, count: int) -> int:
    top_k = max(count // settings.quantiles, 1) if settings.top_k is None else settings.top_k
    return check_top_k(top_k, count)


def check_top_k(top_k: int, count: int, name: str = "top_k") -> int:
    """`top_k` if a long-short book of top and bottom `top_k` fits in `count` series; a ValueError
    naming `name` otherwise."""
    if 2 * top_k > count:
        raise ValueError(
            f"{name} {top_k} is too large: the long-short book holds 2 x {top_k} = {2 * top_k} series, and "
            f"the universe has {count}; give {name} at most {count // 2}"
        )
    return top_k


def _panel(series: list[Series], settings: CrossSection, need: int, min_series: int) -> _Panel:
    """The universe on the union of its timestamps, and the rebalance dates: from the first date
    (within start..end) where `min_series` series have `need` bars up to it and max(H, K) after
    it, every K calendar bars, keeping those where that many series can be scored."""
    calendar = pd.DatetimeIndex(sorted(set().union(*(one.timestamps for one in series))))
    rows = np.full((len(calendar), len(series)), -1, dtype=np.int64)
    lengths = np.array([len(one) for one in series])
    for s, one in enumerate(series):
        rows[calendar.get_indexer(one.timestamps), s] = np.arange(len(one))
    ahead = max(settings.horizon, settings.every)
    eligible = (rows >= need - 1) & (rows + ahead <= lengths[None, :] - 1)
    allowed = _within(calendar, settings) & (eligible.sum(axis=1) >= min_series)
    candidates = np.flatnonzero(allowed)
    if len(candidates) == 0:
        raise ValueError(
            f"no date of the universe has {min_series} series with {need} bars up to it and {ahead} after it "
            "(within start..end): give longer series, a shorter lookback or a smaller top_k"
        )
    grid = np.arange(candidates[0], len(calendar), settings.every)
    dates = grid[allowed[grid]]
    return _Panel(series, calendar, rows, dates, eligible[dates])


def _within(calendar: pd.DatetimeIndex, settings: CrossSection) -> np.ndarray:
    """Calendar dates inside start..end, the bounds taken in the calendar's time zone."""
    inside = np.ones(len(calendar), dtype=bool)
    start, end = settings._dates()
    for bound, keep in ((start, calendar.__ge__), (end, calendar.__le__)):
        if bound is not None:
            if calendar.tz is not None and bound.tz is None:
                bound = bound.tz_localize(calendar.tz)
            inside &= np.asarray(keep(bound))
    return inside


def _baseline_table(panel: _Panel, settings: CrossSection) -> dict[str, np.ndarray]:
    """Every baseline's signal [D, S] (NaN where a series is not scored), from closes up to each date."""
    count = len(panel.dates)
    table = {name: np.full((count, len(panel.series)), np.nan) for name in settings.baselines}
    for s, one in enumerate(panel.series):
        at = np.flatnonzero(panel.eligible[:, s])
        rows = panel.rows[panel.dates[at], s]
        found = baseline_signals(
            one.bars[:, CLOSE],
            rows,
            settings.momentum_lookbacks,
            settings.reversal_lookback,
            settings.vol_lookback,
        )
        for name, values in found.items():
            table[name][at, s] = values
    for d, p in enumerate(panel.dates):
        draws = random_signal(settings.seed, int(p), len(panel.series))
        table["random"][d] = np.where(panel.eligible[d], draws, np.nan)
    return table


def _model_table(panel: _Panel, settings: CrossSection, lookback: int, run: Engine) -> dict[str, np.ndarray]:
    """The model's signals [D, S]: series s at date d forecast from its `lookback` bars up to d
    (origin: its next row), keyed (id, origin)."""
    at = np.argwhere(panel.eligible)  # date by date, series in order
    by_key = {str(one.key): one for one in panel.series}
    origins: list[Origin] = [(str(panel.series[s].key), panel.row(d, s) + 1) for d, s in at]
    batches = origin_batches(by_key, origins, lookback, settings.horizon, settings.batch_size)
    paths = np.concatenate(list(run(OriginForecast(settings.horizon, settings.drawn), batches)))
    last = np.array([by_key[name].bars[t - 1, CLOSE] for name, t in origins])
    table = {}
    for name, values in model_signals(paths, last).items():
        table[name] = np.full(panel.eligible.shape, np.nan)
        table[name][at[:, 0], at[:, 1]] = values
    return table


def _returns(panel: _Panel, bars: int) -> np.ndarray:
    """close[row + bars] / close[row] − 1 per date and series [D, S] (NaN where not scored)."""
    out = np.full(panel.eligible.shape, np.nan)
    for s, one in enumerate(panel.series):
        at = np.flatnonzero(panel.eligible[:, s])
        rows = panel.rows[panel.dates[at], s]
        close = one.bars[:, CLOSE]
        out[at, s] = close[rows + bars] / close[rows] - 1
    return out


def _scores(
    panel: _Panel,
    signals: dict[str, np.ndarray],
    forward: np.ndarray,
    holding: np.ndarray,
    settings: CrossSection,
    top_k: int,
) -> pd.DataFrame:
    """One row per method and date: IC, RankIC, quantile means, the books' returns and trades."""
    parts = []
    min_series = max(2 * top_k, settings.quantiles)
    for name, signal in signals.items():
        usable = panel.eligible & np.isfinite(signal)
        scored = usable.sum(axis=1) >= min_series
        rows = [
            _date_scores(signal[d], forward[d], usable[d], settings.quantiles)
            for d in range(len(panel.dates))
        ]
        table = pd.DataFrame(rows).assign(method=name, date=panel.calendar[panel.dates])
        long, short = _book_weights(signal, usable, scored, top_k)
        table = table.assign(**_book_columns("top_k", long, holding, settings.cost_bps))
        table = table.assign(**_book_columns("long_short", short, holding, settings.cost_bps))
        parts.append(table)
    columns = ["method", "date"]
    frame = pd.concat(parts, ignore_index=True)
    return frame[columns + [c for c in frame.columns if c not in columns]]


def _date_scores(
    signal: np.ndarray, forward: np.ndarray, usable: np.ndarray, quantiles: int
) -> dict[str, float]:
    """IC, RankIC and quantile means of one date (NaN with fewer series than quantiles)."""
    x, y = signal[usable], forward[usable]
    row = {"n_series": float(len(x))}
    enough = len(x) >= quantiles
    row["ic"] = pearson(x, y) if enough else math.nan
    row["rank_ic"] = spearman(x, y) if enough else math.nan
    means = quantile_means(x, y, quantiles) if enough else np.full(quantiles, np.nan)
    row.update({f"quantile_{q + 1}": float(m) for q, m in enumerate(means)})
    return row


def _book_weights(
    signal: np.ndarray, usable: np.ndarray, scored: np.ndarray, top_k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The top-k long and long-short weights [D, S]; a date with too few usable series holds nothing."""
    long, short = np.zeros(signal.shape), np.zeros(signal.shape)
    for d in np.flatnonzero(scored):
        columns = np.flatnonzero(usable[d])
        long[d, columns], short[d, columns] = top_bottom_weights(signal[d, columns], top_k)
    return long, short


def _book_columns(
    book: str, weights: np.ndarray, holding: np.ndarray, cost_bps: float
) -> dict[str, np.ndarray]:
    path = book_path(weights, holding, cost_bps)
    return {f"{book}_gross": path.gross, f"{book}_net": path.net, f"{book}_traded": path.traded}


def summary_row(
    scores: pd.DataFrame, settings: CrossSection, top_k: int, periods_per_year: float, lag: int
) -> dict[str, float]:
    """One method's summary from its per-date scores.

    ic_mean, ic_std (n − 1), icir = ic_mean / ic_std (per date, not annualised), ic_t = the
    Newey-West t of the mean IC (`newey_west_t` with `lag`); the same for rank_ic; hit_rate = share
    of dates with RankIC > 0; quantile_q = mean over dates of the q-th quantile's mean forward
    return, quantile_spread = top minus bottom; turnover (long-short) and top_k_turnover
    (`turnover`); for each book (top_k, long_short) and gross / net of costs: `book_statistics`
    (return is annualised, cumulative is not).
    """
    row: dict[str, float] = {"n_dates": float(scores["rank_ic"].notna().sum())}
    for name in ("ic", "rank_ic"):
        values = scores[name].dropna().to_numpy()
        mean, std = (values.mean(), values.std(ddof=1)) if len(values) > 1 else (math.nan, math.nan)
        row[f"{name}_mean"], row[f"{name}_std"] = float(mean), float(std)
        row[f"{name}ir"] = float(mean / std) if std > 0 else math.nan
        row[f"{name}_t"] = newey_west_t(values, lag)
    row["hit_rate"] = float((scores["rank_ic"].dropna() > 0).mean())
    quantiles = [scores[f"quantile_{q + 1}"].mean() for q in range(settings.quantiles)]
    row.update({f"quantile_{q + 1}": float(m) for q, m in enumerate(quantiles)})
    row["quantile_spread"] = float(quantiles[-1] - quantiles[0])
    row["turnover"] = turnover(scores["long_short_traded"].to_numpy(), 2.0)
    row["top_k_turnover"] = turnover(scores["top_k_traded"].to_numpy(), 1.0)
    for book in ("top_k", "long_short"):
        for kind in ("gross", "net"):
            stats = book_statistics(scores[f"{book}_{kind}"].to_numpy(), periods_per_year)
            row.update({f"{book}_{stat}_{kind}": value for stat, value in stats.items()})
    return row


def _bars_per_year(calendar: pd.DatetimeIndex, settings: CrossSection) -> float:
    """The calendar's bars per 365.25 days (about 252 for daily stock bars), or as given."""
    if settings.bars_per_year is not None:
        return float(settings.bars_per_year)
    days = (calendar[-1] - calendar[0]) / pd.Timedelta(days=1)
    return (len(calendar) - 1) / days * DAYS_PER_YEAR if days > 0 else math.nan


def _signal_frame(
    panel: _Panel, signals: dict[str, np.ndarray], forward: np.ndarray, holding: np.ndarray
) -> pd.DataFrame:
    """The long table of signals: one row per date and scored series."""
    d, s = np.nonzero(panel.eligible)
    columns = {
        "date": panel.calendar[panel.dates[d]],
        "series": [str(panel.series[k].key) for k in s],
        "forward_return": forward[d, s],
        "holding_return": holding[d, s],
    }
    columns.update({name: values[d, s] for name, values in signals.items()})
    return pd.DataFrame(columns)


def _context_notes(predictor: KronosPredictor, lookback: int) -> list[str]:
    note = context_note(lookback, predictor.max_context)
    if note is None:
        return []
    warnings.warn(note, ContextWarning, stacklevel=3)
    return [note]


def _settings(
    settings: CrossSection,
    panel: _Panel,
    lookback: int,
    top_k: int,
    periods: float,
    lag: int,
    predictor: KronosPredictor | None,
    notes: list[str],
) -> dict:
    """The settings the report states."""
    s = settings.drawn
    dates = panel.calendar[panel.dates]
    return {
        "horizon": settings.horizon,
        "rebalance": settings.every,
        "top_k": top_k,
        "cost_bps": settings.cost_bps,
        "quantiles": settings.quantiles,
        "lookback": lookback,
        "model": predictor is not None,
        "paths": s.sample_count if predictor is not None else None,
        "T": s.T,
        "top_p": s.top_p,
        "seed": settings.seed,
        "n_series": len(panel.series),
        "n_dates": len(panel.dates),
        "first_date": str(dates[0].date()) if len(dates) else None,
        "last_date": str(dates[-1].date()) if len(dates) else None,
        "rebalances_per_year": periods,
        "newey_west_lag": lag,
        "model_signals": list(MODEL_SIGNALS) if predictor is not None else [],
        "baselines": settings.baselines,
        "notes": notes,
    }
