"""The cross-section report: cross_section.csv, the per-date tables, three plots and report.md with
a verdict that comes from t-statistics, not from point estimates.

Files are written to a staging folder beside the output folder and renamed into place, report.md
last, so a failure leaves no half-written report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kronos.evaluation.portfolios import newey_west_t
from kronos.evaluation.report import markdown_table
from kronos.io import write_folder_atomically

MODEL = "kronos"
RANDOM = "random"
SIGNIFICANT_T = 1.96  # |t| beyond this: distinguishable from zero at about 5%, two-sided
HEADLINE = [
    "rank_ic_mean",
    "rank_ic_t",
    "ic_mean",
    "icir",
    "hit_rate",
    "quantile_spread",
    "turnover",
    "long_short_return_gross",
    "long_short_return_net",
    "long_short_sharpe_net",
    "long_short_max_drawdown_net",
    "top_k_return_net",
    "top_k_sharpe_net",
]


def write_cross_section_report(result: Any, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write cross_section.csv (one row per method), cross_section_dates.csv (per date and
    method), cross_section_signals.csv (per date and series), plots/ and report.md into
    `out_dir`; returns file name -> path."""

    def write(staging: Path) -> None:
        result.summary.to_csv(staging / "cross_section.csv")
        result.scores.to_csv(staging / "cross_section_dates.csv", index=False)
        result.signals.to_csv(staging / "cross_section_signals.csv", index=False)
        images = _plots(result, staging) if plots else {}
        (staging / "report.md").write_text(render_report(result, images), encoding="utf-8")

    return write_folder_atomically(out_dir, write, "report folder")


def best_baseline(summary: pd.DataFrame) -> str | None:
    """The baseline (not the model's signals, not `random`) with the highest mean RankIC."""
    baselines = [m for m in summary.index if not m.startswith(MODEL) and m != RANDOM]
    ranked = summary.loc[baselines, "rank_ic_mean"].dropna()
    return None if ranked.empty else str(ranked.idxmax())


def rank_ic_difference_t(scores: pd.DataFrame, method: str, other: str, lag: int) -> tuple[float, float]:
    """Mean and Newey-West t of the per-date RankIC of `method` minus that of `other` (dates both scored)."""
    by_date = scores.pivot_table(index="date", columns="method", values="rank_ic")
    difference = (by_date[method] - by_date[other]).dropna().to_numpy()
    return (float(difference.mean()) if len(difference) else float("nan")), newey_west_t(difference, lag)


def _word(t: float, positive: str, negative: str) -> str:
    if not np.isfinite(t):
        return "not measurable"
    if t >= SIGNIFICANT_T:
        return positive
    if t <= -SIGNIFICANT_T:
        return negative
    return "not distinguishable"


def verdict(result: Any) -> str:
    """The report's verdict, in sentences: the model's RankIC against zero and against the best
    baseline (a paired Newey-West t on the per-date difference), and its long-short book after costs."""
    summary, settings = result.summary, result.settings
    lag = settings["newey_west_lag"]
    lines = []
    best = best_baseline(summary)
    if MODEL in summary.index:
        row = summary.loc[MODEL]
        lines.append(
            f"- `kronos` (expected return) RankIC {row['rank_ic_mean']:+.4f}, t = {row['rank_ic_t']:.2f}: "
            f"{_word(row['rank_ic_t'], 'positive beyond noise', 'negative beyond noise')} "
            f"(|t| ≥ {SIGNIFICANT_T}, Newey-West lag {lag})."
        )
        if best is not None:
            mean, t = rank_ic_difference_t(result.scores, MODEL, best, lag)
            lines.append(
                f"- Against the best baseline, `{best}` (RankIC {summary.loc[best, 'rank_ic_mean']:+.4f}): "
                f"difference {mean:+.4f} per date, t = {t:.2f}: **{_word(t, 'better', 'worse')}**."
            )
        lines.append(
            f"- Long-short top/bottom {settings['top_k']} after {settings['cost_bps']:g} bps per side: "
            f"{row['long_short_return_net']:+.1%} a year, Sharpe {row['long_short_sharpe_net']:.2f} "
            f"(gross {row['long_short_return_gross']:+.1%}); turnover {row['turnover']:.0%} of the book per rebalance."
        )
    elif best is not None:
        lines.append(
            f"- Baselines only. Best by RankIC: `{best}` ({summary.loc[best, 'rank_ic_mean']:+.4f}, "
            f"t = {summary.loc[best, 'rank_ic_t']:.2f})."
        )
    if RANDOM in summary.index:
        lines.append(
            f"- Sanity check: the random signal's RankIC is {summary.loc[RANDOM, 'rank_ic_mean']:+.4f} "
            f"(t = {summary.loc[RANDOM, 'rank_ic_t']:.2f}); it should not be distinguishable from zero."
        )
    return "\n".join(lines)


