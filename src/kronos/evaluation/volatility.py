"""Volatility models fitted at each origin on the series' bars before it, and realised variance.

Every model here forecasts the variance of the close's log return per bar. At origin t it sees
the bars before t only: the lookback for the historical volatility, the last `PAST_BARS` bars for
EWMA and GARCH(1,1), every complete day before the origin's for HAR-RV. Each origin is fitted
once; the EWMA and GARCH walks (baselines.py) and the volatility task (`volatility_rows`) reuse it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from kronos.forecasting.paths import log_returns
from kronos.forecasting.series import CLOSE, FEATURE_COLUMNS, Series

EWMA_LAMBDA = 0.94  # RiskMetrics' daily decay, used per bar at every bar spacing (half-life 11.2 bars)
PAST_BARS = 1000  # bars before an origin that EWMA and GARCH(1,1) are fitted on, at most
MIN_GARCH_RETURNS = 100  # fewer returns than this: no GARCH fit, the EWMA variance instead
HAR_MIN_DAYS = 30  # complete days of realised variance HAR-RV needs: 22 to start, the rest to fit
VOLATILITY_BASELINES = ("historical", "ewma", "garch11", "har_rv")
SHOCKS: tuple[Literal["t", "normal"], ...] = ("t", "normal")  # tried in this order
OPEN, HIGH, LOW = (FEATURE_COLUMNS.index(c) for c in ("open", "high", "low"))


@dataclass(frozen=True)
class GarchFit:
    """GARCH(1,1) of a zero-mean log return at one origin, in return units squared:
    h_{k+1} = omega + alpha r_k^2 + beta h_k, r_k = sqrt(h_k) z_k, z_k unit-variance Student t
    with `nu` degrees of freedom (inf: Gaussian). `next_variance` is h at the first forecast bar.
    `shocks` says what was fitted: "t", "normal" (the t fit failed), or "ewma" (no fit: too few
    returns or both fits failed; omega = 0, alpha = 1 - lambda, beta = lambda, the EWMA recursion)."""

    omega: float
    alpha: float
    beta: float
    nu: float
    next_variance: float
    shocks: str

    def variance_path(self, steps: int) -> np.ndarray:
        """Expected variance of each of the next `steps` returns: E h_{k+1} = omega + (alpha + beta) E h_k."""
        variance = np.empty(steps)
        variance[0] = self.next_variance
        for k in range(1, steps):
            variance[k] = self.omega + (self.alpha + self.beta) * variance[k - 1]
        return variance


def close_returns(closes: np.ndarray) -> np.ndarray:
    """Close-to-close log returns of a series of closes; NaN where a close is not positive."""
    return log_returns(closes[..., 0], closes[..., 1:])


def ewma_variance(returns: np.ndarray, decay: float = EWMA_LAMBDA) -> float:
    """RiskMetrics: s_{k+1} = decay s_k + (1 - decay) r_k^2, started at the mean of r^2 over the
    returns and run through all of them; returns the variance of the next return. Its forecast is
    flat: every later return has the same variance (the square-root-of-time rule)."""
    returns = returns[np.isfinite(returns)]
    if len(returns) == 0:
        return np.nan
    variance = float(np.mean(returns**2))
    for r in returns:
        variance = decay * variance + (1 - decay) * r * r
    return variance


def fit_garch(returns: np.ndarray) -> GarchFit:
    """GARCH(1,1) with Student-t shocks by maximum likelihood (the `arch` package), on returns
    scaled to unit variance; Gaussian shocks when the t fit does not converge, and the EWMA
    recursion when that fails too or fewer than MIN_GARCH_RETURNS returns are given."""
    returns = returns[np.isfinite(returns)]
    scale = float(np.std(returns)) if len(returns) else 0.0
    if len(returns) >= MIN_GARCH_RETURNS and scale > 0:
        for shocks in SHOCKS:
            fit = _arch_fit(returns / scale, shocks)
            if fit is not None:
                omega, alpha, beta, nu, next_variance = fit
                return GarchFit(omega * scale**2, alpha, beta, nu, next_variance * scale**2, shocks)
    variance = ewma_variance(returns)
    return GarchFit(0.0, 1 - EWMA_LAMBDA, EWMA_LAMBDA, np.inf, variance, "ewma")


def _arch_fit(
    scaled: np.ndarray, shocks: Literal["t", "normal"]
) -> tuple[float, float, float, float, float] | None:
    """(omega, alpha, beta, nu, next variance) of a converged fit (alpha + beta <= 1, as `arch`
    constrains it; persistent daily returns often reach the bound); None otherwise."""
    from arch import arch_model
    from threadpoolctl import threadpool_limits

    model = arch_model(scaled, mean="Zero", vol="GARCH", p=1, q=1, dist=shocks, rescale=False)
    # BLAS on one thread: its threaded sums round differently, and the fit must not depend on the
    # machine's thread count (the same file gives the same report everywhere)
    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("ignore")
        try:
            result = model.fit(disp="off", show_warning=False)
        except (ValueError, np.linalg.LinAlgError):
            return None
    params = result.params
    omega, alpha, beta = float(params["omega"]), float(params["alpha[1]"]), float(params["beta[1]"])
    if result.convergence_flag != 0 or not np.isfinite([omega, alpha, beta]).all() or alpha + beta > 1 + 1e-6:
        return None
    last_variance = float(result.conditional_volatility[-1]) ** 2
    next_variance = omega + alpha * scaled[-1] ** 2 + beta * last_variance
    return omega, alpha, beta, float(params["nu"]) if shocks == "t" else np.inf, next_variance


def har_variance(daily: pd.Series, bars_per_day: float) -> float:
    """HAR-RV (Corsi 2009): RV_d = b0 + b1 RV_{d-1} + b2 mean(RV_{d-5..d-1}) + b3 mean(RV_{d-22..d-1}),
    fitted by least squares on the complete days given; returns the next day's forecast spread
    evenly over its bars (variance per bar). NaN with fewer than HAR_MIN_DAYS days."""
    rv = daily.to_numpy(dtype=np.float64)
    if len(rv) < HAR_MIN_DAYS:
        return np.nan
    week = pd.Series(rv).rolling(5).mean().to_numpy()
    month = pd.Series(rv).rolling(22).mean().to_numpy()
    regressors = np.column_stack([np.ones(len(rv)), rv, week, month])
    x, y = regressors[21:-1], rv[22:]
    coefficients, *_ = np.linalg.lstsq(x, y, rcond=None)
    forecast = float(regressors[-1] @ coefficients)
    return forecast / bars_per_day if forecast > 0 else np.nan


def daily_realised_variance(series: Series) -> tuple[pd.Series, np.ndarray, float] | None:
    """For intraday bars: the realised variance of each calendar day (sum of its bars' squared
    close log returns), each bar's day, and the median bars per day; None for daily or longer bars."""
    times = pd.DatetimeIndex(series.timestamps)
    if len(times) < 3 or pd.Series(times).diff().median() >= pd.Timedelta(days=1):
        return None
    days = times.normalize()
    squared = pd.Series(np.append(np.nan, close_returns(series.bars[:, CLOSE])) ** 2, index=days)
    daily = squared.groupby(level=0, sort=True).sum(min_count=1)
    bars_per_day = float(squared.groupby(level=0).size().median())
    return daily, days.to_numpy(), bars_per_day


