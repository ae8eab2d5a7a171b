"""Aggregate tables from a backtest's per-origin records."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos.evaluation.metrics import bootstrap_ratio_of_sums, diebold_mariano, mincer_zarnowitz
from kronos.evaluation.volatility import VOLATILITY_BASELINES


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
# tested by Diebold-Mariano against the best baseline: CRPS in price units and as a share of the last
# price (crps_pct: what pools fairly over series of different price levels), and MAE
TESTED_METRICS = ("crps", "crps_pct", "mae")
SIGNIFICANCE = 0.05


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
            if spec.name in TESTED_METRICS:
                steps = result.settings["steps"]
                test = loss_test(origin_losses(frame, spec), origin_losses(reference, spec), steps)
                table.loc[method, [f"{spec.name}_dm_stat", f"{spec.name}_dm_p"]] = test
        table[f"{spec.name}_best_baseline"] = best
    return table


def origin_losses(sums: pd.DataFrame, spec: MetricSpec) -> pd.Series:
    """A metric's mean over each origin's horizon steps, by (series, origin)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return sums[spec.numerator] / sums[spec.denominator]


def overlapping_forecasts(origins: np.ndarray, steps: int) -> int:
    """How many consecutive forecasts share a target bar: ceil(steps / the closest origins' gap)."""
    gaps = np.diff(np.sort(np.asarray(origins)))
    return 1 if len(gaps) == 0 else int(np.ceil(steps / max(int(gaps.min()), 1)))


def loss_test(losses: pd.Series, reference: pd.Series, steps: int) -> tuple[float, float]:
    """Diebold-Mariano (HLN) statistic and p-value of losses against reference losses, both by
    (series, origin): series pooled, each in time order, lags from the origins' overlap."""
    difference = (losses - reference).dropna()
    if difference.empty:
        return (np.nan, np.nan)
    by_series = [d.sort_index(level="origin") for _, d in difference.groupby(level="series", sort=False)]
    horizon = max(overlapping_forecasts(d.index.get_level_values("origin"), steps) for d in by_series)
    return diebold_mariano([d.to_numpy() for d in by_series], horizon)


def verdict(statistic: float, p_value: float) -> str:
    """ "better" or "worse" where the test rejects equal loss at 5%, else "not distinguishable"."""
    if not p_value < SIGNIFICANCE:
        return "not distinguishable"
    return "better" if statistic < 0 else "worse"


def significance_table(result, column: str) -> pd.DataFrame:
    """Per model, tested metric and series (and "pooled"): the best baseline there (lowest mean
    loss), both mean losses, the Diebold-Mariano statistic and p-value, and the verdict."""
    sums = origin_sums(result, column)
    specs = [spec for spec in METRICS if spec.name in TESTED_METRICS]
    rows = []
    for model in result.models:
        for spec in specs:
            losses = {m: origin_losses(sums.xs(m, level="method"), spec) for m in result.methods}
            groups = [("pooled", slice(None))] + [(name, name) for name in result.origins["series"].unique()]
            for label, which in groups:
                rows.append(
                    _tested(
                        result, model, spec.name, label, {m: loss.loc[which] for m, loss in losses.items()}
                    )
                )
    table = pd.DataFrame(rows)
    return table.set_index(["method", "metric", "series"]) if rows else table


def _tested(result, model: str, metric: str, label: str, losses: dict[str, pd.Series]) -> dict:
    """One row of the significance table."""
    means = {name: float(losses[name].mean()) for name in result.baselines}
    best = min(means, key=lambda name: np.inf if np.isnan(means[name]) else means[name])
    model_losses, reference = losses[model], losses[best]
    if label != "pooled":
        model_losses = pd.concat({label: model_losses}, names=["series"])
        reference = pd.concat({label: reference}, names=["series"])
    statistic, p_value = loss_test(model_losses, reference, result.settings["steps"])
    return {
        "method": model,
        "metric": metric,
        "series": label,
        "best_baseline": best,
        "loss": float(losses[model].mean()),
        "best_baseline_loss": means[best],
        "dm_stat": statistic,
        "dm_p": p_value,
        "verdict": verdict(statistic, p_value),
    }


def volatility_table(result) -> pd.DataFrame:
    """Per method forecasting volatility: origins scored, mean QLIKE, MSE of the variance and MAE
    of the volatility (per bar), the Mincer-Zarnowitz regression of realised on forecast variance,
    and the Diebold-Mariano test of its QLIKE against the best volatility baseline's (the lowest
    mean QLIKE among the baselines that forecast at every origin)."""
    rows = result.volatility.set_index(ORIGIN_KEY)
    methods = list(rows["method"].unique())
    baselines = [m for m in methods if m in VOLATILITY_BASELINES]
    table = pd.DataFrame(index=pd.Index(methods, name="method"))
    for method, one in rows.groupby("method", sort=False):
        intercept, slope, r2 = mincer_zarnowitz(one["realised_variance"], one["forecast_variance"])
        table.loc[method, ["origins", "qlike", "mse", "vol_mae", "mz_intercept", "mz_slope", "mz_r2"]] = [
            int(one["qlike"].notna().sum()),
            one["qlike"].mean(),
            one["variance_squared_error"].mean(),
            one["volatility_abs_error"].mean(),
            intercept,
            slope,
            r2,
        ]
    complete = [m for m in baselines if table.loc[m, "origins"] == table["origins"].max()]
    if complete:  # HAR-RV, without a forecast at early origins, is not compared on fewer origins
        best = table.loc[complete, "qlike"].idxmin()
        reference = rows[rows["method"] == best]["qlike"]
        for method, one in rows.groupby("method", sort=False):
            table.loc[method, ["qlike_dm_stat", "qlike_dm_p"]] = loss_test(
                one["qlike"], reference, result.settings["steps"]
            )
        table["qlike_best_baseline"] = best
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
