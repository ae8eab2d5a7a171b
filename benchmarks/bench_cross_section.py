"""Time a cross-sectional evaluation with the shipped model: 50 series x 1,000 daily bars, weekly.

5-bar forward returns rebalanced every 5 bars, the model's own lookback (108 bars), 20 paths,
seed 0, on CPU; then the report (CSVs, plots, report.md). The universe is synthetic: random walks
(1% a day) on a business-day calendar, so the timing, not the scores, is what this measures.

    python benchmarks/bench_cross_section.py --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd
import torch

from kronos import KronosPredictor, Sampling
from kronos.evaluation.cross_section import CrossSection, evaluate_cross_section


def synthetic_universe(n_series: int, n_bars: int, seed: int = 0) -> pd.DataFrame:
    """A long table of business-day random walks with volume, one `symbol` per series."""
    rng = np.random.default_rng(seed)
    close = rng.uniform(20, 200, (n_series, 1)) * np.exp(
        np.cumsum(rng.normal(0, 0.01, (n_series, n_bars)), axis=1)
    )
    open_ = np.hstack([close[:, :1], close[:, :-1]])
    return pd.DataFrame(
        {
            "symbol": np.repeat([f"S{i:02d}" for i in range(n_series)], n_bars),
            "timestamps": np.tile(pd.bdate_range("2019-01-01", periods=n_bars), n_series),
            "open": open_.ravel(),
            "high": np.maximum(open_, close).ravel() * 1.002,
            "low": np.minimum(open_, close).ravel() * 0.998,
            "close": close.ravel(),
            "volume": rng.lognormal(12, 0.3, close.shape).round().ravel(),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50)
    parser.add_argument("--bars", type=int, default=1000)
    parser.add_argument("--rebalance", type=int, default=5)
    parser.add_argument("--paths", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    universe = synthetic_universe(args.series, args.bars)
    predictor = KronosPredictor.from_pretrained("kronos-default", num_threads=args.threads)
    settings = CrossSection(
        horizon=5, rebalance=args.rebalance, sampling=Sampling(sample_count=args.paths, seed=0)
    )
    start = time.perf_counter()
    result = evaluate_cross_section(universe, predictor, settings, progress=False)
    evaluated = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as out:
        result.write_report(out)
    total = time.perf_counter() - start
    s = result.settings
    print(
        f"{s['n_series']} series x {args.bars} bars, {s['n_dates']} rebalance dates, {len(result.signals)} forecasts "
        f"of {args.paths} paths, {args.threads} thread(s): evaluate {evaluated:.1f} s, with the report {total:.1f} s"
    )


if __name__ == "__main__":
    main()