@dataclass(frozen=True)
class OriginVolatility:
    """Per origin (in the backtest's order): one-step variances of the close's log return from the
    lookback (`historical`, sample variance), EWMA and HAR-RV (NaN where the bars are not
    intraday or too few days precede the origin), and the GARCH(1,1) fit."""

    historical: np.ndarray
    ewma: np.ndarray
    har_rv: np.ndarray
    garch: list[GarchFit]

    def forecasts(self, steps: int) -> dict[str, np.ndarray]:
        """Each model's forecast of the mean variance per bar over the next `steps` bars, [O]."""
        garch = np.array([fit.variance_path(steps).mean() for fit in self.garch])
        table = {"historical": self.historical, "ewma": self.ewma, "garch11": garch, "har_rv": self.har_rv}
        return {name: values for name, values in table.items() if np.isfinite(values).any()}


def fit_volatility(
    series: dict[str, Series], origins: list[tuple[str, int]], lookback: int
) -> OriginVolatility:
    """Fit every volatility model at every origin (series name, row t) on the bars before t."""
    historical, ewma, har, garch = [], [], [], []
    intraday = {name: daily_realised_variance(series[name]) for name in {name for name, _ in origins}}
    for name, t in origins:
        closes = series[name].bars[:t, CLOSE]
        past = close_returns(closes[-(PAST_BARS + 1) :])
        lookback_returns = close_returns(closes[-lookback:])
        historical.append(np.nanvar(lookback_returns, ddof=1))
        ewma.append(ewma_variance(past))
        garch.append(fit_garch(past))
        har.append(_har_at(intraday[name], t))
    return OriginVolatility(np.array(historical), np.array(ewma), np.array(har), garch)


def _har_at(intraday: tuple[pd.Series, np.ndarray, float] | None, t: int) -> float:
    """HAR-RV at row t on the days complete before the day of bar t - 1."""
    if intraday is None:
        return np.nan
    daily, days, bars_per_day = intraday
    return har_variance(daily[daily.index < days[t - 1]].dropna(), bars_per_day)


def realised_variance(actuals: np.ndarray, last: np.ndarray, range_based: bool) -> np.ndarray:
    """Realised variance per bar over each origin's target bars [O, H, 6] (last: the bar before, [O, 6]).

    Range-based (when open, high and low are real): per bar the squared overnight log return
    ln(O_k / C_{k-1})^2 plus Garman-Klass's 0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2, an estimate
    of the squared close-to-close return with about a fifth of its noise. Otherwise the squared
    close-to-close log return. Averaged over the H bars: the variance per bar, comparable with
    the models' forecasts. NaN where a price is not positive.
    """
    if not range_based:
        return np.mean(log_returns(last[:, CLOSE], actuals[..., CLOSE]) ** 2, axis=1)
    closes = np.concatenate([last[:, None, CLOSE], actuals[..., CLOSE]], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.where(actuals > 0, actuals, np.nan))
        previous_close = np.log(np.where(closes[:, :-1] > 0, closes[:, :-1], np.nan))
    overnight = logs[..., OPEN] - previous_close
    high_low = logs[..., HIGH] - logs[..., LOW]
    close_open = logs[..., CLOSE] - logs[..., OPEN]
    per_bar = overnight**2 + 0.5 * high_low**2 - (2 * np.log(2) - 1) * close_open**2
    return np.mean(per_bar, axis=1)
