"""The evaluation report: Markdown (optionally HTML) with tables and plots, plus the raw results.

Everything is first written to a staging folder beside the output folder and each file is then
flushed to disk and renamed into place, the report itself last, so a failure never leaves a
half-written file behind, nor a report pointing at files still to come.
"""

from __future__ import annotations

import html as html_lib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kronos.evaluation.metrics import INTERVAL_LEVELS
from kronos.evaluation.tables import TESTED_METRICS, verdict
from kronos.evaluation.volatility import EWMA_LAMBDA, PAST_BARS
from kronos.forecasting.paths import sample_quantiles
from kronos.forecasting.series import CLOSE
from kronos.io import write_folder_atomically

SUMMARY_LABELS = {
    "mae": "MAE",
    "rmse": "RMSE",
    "mape_pct": "MAPE %",
    "crps": "CRPS",
    "crps_pct": "CRPS %",
    "wql": "wQL",
    "coverage_50": "cov 50%",
    "coverage_80": "cov 80%",
    "coverage_95": "cov 95%",
    "direction_acc": "direction",
    "brier": "Brier P(up)",
    "vol_mae": "vol MAE",
}
RATIO_LABELS = {
    k: v
    for k, v in SUMMARY_LABELS.items()
    if k in ("mae", "rmse", "mape_pct", "crps", "crps_pct", "wql", "brier", "vol_mae")
}


@dataclass
class Section:
    title: str
    text: str = ""
    table: pd.DataFrame | None = None
    image: str | None = None


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    if value is None or not np.isfinite(value):
        return "–"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4g}"


