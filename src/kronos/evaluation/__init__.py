"""Honest evaluation: rolling-origin backtests of a model against naive baselines.

`evaluate(data, predictor, Backtest(steps=...))` returns an `EvaluationResult` with the raw
per-origin scores, aggregate tables (`summary`, `by_horizon`, `by_column`, `pit_histogram`) and
`write_report(out_dir)`. The `kronos evaluate` command wraps the same calls.
"""

from kronos.evaluation.backtest import Backtest, evaluate, select_origins
from kronos.evaluation.baselines import BASELINES, drift, gaussian_random_walk, persistence
from kronos.evaluation.data import read_series
from kronos.evaluation.metrics import (
    bootstrap_ratio_of_sums,
    crps_from_samples,
    empirical_cdf_at,
    interval_hits,
    pit_histogram,
    quantile_loss,
    randomized_pit,
)
from kronos.evaluation.result import EvaluationResult
from kronos.evaluation.scores import score_forecasts

__all__ = [
    "BASELINES",
    "Backtest",
    "EvaluationResult",
    "bootstrap_ratio_of_sums",
    "crps_from_samples",
    "drift",
    "empirical_cdf_at",
    "evaluate",
    "gaussian_random_walk",
    "interval_hits",
    "persistence",
    "pit_histogram",
    "quantile_loss",
    "read_series",
    "randomized_pit",
    "score_forecasts",
    "select_origins",
]
