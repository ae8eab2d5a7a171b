"""Rank 19 S&P 500 stocks every week of the second half of 2022 with the shipped model and the baselines.

Run from the repository root:  python examples/cross_section_sp500.py [OUT_DIR]
The universe is examples/universe_sp500_daily.csv (daily bars built from closes: see
docs/evaluation.md); AAPL is left out because the shipped model trained on its bars of this period.
The same from the command line, on all 20 stocks:

    kronos evaluate examples/universe_sp500_daily.csv --id-column symbol --cross-section \\
        --horizon 5 --rebalance 5 --start 2022-07-01 --out cross-section
"""

import sys
from pathlib import Path

from kronos import KronosPredictor, Sampling
from kronos.evaluation.cross_section import CrossSection, evaluate_cross_section
from kronos.forecasting.tables import TableLayout, load_series

UNIVERSE = Path(__file__).resolve().parent / "universe_sp500_daily.csv"


def main() -> None:
    series = [one for one in load_series([UNIVERSE], TableLayout("symbol")) if one.key != "AAPL"]
    predictor = KronosPredictor.from_pretrained("kronos-default")
    settings = CrossSection(
        horizon=5,
        rebalance=5,
        top_k=3,
        cost_bps=10,
        start="2022-07-01",
        sampling=Sampling(sample_count=20, seed=0),
    )
    result = evaluate_cross_section(series, predictor, settings, progress=False)
    columns = [
        "rank_ic_mean",
        "rank_ic_t",
        "ic_mean",
        "turnover",
        "long_short_return_net",
        "long_short_sharpe_net",
    ]
    print(result.summary[columns].round(4).to_string())
    if len(sys.argv) > 1:
        print("report:", result.write_report(sys.argv[1])["report.md"])


if __name__ == "__main__":
    main()