def _with_interval(table: pd.DataFrame, name: str) -> pd.Series:
    return pd.Series(
        [
            f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]" if np.isfinite(v) else "–"
            for v, lo, hi in zip(table[name], table[f"{name}_low"], table[f"{name}_high"])
        ],
        index=table.index,
    )


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table; the index becomes the first column(s)."""
    frame = table.reset_index()
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = [
        "| " + " | ".join(_fmt(v) if not isinstance(v, str) else v for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows])


def verdicts(result, summary: pd.DataFrame) -> list[str]:
    """The report's verdict: one sentence per model and tested metric (CRPS, MAE), better, worse,
    or not distinguishable from the best baseline as the Diebold-Mariano test at 5% says, not the
    point estimate (`summary`: `EvaluationResult.summary`)."""
    lines = []
    for model in result.models:
        for metric in TESTED_METRICS:
            if f"{metric}_dm_p" not in summary or not np.isfinite(summary.loc[model, f"{metric}_ratio"]):
                continue
            ratio, statistic, p_value = summary.loc[
                model, [f"{metric}_ratio", f"{metric}_dm_stat", f"{metric}_dm_p"]
            ]
            best = summary.loc[model, f"{metric}_best_baseline"]
            lines.append(
                f"**{model}** {SUMMARY_LABELS[metric]} is {ratio:.3f}× the best baseline's ({best}); "
                f"Diebold-Mariano p = {_fmt(p_value)}: **{verdict(statistic, p_value)}**"
                + ("." if verdict(statistic, p_value) == "not distinguishable" else f" than {best}.")
            )
    return lines


def build_sections(
    result,
    summary: pd.DataFrame,
    horizon: pd.DataFrame,
    pit: pd.DataFrame,
    reliability: pd.DataFrame,
    n_boot: int,
    image_names: dict[str, str],
) -> tuple[list[Section], dict[str, pd.DataFrame]]:
    """The report's sections and the tables behind them (also written as CSV)."""
    s = result.settings
    columns = result.by_column()
    significance = result.significance("close") if result.baselines else pd.DataFrame()
    volatility = result.volatility_summary()
    coverage = pd.DataFrame(
        {f"{round(level * 100)}%": summary[f"coverage_{round(level * 100)}"] for level in INTERVAL_LEVELS}
    )

    overview = (
        f"{s['n_origins']} forecast origins over {s['n_series']} series; lookback {s['lookback']} bars, "
        f"horizon {s['steps']} bars, {s['paths']} sample paths per origin "
        f"(sampling T={s['T']}, top_k={s['top_k']}, top_p={s['top_p']}, seed {s['seed']}). "
        f"Methods: {', '.join(result.models) or 'no model'} against baselines {', '.join(result.baselines)}. "
        f"Evaluated columns: {', '.join(result.columns)}."
    )
    calibrated = result.calibrated
    if calibrated:
        overview += (
            f"\n\n{calibrated[0]}: the same forecasts, calibrated at each origin on the series' own bars "
            f"before it (a per-step scale of the paths around their median close, fitted to minimise the "
            f"CRPS of up to 200 past forecasts, one every {s['calibration_every']} bars; see "
            "docs/calibration.md). Origins start where 20 past forecasts exist."
        )
    if s.get("start") or s.get("end"):
        overview += (
            f"\n\nOnly origins whose forecast bars lie within [{s.get('start') or 'the first bar'}, "
            f"{s.get('end') or 'the last bar'}] are scored; earlier bars are history."
        )
    for note in s.get("notes", []):
        overview += f"\n\n**Note:** {note}"
    if result.skipped:
        overview += "\n\nSkipped series (too short): " + "; ".join(
            f"{k}: {v}" for k, v in result.skipped.items()
        )

    summary_view = pd.DataFrame(
        {label: _with_interval(summary, key) for key, label in SUMMARY_LABELS.items()}
    )
    ratio_view = pd.DataFrame(
        {
            f"{label} (vs {summary[f'{key}_best_baseline'].iloc[0]})": _with_interval(
                summary.rename(columns=lambda c, k=key: c.replace(f"{k}_ratio", f"{k}__r")), f"{key}__r"
            )
            for key, label in RATIO_LABELS.items()
            if f"{key}_ratio" in summary
        }
    )
    sections = [
        Section("Kronos evaluation report", overview),
        Section(
            "Summary (close)",
            "Mean over all origins and horizon steps, with a 95% bootstrap confidence interval "
            f"({n_boot} resamples of the origins, seed {s['seed']}). Lower is better except coverage "
            "(should match its nominal level) and direction accuracy (higher is better; 0.5 is a coin). "
            "CRPS % is the CRPS over the last known close, in percent: unlike the others it does not "
            "weigh series by their price level. Brier P(up) is the mean of (P(close ends above the last close) − outcome)², 0.25 for a "
            "constant 50%. CRPS is the fair (unbiased) sample estimator for every method, so the number of "
            "paths favours no one.",
            summary_view,
        ),
    ]
    if result.baselines:
        sections.append(
            Section(
                "Ratio to the best baseline (close)",
                "Each method's metric divided by the best baseline's on the same origins; below 1 is better. "
                "The interval resamples origins jointly for both (paired bootstrap). The verdicts come "
                "from a Diebold-Mariano test of equal loss per origin (Harvey-Leybourne-Newbold "
                "correction, Newey-West variance over overlapping horizons, all series pooled) at 5%: "
                "a ratio below 1 whose test does not reject is not a win.\n\n"
                + "\n".join(f"- {line}" for line in verdicts(result, summary)),
                ratio_view,
            )
        )
        sections.append(
            Section(
                "Significance per series (close)",
                "Each model against the baseline with the lowest mean loss on that series (pooled: over "
                "all origins, the summary's best baseline); loss is the mean over the horizon steps of "
                "an origin. dm_p is the two-sided Diebold-Mariano (HLN) p-value; the verdict reads it at 5%.",
                significance,
            )
        )
    sections += [
        Section("Error by horizon (close)", "Mean per horizon step.", horizon, image_names.get("horizon")),
        Section(
            "Calibration (close)",
            "Empirical coverage of the central 50/80/95% intervals of the sample paths, and the PIT "
            "histogram (density per bin; 1.0 everywhere for a calibrated forecast, U-shaped when "
            "too narrow, hump-shaped when too wide). Point-forecast baselines have no PIT."
            + (
                f" With {s['paths']} paths the 95% interval can be expected to cover at most "
                f"{(s['paths'] - 1) / (s['paths'] + 1):.1%}; use 39 or more paths to judge it."
                if s["paths"] < 39
                else ""
            ),
            coverage,
            image_names.get("calibration"),
        ),
        Section("PIT histogram (close)", "", pit),
        Section(
            "Reliability of P(up) (close)",
            "Forecasts grouped by their probability that the close ends above the last close (the "
            "`prob_close_above_last` users get), against how often it did; on the diagonal when "
            "calibrated. All horizon steps pooled.",
            reliability,
            image_names.get("reliability"),
        ),
        Section("Every column", "Mean errors per column (volume and amount on their own scale).", columns),
        Section("Volatility forecasts (close)", _volatility_text(result), volatility),
    ]
    if "examples" in image_names:
        sections.append(Section("Example forecasts", "", None, image_names["examples"]))
    sections.append(
        Section(
            "How the baselines forecast",
            "- persistence: every future bar equals the last bar (one degenerate path: CRPS = MAE, zero-width intervals).\n"
            "- drift: last value + h × (last − first) / (L − 1), the random walk with drift (one degenerate path).\n"
            "- gaussian_rw: driftless Gaussian random walk, in log space for positive columns, volatility "
            "estimated on the lookback only; sampled with the same number of paths as the model; point forecast = last value.\n"
            f"- ewma: the same walk with the close's RiskMetrics EWMA volatility (lambda {EWMA_LAMBDA} per bar at "
            f"every bar spacing, run over the last {PAST_BARS} bars before the origin); flat over the horizon.\n"
            "- garch11: paths simulated from a GARCH(1,1) with Student-t shocks fitted (arch package, maximum "
            f"likelihood) at each origin on the last {PAST_BARS} close log returns before it; Gaussian shocks where "
            "the t fit fails, the EWMA recursion where that fails too (volatility.csv records which).\n"
            "- The random walks' point forecast is the last value; the model's is the mean of its sample paths.",
        )
    )
    tables = {
        "summary": summary,
        "significance": significance,
        "by_horizon": horizon,
        "by_column": columns,
        "pit_histogram": pit,
        "reliability": reliability,
    }
    return sections, tables


