"""Honest evaluation: rolling-origin backtests of a model against naive baselines.

`evaluate(data, predictor, Backtest(steps=...))` returns an `EvaluationResult` with the raw
per-origin scores, aggregate tables (`summary`, `by_horizon`, `by_column`, `pit_histogram`) and
`write_report(out_dir)`. The `kronos evaluate` command wraps the same calls.
"""

from kronos.evaluation.backtest import Backtest, evaluate, select_origins
from kronos.evaluation.baselines import (
    BASELINES,
    drift,
    ewma_walk,
    garch_walk,
    gaussian_random_walk,
    persistence,
)
from kronos.evaluation.data import read_series
from kronos.evaluation.metrics import (
    bootstrap_ratio_of_sums,
    crps_from_samples,
    diebold_mariano,
    empirical_cdf_at,
    interval_hits,
    mincer_zarnowitz,
    pit_histogram,
    qlike,
    quantile_loss,
    randomized_pit,
)
from kronos.evaluation.result import EvaluationResult
from kronos.evaluation.scores import score_forecasts
from kronos.evaluation.volatility import fit_garch, fit_volatility

__all__ = [
    "BASELINES",
    "Backtest",
    "EvaluationResult",
    "bootstrap_ratio_of_sums",
    "crps_from_samples",
    "diebold_mariano",
    "drift",
    "empirical_cdf_at",
    "evaluate",
    "ewma_walk",
    "garch_walk",
    "gaussian_random_walk",
    "interval_hits",
    "mincer_zarnowitz",
    "persistence",
    "pit_histogram",
    "qlike",
    "quantile_loss",
    "read_series",
    "randomized_pit",
    "score_forecasts",
    "select_origins",
    "fit_garch",
    "fit_volatility",
]
