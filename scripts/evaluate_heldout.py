"""Evaluate a model on the held-out series of benchmarks/data/heldout/ (whole series it never trained on).

    python scripts/evaluate_heldout.py --out reports/kronos-default/heldout   # the shipped kronos-default
    python scripts/evaluate_heldout.py --model runs/default-model/predictor/best \
        --tokenizer runs/default-model/tokenizer/best --out runs/heldout-candidate

Runs `kronos evaluate --calibrate` at the model's own history and context (from its kronos.json,
else --lookback / --max-context), 20 steps, 100 origins per series, 40 paths (20 paths cannot fill
a 95% band: their range holds at most 19/21), default sampling, then prints the close-price scores
per series, raw (`kronos`) and calibrated (`kronos-calibrated`, fitted at each origin on the
series' earlier bars only): the pooled table of `kronos evaluate` is in price units and so
dominated by the series with the highest prices; the per-series ratios and the report's CRPS %
are not. With --by-family, each bar-spacing family (daily, hourly, minute) is evaluated on its own
(OUT/daily/, ...), so that its pooled CRPS ratio, interval and Diebold-Mariano test are the
family's, and the per-family table is printed and written to OUT/per_family.csv. The family's CRPS
is pooled as a share of each origin's last price (`crps_pct`), so that every series weighs alike.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from kronos.commands.main import main as kronos_main
from kronos.evaluation.baselines import BASELINES
from kronos.evaluation.selection import FAMILIES, spacing_family
from kronos.forecasting.pretrained import DEFAULT_MODEL, resolve_checkpoint
from kronos.forecasting.tables import expand_folders, load_series
from kronos.nn.metadata import read_metadata

REPO = Path(__file__).resolve().parents[1]

MODELS = ("kronos", "kronos-calibrated")


def per_series(records: pd.DataFrame) -> pd.DataFrame:
    """Close-price scores per series and model (raw and calibrated): CRPS over the best baseline's,
    MAE over persistence's, interval coverage, direction accuracy and the Brier score of P(up)."""
    close = records[records["column"] == "close"]
    means = close.groupby(["series", "method"])[["crps", "abs_error"]].mean().unstack("method")
    best = means["crps"][list(BASELINES)].min(axis=1)
    tables = []
    for name in MODELS:
        model = close[close["method"] == name].groupby("series")
        table = pd.DataFrame(
            {
                "crps": means["crps"][name],
                "crps_best_baseline": best,
                "crps_ratio": means["crps"][name] / best,
                "mae_ratio": means["abs_error"][name] / means["abs_error"]["persistence"],
                "cover_50": model["cover_50"].mean(),
                "cover_80": model["cover_80"].mean(),
                "cover_95": model["cover_95"].mean(),
                "direction": model["direction_hit"].mean(),
                "brier": model["brier"].mean(),
            }
        )
        scale_free = ["crps_ratio", "mae_ratio", "cover_50", "cover_80", "cover_95", "direction", "brier"]
        table.loc["mean", scale_free] = table[scale_free].mean()
        tables.append(table.assign(method=name).set_index("method", append=True))
    return pd.concat(tables).sort_index(level=0, sort_remaining=False)


# a family's CRPS pooled as a share of each origin's last price: series of every price level weigh alike
# (in price units the pool is the highest-priced series: BTC's bars at $10,000 outweigh AAPL's at $200)
FAMILY_COLUMNS = ["crps_pct_ratio", "crps_pct_ratio_low", "crps_pct_ratio_high", "crps_pct_dm_p"]
FAMILY_COLUMNS += ["crps_pct_best_baseline"]
FAMILY_COLUMNS += ["coverage_80", "coverage_95", "brier"]


def files_by_family(data: str) -> dict[str, list[str]]:
    """The data's files grouped by bar-spacing family (daily, hourly, minute), in that order."""
    groups: dict[str, list[str]] = {}
    for path in expand_folders([data]):
        (series,) = load_series([path])
        groups.setdefault(spacing_family(series.timestamps), []).append(str(path))
    return {family: groups[family] for family in FAMILIES if family in groups}


def family_table(out: Path, families: list[str]) -> pd.DataFrame:
    """Raw and calibrated close-price scores per family, from each family's summary.csv: CRPS as a
    share of the last price over the family's best baseline's, with its 95% interval and
    Diebold-Mariano p, coverage and Brier."""
    rows = []
    for family in families:
        summary = pd.read_csv(out / family / "summary.csv").set_index("method")
        for name in MODELS:
            rows.append(summary.loc[name, FAMILY_COLUMNS].rename((family, name)))
    return pd.DataFrame(rows)


def evaluate(command: list[str], out: Path) -> None:
    status = kronos_main([*command, "--out", str(out)])
    if status:
        raise SystemExit(status)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--tokenizer")
    parser.add_argument("--data", default=str(REPO / "benchmarks" / "data" / "heldout"))
    parser.add_argument("--out", default="runs/heldout-evaluation")
    parser.add_argument("--lookback", type=int, help="default: the model's history")
    parser.add_argument("--max-context", type=int, help="default: the model's max_context")
    parser.add_argument("--origins", type=int, default=100)
    parser.add_argument("--paths", type=int, default=40, help="40, so that a 95%% band can hold 95%%")
    parser.add_argument("--temperature", type=float, help="default: the model's (kronos evaluate's -T)")
    parser.add_argument("--top-p", type=float, help="default: the model's (kronos evaluate's --top-p)")
    parser.add_argument(
        "--by-family",
        action="store_true",
        help="evaluate each bar-spacing family (daily, hourly, minute) on its own: OUT/FAMILY/, per_family.csv",
    )
    args = parser.parse_args(argv)
    metadata = read_metadata(args.model, resolve_checkpoint(args.model, "model"))
    max_context = args.max_context or (metadata.max_context if metadata else 512)
    lookback = args.lookback or (metadata.lookback if metadata else max_context)
    command = ["--model", args.model, "--lookback", str(lookback), "--steps", "20"]
    command += ["--max-context", str(max_context), "--origins", str(args.origins), "--paths", str(args.paths)]
    command += ["--calibrate", "--quiet"]
    if args.tokenizer:
        command += ["--tokenizer", args.tokenizer]
    if args.temperature is not None:
        command += ["--temperature", str(args.temperature)]
    if args.top_p is not None:
        command += ["--top-p", str(args.top_p)]
    out = Path(args.out)
    if args.by_family:
        groups = files_by_family(args.data)
        for family, files in groups.items():
            evaluate(["evaluate", *files, *command], out / family)
        table = family_table(out, list(groups))
        table.to_csv(out / "per_family.csv", index_label=["family", "method"])
        print(f"lookback {lookback}, max_context {max_context}; close price per bar-spacing family:")
        print(table.to_string(float_format="{:.4g}".format))
        return
    evaluate(["evaluate", args.data, *command], out)
    table = per_series(pd.read_csv(out / "records.csv"))
    table.to_csv(out / "per_series.csv")
    print(f"lookback {lookback}, max_context {max_context}; close price per series:")
    print(table.to_string(float_format="{:.4g}".format))


if __name__ == "__main__":
    main()