def _volatility_text(result) -> str:
    """How the volatility task is scored, for the report."""
    measured = (
        "range-based: per bar the squared overnight log return ln(open / previous close)² plus "
        "Garman-Klass's 0.5 ln(high / low)² − (2 ln 2 − 1) ln(close / open)²"
        if result.settings.get("range_based_volatility")
        else "close to close: the squared log return of each bar (open, high and low are not all given)"
    )
    return (
        "Each method's forecast of the variance of the close's log return per bar over the horizon, "
        f"against the realised variance, measured {measured}, averaged over the horizon's bars. The models "
        "forecast the mean over their paths of the per-bar realised variance; historical is the lookback's "
        "sample variance, ewma and garch11 as in their walks (GARCH's expected variance over the horizon), "
        "har_rv (intraday bars only) a HAR regression of daily realised variance fitted on the complete days "
        "before the origin, spread evenly over a day's bars. QLIKE = s/h − ln(s/h) − 1 and MSE of the "
        "variance (both robust to a noisy realised proxy; QLIKE is scale-free and punishes too low a "
        "forecast more), MAE of the volatility (the paper's metric); Mincer-Zarnowitz: realised = a + b "
        "forecast, unbiased at a = 0, b = 1. qlike_dm_p tests each method's QLIKE against the best "
        "volatility baseline's (Diebold-Mariano, HLN)."
    )


def render_markdown(sections: list[Section]) -> str:
    parts = []
    for i, section in enumerate(sections):
        parts.append(("# " if i == 0 else "## ") + section.title)
        if section.text:
            parts.append(section.text)
        if section.table is not None:
            parts.append(markdown_table(section.table))
        if section.image:
            parts.append(f"![{section.title}]({section.image})")
    return "\n\n".join(parts) + "\n"


def render_html(sections: list[Section]) -> str:
    body = []
    for i, section in enumerate(sections):
        tag = "h1" if i == 0 else "h2"
        body.append(f"<{tag}>{html_lib.escape(section.title)}</{tag}>")
        for paragraph in section.text.split("\n\n") if section.text else []:
            body.append(f"<p>{html_lib.escape(paragraph).replace(chr(10), '<br>')}</p>")
        if section.table is not None:
            body.append(section.table.apply(lambda column: column.map(_fmt)).to_html(border=0))
        if section.image:
            body.append(
                f'<img src="{html_lib.escape(section.image)}" alt="{html_lib.escape(section.title)}">'
            )
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}td,th{padding:2px 8px;text-align:right}img{max-width:100%}"
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Kronos evaluation</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"


