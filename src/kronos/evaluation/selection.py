"""Forecast metrics to choose checkpoints and recipes by: what a user of the model gets, measured
at held-out origins, per bar-spacing family (daily, hourly, minute).

At a few origins in each series' held-out part, the model samples paths as a user's forecast
would (default sampling, seeded), and the Gaussian, EWMA and GARCH(1,1) random walks
(`kronos.evaluation.baselines`, fitted on the bars before each origin) sample as many. Every
method is scored on the close's log move from the last close at each step by
`kronos.evaluation.scores.score_forecasts`: fair CRPS, 80% and 95% interval hits, P(up) and its
Brier score. The model's variance per bar is scored by QLIKE against the realised one
(`ScoredOrigins.volatility`). The baselines are drawn and scored once; the model at every call,
from the same seeds, so that the checkpoints of a run meet the same random numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kronos.evaluation.backtest import Origin, select_origins
from kronos.evaluation.baselines import run_baseline
from kronos.evaluation.data import present_columns
from kronos.evaluation.scores import ScoredOrigins, score_forecasts
from kronos.evaluation.volatility import OriginVolatility, fit_volatility
from kronos.forecasting.actions import SplitWarning
from kronos.forecasting.core import ContextWarning
from kronos.forecasting.paths import close_log_returns
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.schedules import ONE_DAY, bar_step
from kronos.forecasting.series import CLOSE, Series, check_pred_len, positive_int

FAMILIES = ("daily", "hourly", "minute")
RANDOM_WALKS = ("gaussian_rw", "ewma", "garch11")  # the yardstick: the best of them, per family
MODEL = "kronos"
POOLED = {  # metric over all families (each family weighs alike) -> the family metric it averages
    "crps_ratio": "crps_ratio",
    "cover_80": "cover_80",
    "cover_95": "cover_95",
    "abs_drift": "drift",
    "brier": "brier",
    "qlike": "qlike",
}


def spacing_family(timestamps: pd.DatetimeIndex) -> str:
    """'daily' for bars a day or more apart (their most common step), 'hourly' for an hour or
    more, else 'minute'."""
    step = bar_step(timestamps)
    if step is None:
        raise ValueError("a series needs at least 2 bars to have a bar spacing")
    if step >= ONE_DAY:
        return "daily"
    return "hourly" if step >= pd.Timedelta(hours=1) else "minute"


def held_out_origins(
    series: dict[str, Series], held_out_from: dict[str, int], lookback: int, steps: int, per_family: int
) -> list[Origin]:
    """`per_family` origins per bar-spacing family, shared evenly by its series, each spread over
    the rows t >= held_out_from[name] (and t >= lookback) whose `steps` target bars exist."""
    by_family: dict[str, list[str]] = {}
    for name, one in series.items():
        by_family.setdefault(spacing_family(one.timestamps), []).append(name)
    origins: list[Origin] = []
    for names in by_family.values():
        for j, name in enumerate(names):
            count = per_family // len(names) + (j < per_family % len(names))
            if count == 0:
                continue
            first = max(held_out_from[name], lookback)
            rows = select_origins(len(series[name]), lookback, steps, origins=count, first=first)
            origins.extend((name, int(t)) for t in rows)
    return origins


class ForecastScorer:
    """Scores a predictor's forecasts at fixed held-out origins against the random walks.

    `series[i]` is held out from row `held_out_from[i]` on (e.g. a training config's validation
    part): its origins forecast only bars from there, from the `lookback` bars before them.
    `origins` per family are spread over its series; each forecast draws `paths` paths of `steps`
    bars, origin t of series s from (seed, s, t) alone. Calling the scorer with a predictor (or a
    checkpoint directory) gives a flat dict of floats: per family `"{family}/{metric}"`
    (`family_metrics`) and pooled over families the keys of POOLED, all lower-is-better except the
    coverages, P(up) and the up share.
    """

    def __init__(
        self,
        series: Sequence[Series],
        held_out_from: Sequence[int],
        steps: int,
        lookback: int,
        origins: int = 30,
        paths: int = 20,
        seed: int = 0,
    ):
        if len(series) != len(held_out_from):
            raise ValueError(
                f"held_out_from gives {len(held_out_from)} rows for {len(series)} series: give one per series"
            )
        self.steps = check_pred_len(steps, "steps")
        self.lookback = positive_int(lookback, "lookback")
        if self.lookback < 3:
            raise ValueError(
                f"lookback must be at least 3 bars (the baselines estimate a volatility), got {lookback}"
            )
        self.paths, self.seed = positive_int(paths, "paths"), int(seed)  # the model samples as it says
        self.series = {f"{i}:{one.name}": one for i, one in enumerate(series)}
        starts = dict(zip(self.series, held_out_from))
        self.origins = held_out_origins(
            self.series, starts, self.lookback, self.steps, positive_int(origins, "origins")
        )
        if not self.origins:
            raise ValueError(
                f"no series has a held-out origin: each needs {self.steps} bars after its held-out start "
                f"and {self.lookback} bars of lookback before the origin"
            )
        self.families = np.array([spacing_family(self.series[name].timestamps) for name, _ in self.origins])
        histories = np.stack([self.series[name].bars[t - self.lookback : t] for name, t in self.origins])
        self.scored = self._scored_origins(histories[:, -1, :])
        self.volatility: OriginVolatility = fit_volatility(self.series, self.origins, self.lookback)
        rng = np.random.default_rng(self.seed)
        self.baselines = {
            name: self._move_scores(
                run_baseline(name, histories, self.steps, self.paths, rng, self.volatility)[1]
            )
            for name in RANDOM_WALKS
        }

    def __call__(self, predictor: KronosPredictor | str | Path) -> dict[str, float]:
        if isinstance(predictor, (str, Path)):
            predictor = KronosPredictor.from_pretrained(str(predictor), device="cpu")
        windows = [self.series[name].window(t - self.lookback, t, key=(name, t)) for name, t in self.origins]
        futures = [self.series[name].timestamps[t : t + self.steps] for name, t in self.origins]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ContextWarning)  # the caller chose the lookback
            warnings.simplefilter("ignore", SplitWarning)  # training data, jumps and all: nothing to act on
            sampling = predictor.sampling_with(sample_count=self.paths, seed=self.seed)
            # the model's own paths, uncentered: a checkpoint is chosen for its median move too, and the
            # recipe's selections stay those measured (docs/calibration.md, "Centering")
            paths = predictor.sample(windows, self.steps, sampling, future=futures, center=False).paths
        paths = np.asarray(paths, dtype=np.float64)
        model = self._move_scores(paths)
        volatility = self.scored.volatility({MODEL: paths}, self.volatility)
        qlike = {method: rows["qlike"].to_numpy() for method, rows in volatility.groupby("method")}
        scores: dict[str, float] = {}
        per_family = []
        for family in FAMILIES:
            chosen = self.families == family
            if chosen.any():
                row = self.family_metrics(model, chosen)
                row.update(qlike=_mean(qlike[MODEL][chosen]), qlike_garch11=_mean(qlike["garch11"][chosen]))
                per_family.append(row)
                scores.update({f"{family}/{key}": value for key, value in row.items()})
        for pooled, metric in POOLED.items():
            values = [abs(row[metric]) if pooled == "abs_drift" else row[metric] for row in per_family]
            scores[pooled] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        return scores

    def family_metrics(self, model: dict[str, np.ndarray], chosen: np.ndarray) -> dict[str, float]:
        """A family's metrics of a method's scores (`_move_scores`) over its origins (`chosen`) and
        steps: the method's CRPS of log moves, each random walk's, the method's over the best one's;
        the method's 80% and 95% coverage, mean P(up), the realised up share, their difference
        (drift: 0 when P(up) invents none), the share of forecasts whose median move is up, and
        the Brier score of P(up). (The scorer adds QLIKE of the model's and GARCH(1,1)'s variance
        per bar.)"""
        crps = {name: _mean(scores["crps"][chosen]) for name, scores in self.baselines.items()}
        model_crps = _mean(model["crps"][chosen])
        actual = self.actual_moves[chosen]
        up_share = _mean(np.where(np.isfinite(actual), actual > 0, np.nan))
        prob_up = _mean(model["prob_up"][chosen])
        return {
            "origins": float(chosen.sum()),
            "crps": model_crps,
            **{f"crps_{name}": value for name, value in crps.items()},
            "crps_ratio": model_crps / min(crps.values()),
            "cover_80": _mean(model["cover_80"][chosen]),
            "cover_95": _mean(model["cover_95"][chosen]),
            "prob_up": prob_up,
            "up_share": up_share,
            "drift": prob_up - up_share,
            "median_up": _mean(model["median_up"][chosen]),
            "brier": _mean(model["brier"][chosen]),
        }

    @property
    def actual_moves(self) -> np.ndarray:
        """The close's realised log move from the last close at each step, [O, H]."""
        return self._moves(self.scored.actuals[:, None])[:, 0]

    def _move_scores(self, paths: np.ndarray) -> dict[str, np.ndarray]:
        """Per origin and step [O, H]: the scores of `paths` [O, P, H, 6] on the close's log move
        from the last close, and whether their median move is up."""
        moves = self._moves(paths)
        median = np.median(moves, axis=1)
        zero = np.zeros((len(moves), 1))
        rng = np.random.default_rng(self.seed)  # draws the PIT, which selection does not use
        scores = score_forecasts(median[..., None], moves[..., None], zero, self.actual_moves[..., None], rng)
        flat = {name: values[..., 0] for name, values in scores.items()}
        flat["median_up"] = np.where(np.isfinite(median), median > 0, np.nan)
        return flat

    def _moves(self, paths: np.ndarray) -> np.ndarray:
        """The close's log move from each origin's last close, [O, P, H] for paths [O, P, H, 6]."""
        return np.cumsum(close_log_returns(paths, self.scored.last[:, CLOSE]), axis=-1)

    def _scored_origins(self, last: np.ndarray) -> ScoredOrigins:
        table = pd.DataFrame(
            {
                "series": [name for name, _ in self.origins],
                "origin": [t for _, t in self.origins],
                "origin_time": [self.series[name].timestamps[t - 1] for name, t in self.origins],
            }
        )
        return ScoredOrigins(
            table,
            np.stack(
                [self.series[name].timestamps[t : t + self.steps].to_numpy() for name, t in self.origins]
            ),
            np.stack([self.series[name].bars[t : t + self.steps] for name, t in self.origins]),
            last,
            present_columns(self.series),
        )


def family_table(scores: dict[str, float]) -> pd.DataFrame:
    """A scorer's flat dict as a table: one row per family, one column per metric."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in scores.items():
        if "/" in key:
            family, metric = key.split("/", 1)
            rows.setdefault(family, {})[metric] = value
    return pd.DataFrame.from_dict(rows, orient="index")


def _mean(values: np.ndarray) -> float:
    """The mean of the finite values; NaN when there are none."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if len(finite) else float("nan")
