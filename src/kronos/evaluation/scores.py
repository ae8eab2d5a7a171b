"""Scores of forecasts at backtest origins: every per-point score, as long tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos.evaluation import metrics
from kronos.evaluation.volatility import GarchFit, OriginVolatility, realised_variance
from kronos.forecasting.paths import close_log_returns
from kronos.forecasting.series import CLOSE, FEATURE_COLUMNS

SCORE_COLUMNS = [
    "abs_error",
    "squared_error",
    "ape",
    "crps",
    "crps_rel",
    "quantile_loss",
    "cover_50",
    "cover_80",
    "cover_95",
    "pit",
    "direction_hit",
    "prob_up",
    "brier",
]


def score_forecasts(
    point: np.ndarray, paths: np.ndarray, last: np.ndarray, actual: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Every per-point score, each [O, H, C], for point [O, H, C], paths [O, P, H, C], last [O, C], actual [O, H, C].

    crps_rel is the CRPS over |last value|, scale-free across series (NaN where last is 0). APE is
    NaN where the actual is 0; a direction hit is NaN where the forecast or the actual does
    not move from the last value (no call to judge). P(up) is the share of paths strictly above the
    last value (for close, `prob_close_above_last` of a forecast), and its Brier score is
    (P(up) - [actual > last])^2. PIT, P(up) and Brier are NaN for a single-path (point) forecast,
    which has no distribution to calibrate.
    """
    samples = np.moveaxis(paths, 1, 0)
    error = point - actual
    with np.errstate(divide="ignore", invalid="ignore"):
        ape = np.where(actual != 0, np.abs(error) / np.abs(actual), np.nan)
    predicted_move = np.sign(point - last[:, None, :])
    actual_move = np.sign(actual - last[:, None, :])
    judged = (predicted_move != 0) & (actual_move != 0)
    degenerate = samples.shape[0] == 1
    prob_up = np.full(actual.shape, np.nan) if degenerate else (samples > last[:, None, :]).mean(axis=0)
    crps = metrics.crps_from_samples(samples, actual)
    scores = {
        "abs_error": np.abs(error),
        "squared_error": error**2,
        "ape": ape,
        "crps": crps,
        "crps_rel": np.where(
            last[:, None, :] != 0, crps / np.abs(np.where(last == 0, 1, last))[:, None, :], np.nan
        ),
        "quantile_loss": metrics.quantile_loss(samples, actual),
        "pit": np.full(actual.shape, np.nan) if degenerate else metrics.randomized_pit(samples, actual, rng),
        "direction_hit": np.where(judged, (predicted_move == actual_move).astype(np.float64), np.nan),
        "prob_up": prob_up,
        "brier": (prob_up - (actual > last[:, None, :])) ** 2,
    }
    for level in metrics.INTERVAL_LEVELS:
        scores[f"cover_{round(level * 100)}"] = metrics.interval_hits(samples, actual, level)
    return scores


@dataclass(frozen=True)
class ScoredOrigins:
    """The origins every method is scored at: their table (series, origin, origin_time), the
    timestamps [O, H] and bars [O, H, 6] of their targets, the last bar each forecast saw [O, 6],
    and the evaluated columns."""

    table: pd.DataFrame
    target_times: np.ndarray
    actuals: np.ndarray
    last: np.ndarray
    columns: list[str]

    def score(
        self, forecasts: dict[str, tuple[np.ndarray, np.ndarray]], rng: np.random.Generator
    ) -> pd.DataFrame:
        """Every method's records (one row per origin, step and column), methods in the order of
        `forecasts`; rng draws the randomized PIT."""
        return pd.concat(
            [
                _long_records(
                    method, self, point, score_forecasts(point, paths, self.last, self.actuals, rng)
                )
                for method, (point, paths) in forecasts.items()
            ],
            ignore_index=True,
        )

    @property
    def range_based(self) -> bool:
        """Whether realised variance is measured from the bars' ranges (open, high and low are real)."""
        return {"open", "high", "low"} <= set(self.columns)

    def volatility(self, model_paths: dict[str, np.ndarray], fitted: OriginVolatility) -> pd.DataFrame:
        """One row per method and origin: the forecast and realised variance of the close's log
        return per bar over the horizon (and their square roots, the volatilities), with the
        losses QLIKE, squared error of the variance and absolute error of the volatility. Models
        forecast the mean over their paths of the per-bar realised variance; the volatility
        baselines (`kronos.evaluation.volatility`) their own forecasts. GARCH rows carry the fit."""
        steps = self.actuals.shape[1]
        realised = realised_variance(self.actuals, self.last, self.range_based)
        forecasts = {
            name: np.nanmean(close_log_returns(paths, self.last[:, CLOSE]) ** 2, axis=(1, 2))
            for name, paths in model_paths.items()
        }
        forecasts.update(fitted.forecasts(steps))
        rows = []
        for method, forecast in forecasts.items():
            row = self.table.assign(
                method=method,
                forecast_variance=forecast,
                realised_variance=realised,
                forecast_volatility=np.sqrt(forecast),
                realised_volatility=np.sqrt(np.maximum(realised, 0.0)),
            )
            if method == "garch11":
                row = row.assign(**_garch_columns(fitted.garch))
            rows.append(row)
        table = pd.concat(rows, ignore_index=True)
        return table.assign(
            volatility_abs_error=(table["forecast_volatility"] - table["realised_volatility"]).abs(),
            variance_squared_error=(table["forecast_variance"] - table["realised_variance"]) ** 2,
            qlike=metrics.qlike(table["realised_variance"].to_numpy(), table["forecast_variance"].to_numpy()),
        )


def _garch_columns(fits: list[GarchFit]) -> dict[str, list]:
    """The fitted GARCH(1,1) at each origin, as volatility.csv records it."""
    return {
        "garch_omega": [f.omega for f in fits],
        "garch_alpha": [f.alpha for f in fits],
        "garch_beta": [f.beta for f in fits],
        "garch_nu": [f.nu for f in fits],
        "garch_shocks": [f.shocks for f in fits],
    }


def _long_records(
    method: str, origins: ScoredOrigins, point: np.ndarray, scores: dict[str, np.ndarray]
) -> pd.DataFrame:
    """Flatten [O, H, C] arrays into rows ordered by origin, horizon, column."""
    n_origins, steps = origins.target_times.shape
    columns = origins.columns
    n_cols = len(columns)
    take = np.asarray([FEATURE_COLUMNS.index(c) for c in columns])
    repeat = steps * n_cols
    table = {
        "method": method,
        "series": np.repeat(origins.table["series"].to_numpy(), repeat),
        "origin": np.repeat(origins.table["origin"].to_numpy(), repeat),
        "origin_time": np.repeat(origins.table["origin_time"].to_numpy(), repeat),
        "horizon": np.tile(np.repeat(np.arange(1, steps + 1), n_cols), n_origins),
        "target_time": np.repeat(origins.target_times.ravel(), n_cols),
        "column": np.tile(np.asarray(columns, dtype=object), n_origins * steps),
        "last": np.repeat(origins.last[:, None, take], steps, axis=1).ravel(),
        "actual": origins.actuals[..., take].ravel(),
        "forecast": point[..., take].ravel(),
    }
    for name in SCORE_COLUMNS:
        table[name] = scores[name][..., take].ravel()
    return pd.DataFrame(table)