def _plots(
    result,
    folder: Path,
    horizon: pd.DataFrame,
    summary: pd.DataFrame,
    pit: pd.DataFrame,
    reliability: pd.DataFrame,
) -> dict[str, str]:
    """Write the PNG plots into folder/plots; returns report-relative names by kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (folder / "plots").mkdir()
    names = {}
    colors = {method: f"C{i % 10}" for i, method in enumerate(result.methods)}

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("mae", "crps")):
        for method in result.methods:
            values = horizon.loc[method, metric]
            ax.plot(values.index, values.to_numpy(), marker="o", label=method, color=colors[method])
        ax.set_xlabel("horizon step")
        ax.set_title(f"{metric.upper()} of close by horizon")
        ax.grid(alpha=0.3)
    axes[0].legend()
    names["horizon"] = _save(fig, folder, "error_by_horizon.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    centers = (np.arange(pit.shape[1]) + 0.5) / pit.shape[1]
    for method in result.methods:
        if np.isfinite(pit.loc[method].to_numpy()).all():
            axes[0].step(centers, pit.loc[method].to_numpy(), where="mid", label=method, color=colors[method])
    axes[0].axhline(1.0, color="black", linestyle=":", linewidth=1)
    axes[0].set_title("PIT histogram (close)")
    axes[0].set_xlabel("PIT")
    axes[0].set_ylabel("density")
    axes[0].legend()
    nominal = np.asarray(INTERVAL_LEVELS)
    for method in result.methods:
        axes[1].plot(
            nominal,
            [summary.loc[method, f"coverage_{round(x * 100)}"] for x in nominal],
            marker="o",
            label=method,
            color=colors[method],
        )
    axes[1].plot([0, 1], [0, 1], color="black", linestyle=":", linewidth=1)
    axes[1].set_xlim(0.4, 1.0)
    axes[1].set_ylim(0.0, 1.0)
    axes[1].set_xlabel("nominal coverage")
    axes[1].set_ylabel("empirical coverage")
    axes[1].set_title("Interval coverage (close)")
    axes[1].legend()
    names["calibration"] = _save(fig, folder, "calibration.png")

    if not reliability.empty:
        fig, ax = plt.subplots(figsize=(5, 5))
        for method in result.models:
            if method in reliability.index.get_level_values("method"):
                rows = reliability.loc[method]
                ax.plot(rows["prob_up"], rows["frequency_up"], marker="o", label=method, color=colors[method])
        ax.plot([0, 1], [0, 1], color="black", linestyle=":", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("forecast P(close ends above last close)")
        ax.set_ylabel("observed frequency")
        ax.set_title("Reliability of P(up) (close)")
        ax.legend()
        names["reliability"] = _save(fig, folder, "reliability.png")

    names["examples"] = _example_plot(result, folder, plt)
    return names


def _example_plot(result, folder: Path, plt) -> str:
    close = CLOSE
    n_origins, steps = result.actuals.shape[:2]
    picks = np.unique(np.linspace(0, n_origins - 1, min(4, n_origins)).round().astype(int))
    shown = result.models or [result.baselines[-1]]
    fig, axes = plt.subplots(1, len(picks), figsize=(4.5 * len(picks), 3.6), squeeze=False)
    for ax, i in zip(axes[0], picks):
        history = result.histories[i, -min(result.histories.shape[1], 3 * steps) :, close]
        past = np.arange(-len(history) + 1, 1)
        future = np.arange(1, steps + 1)
        ax.plot(past, history, color="black", linewidth=1)
        ax.plot(future, result.actuals[i, :, close], color="black", marker=".", label="actual")
        for method, color in zip(shown, ("tab:blue", "tab:orange")):
            point, paths = result.forecasts[method]
            if method == shown[0]:
                ax.plot(future, paths[i, :, :, close].T, color=color, alpha=0.15, linewidth=0.8)
            lower, upper = sample_quantiles(paths[i, :, :, close], [0.1, 0.9])
            ax.fill_between(future, lower, upper, color=color, alpha=0.2, label=f"{method} 80%")
            ax.plot(future, point[i, :, close], color=color, label=f"{method} mean")
        for name, style in (("persistence", "--"), ("drift", ":")):
            if name in result.forecasts and name not in shown:
                ax.plot(
                    future, result.forecasts[name][0][i, :, close], linestyle=style, color="gray", label=name
                )
        row = result.origins.iloc[i]
        ax.set_title(f"{row['series']} @ {row['origin_time']}", fontsize=9)
        ax.axvline(0.5, color="gray", linewidth=0.5)
    axes[0][0].legend(fontsize=7)
    return _save(fig, folder, "examples.png")


def _save(fig, folder: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(folder / "plots" / name, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f"plots/{name}"


def write_report(
    result, out_dir, html: bool = False, plots: bool = True, n_boot: int = 1000
) -> dict[str, Path]:
    """Write report.md (+ report.html), plots/, tables as CSV and the raw per-origin results.

    Raw results: records.csv (one row per method, origin, horizon step, column) and volatility.csv,
    plus records.parquet when pyarrow is installed (`pip install 'kronos-forecasting[parquet]'`). Returns file kind -> path.
    """

    def write(staging: Path) -> None:
        summary = result.summary("close", n_boot=n_boot)
        horizon, pit = result.by_horizon("close"), result.pit_histogram("close")
        reliability = result.reliability("close")
        images = _plots(result, staging, horizon, summary, pit, reliability) if plots else {}
        sections, tables = build_sections(result, summary, horizon, pit, reliability, n_boot, images)
        (staging / "report.md").write_text(render_markdown(sections), encoding="utf-8")
        if html:
            (staging / "report.html").write_text(render_html(sections), encoding="utf-8")
        for name, table in tables.items():
            table.to_csv(staging / f"{name}.csv")
        result.records.to_csv(staging / "records.csv", index=False)
        result.volatility.to_csv(staging / "volatility.csv", index=False)
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            pass
        else:
            result.records.to_parquet(staging / "records.parquet", index=False)

    return write_folder_atomically(out_dir, write, "report folder")