def render_report(result: Any, images: dict[str, str]) -> str:
    """report.md: settings, verdict, the headline table, the quantile table and the plots."""
    s = result.settings
    summary = result.summary
    quantiles = [f"quantile_{q + 1}" for q in range(s["quantiles"])] + ["quantile_spread"]
    parts = [
        "# Cross-sectional evaluation",
        f"{s['n_series']} series, {s['n_dates']} rebalance dates from {s['first_date']} to {s['last_date']}, "
        f"every {s['rebalance']} bars; forward return over {s['horizon']} bars; lookback {s['lookback']} bars; "
        f"top/bottom {s['top_k']}; costs {s['cost_bps']:g} bps per side; "
        + (f"{s['paths']} paths per forecast, seed {s['seed']}." if s["model"] else "baselines only.")
        + " IC: Pearson, RankIC: Spearman, per date; t: Newey-West (lag "
        f"{s['newey_west_lag']}); returns, volatility and Sharpe annualised at {s['rebalances_per_year']:.1f} "
        "rebalances a year. docs/evaluation.md explains every column.",
        "## Verdict",
        verdict(result),
        *[f"> {note}" for note in s["notes"]],
        "## Scores",
        markdown_table(summary[[c for c in HEADLINE if c in summary]]),
        "## Quantile portfolios (mean forward return per date; 1 = lowest signal)",
        markdown_table(summary[quantiles]),
    ]
    for title, key in (
        ("Cumulative RankIC", "cumulative_ic"),
        ("Quantile spreads", "quantiles"),
        ("Equity curves net of costs", "equity"),
    ):
        if key in images:
            parts += [f"## {title}", f"![{title}]({images[key]})"]
    return "\n\n".join(parts) + "\n"


def _plots(result: Any, folder: Path) -> dict[str, str]:
    """cumulative_ic.png, quantiles.png and equity.png in folder/plots; report-relative names by kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    (folder / "plots").mkdir()
    methods = result.methods
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    styles = {m: "-" if m.startswith(MODEL) else "--" for m in methods}
    scores = result.scores
    names = {}

    fig, ax = plt.subplots(figsize=(10, 4.5))
    for m in methods:
        one = scores[scores["method"] == m]
        ax.plot(one["date"], one["rank_ic"].fillna(0).cumsum(), styles[m], color=colors[m], label=m)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title("Cumulative RankIC per rebalance date (a straight rise is a steady edge)")
    ax.set_ylabel("sum of RankIC")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    names["cumulative_ic"] = _save(fig, folder, "cumulative_ic.png", plt)

    count = result.settings["quantiles"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        values = [result.summary.loc[m, f"quantile_{q + 1}"] * 1e4 for q in range(count)]
        ax.bar(np.arange(count) + i * width - 0.4 + width / 2, values, width, color=colors[m], label=m)
    ax.set_xticks(np.arange(count), [f"Q{q + 1}" for q in range(count)])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title("Mean forward return by signal quantile (Q1 lowest signal), basis points")
    ax.set_ylabel("bps per forward horizon")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3, axis="y")
    names["quantiles"] = _save(fig, folder, "quantiles.png", plt)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    for ax, book, title in zip(axes, ("long_short", "top_k"), ("long-short", "top-k long")):
        for m in methods:
            one = scores[scores["method"] == m]
            ax.plot(
                one["date"],
                np.cumprod(1 + one[f"{book}_net"].to_numpy()),
                styles[m],
                color=colors[m],
                label=m,
            )
        ax.axhline(1, color="black", linewidth=0.8)
        if all((np.cumprod(1 + scores.loc[scores["method"] == m, f"{book}_net"]) > 0).all() for m in methods):
            ax.set_yscale("log")  # equal moves look equal, however far the curve has come
            low, high = ax.get_ylim()
            ax.yaxis.set_major_locator(
                LogLocator(subs=(1.0, 2.0, 5.0) if high / low > 8 else tuple(range(1, 10)))
            )
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{title} equity (log scale), net of {result.settings['cost_bps']:g} bps per side")
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30)
    axes[0].legend(fontsize=8, ncol=2)
    names["equity"] = _save(fig, folder, "equity.png", plt)
    return names


def _save(fig: Any, folder: Path, name: str, plt: Any) -> str:
    fig.tight_layout()
    fig.savefig(folder / "plots" / name, dpi=100)
    plt.close(fig)
    return f"plots/{name}"
