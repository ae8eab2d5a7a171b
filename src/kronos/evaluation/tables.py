"""Aggregate tables from a backtest's per-origin records."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos.evaluation.metrics import bootstrap_ratio_of_sums


@dataclass(frozen=True)
class MetricSpec:
    """A metric as sum(numerator) / sum(denominator) over points, then an optional transform.

    Writing every metric as a ratio of sums lets one bootstrap (resampling origins) serve them all.
    """

    name: str
    numerator: str
    denominator: str
    lower_is_better: bool | None
    scale: float = 1.0
    root: bool = False


METRICS = [
    MetricSpec("mae", "abs_error", "n_abs_error", True),
    MetricSpec("rmse", "squared_error", "n_squared_error", True, root=True),
    MetricSpec("mape_pct", "ape", "n_ape", True, scale=100.0),
    MetricSpec("crps", "crps", "n_crps", True),
    MetricSpec("crps_pct", "crps_rel", "n_crps_rel", True, scale=100.0),
    MetricSpec("wql", "quantile_loss", "abs_actual", True),
    MetricSpec("coverage_50", "cover_50", "n_cover_50", None),
    MetricSpec("coverage_80", "cover_80", "n_cover_80", None),
    MetricSpec("coverage_95", "cover_95", "n_cover_95", None),
    MetricSpec("direction_acc", "direction_hit", "n_direction_hit", False),
    MetricSpec("brier", "brier", "n_brier", True),
    MetricSpec("vol_mae", "volatility_abs_error", "n_volatility_abs_error", True),
]
RATIO_METRICS = [m.name for m in METRICS if m.lower_is_better]
ORIGIN_KEY = ["series", "origin"]


def origin_sums(result, column: str) -> pd.DataFrame:
    """Per method and origin: the sum of each score over horizons (NaN skipped) and its count."""
    if column not in result.columns:
        raise ValueError(f"column {column!r} was not evaluated; evaluated columns: {result.columns}")
    rows = result.records[result.records["column"] == column].assign(abs_actual=lambda d: d["actual"].abs())
    score_names = [m.numerator for m in METRICS if m.numerator in rows]
    grouped = rows.groupby(["method", *ORIGIN_KEY], sort=False)
    sums = grouped[score_names + ["abs_actual"]].sum()
    counts = grouped[score_names].count().add_prefix("n_")
    vol = result.volatility.set_index(["method", *ORIGIN_KEY])[["volatility_abs_error"]]
    vol = vol.assign(n_volatility_abs_error=vol["volatility_abs_error"].notna().astype(float))
    return pd.concat([sums, counts, vol], axis=1)


def _finish(spec: MetricSpec, value: float) -> float:
    value = np.sqrt(value) if spec.root else value
    return value * spec.scale


def summary_table(result, column: str, n_boot: int, confidence: float, seed: int) -> pd.DataFrame:
    sums = origin_sums(result, column)
    by_method = {m: sums.xs(m, level="method") for m in result.methods}
    table = pd.DataFrame(index=pd.Index(result.methods, name="method"))
    for spec in METRICS:
        for method, frame in by_method.items():
            estimate, low, high = bootstrap_ratio_of_sums(
                frame[spec.numerator].to_numpy(), frame[spec.denominator].to_numpy(), n_boot, confidence, seed
            )
            table.loc[method, [spec.name, f"{spec.name}_low", f"{spec.name}_high"]] = [
                _finish(spec, estimate),
                _finish(spec, low),
                _finish(spec, high),
            ]
        if not spec.lower_is_better or not result.baselines:
            continue
        baseline_values = table.loc[result.baselines, spec.name].dropna()
        if baseline_values.empty:
            continue
        best = baseline_values.idxmin()
        reference = by_method[best]
        for method, frame in by_method.items():
            paired = frame.merge(reference, left_index=True, right_index=True, suffixes=("", "_ref"))
            num = paired[[spec.numerator, f"{spec.numerator}_ref"]].to_numpy()
            den = paired[[spec.denominator, f"{spec.denominator}_ref"]].to_numpy()
            ratio = bootstrap_ratio_of_sums(num, den, n_boot, confidence, seed)
            if spec.root:
                ratio = tuple(np.sqrt(ratio))
            table.loc[method, [f"{spec.name}_ratio", f"{spec.name}_ratio_low", f"{spec.name}_ratio_high"]] = (
                ratio
            )
        table[f"{spec.name}_best_baseline"] = best
    return table


def horizon_table(result, column: str) -> pd.DataFrame:
    """Mean scores per method and horizon step (RMSE as the root of the mean squared error)."""
    if column not in result.columns:
        raise ValueError(f"column {column!r} was not evaluated; evaluated columns: {result.columns}")
    rows = result.records[result.records["column"] == column]
    grouped = rows.groupby(["method", "horizon"], sort=False)
    table = _error_scores(grouped).assign(
        direction_acc=grouped["direction_hit"].mean(), brier=grouped["brier"].mean()
    )
    return table.reindex(result.methods, level="method")


def reliability_table(result, column: str, bins: int) -> pd.DataFrame:
    """P(up) against how often the value did end above the last one, per model and bin of P(up).

    Rows (method, bin): `forecasts` in the bin, their mean `prob_up`, and `frequency_up`, the
    share that ended strictly above the last value; a calibrated P(up) has frequency = prob_up.
    """
    rows = result.records[(result.records["column"] == column) & result.records["prob_up"].notna()]
    rows = rows[rows["method"].isin(result.models)]
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(rows["prob_up"], edges[1:-1], right=True), 0, bins - 1)
    labels = [f"{edges[i]:.1f}-{edges[i + 1]:.1f}" for i in range(bins)]
    grouped = rows.assign(bin=np.asarray(labels)[which], up=(rows["actual"] > rows["last"]).astype(float))
    grouped = grouped.groupby(["method", "bin"], sort=False)
    table = pd.DataFrame(
        {
            "forecasts": grouped.size(),
            "prob_up": grouped["prob_up"].mean(),
            "frequency_up": grouped["up"].mean(),
        }
    )
    order = pd.MultiIndex.from_product([result.models, labels], names=["method", "bin"])
    return table.reindex(order).dropna(subset=["forecasts"]).astype({"forecasts": int})


def column_table(result) -> pd.DataFrame:
    """Mean error scores per method and evaluated column."""
    table = _error_scores(result.records.groupby(["method", "column"], sort=False))
    order = pd.MultiIndex.from_product([result.methods, result.columns], names=["method", "column"])
    return table.reindex(order)


def _error_scores(grouped) -> pd.DataFrame:
    """The error scores per group of records, as `by_horizon` and `by_column` show them."""
    return pd.DataFrame(
        {
            "mae": grouped["abs_error"].mean(),
            "rmse": np.sqrt(grouped["squared_error"].mean()),
            "mape_pct": 100 * grouped["ape"].mean(),
            "crps": grouped["crps"].mean(),
            "wql": grouped["quantile_loss"].sum() / grouped["actual"].apply(lambda a: a.abs().sum()),
            "coverage_80": grouped["cover_80"].mean(),
        }
    )
