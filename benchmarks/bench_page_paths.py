"""How many sampled paths the page's bands need: band roughness and error against latency.

The page draws the close's 50/80/95% bands of a 20-step forecast. With few paths their edges
zigzag from step to step (sampling noise), with many the answer takes longer. For each bundled
example (the last `lookback` bars of sp500_daily and eurusd_hourly, as the page sends them) and
each number of paths, over `--seeds` seeds, with the shipped model on one CPU thread (as `kronos
serve` runs it):

- roughness: the mean |second difference| of the six band edges over the steps, divided by the
  mean width of the 95% band (0 for straight edges; the 2000-path reference shows how curved the
  edges themselves are);
- error: the mean |edge - reference edge|, divided by the same width;
- seconds: the median time of one `predict_quantiles` call.

    python benchmarks/bench_page_paths.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kronos import KronosPredictor
from kronos.engine.sampling import Sampling

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("sp500_daily", "eurusd_hourly")
LEVELS = (0.025, 0.1, 0.25, 0.75, 0.9, 0.975)
FIELDS = ["open", "high", "low", "close", "volume"]


def edges(
    predictor: KronosPredictor, frame: pd.DataFrame, steps: int, paths: int, seed: int
) -> tuple[np.ndarray, float]:
    """The close's band edges [levels, steps], and the seconds the call took."""
    history = frame.iloc[-predictor.lookback :]
    started = time.perf_counter()
    table = predictor.predict_quantiles(
        history[FIELDS], history["timestamps"], None, steps, quantile_levels=LEVELS,
        sampling=Sampling(sample_count=paths, seed=seed),
    )  # fmt: skip
    seconds = time.perf_counter() - started
    return np.stack([table[f"close_q{level:g}"].to_numpy() for level in LEVELS]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default="10,20,30,50,100,200")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--reference", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    predictor = KronosPredictor.from_pretrained("kronos-default", device="cpu")
    print("example        paths  roughness  error   seconds")
    for name in EXAMPLES:
        frame = pd.read_csv(ROOT / "examples" / f"{name}.csv", parse_dates=["timestamps"])
        reference, _ = edges(predictor, frame, args.steps, args.reference, 12345)
        width = float(np.mean(reference[-1] - reference[0]))
        curve = float(np.mean(np.abs(np.diff(reference, 2, axis=1)))) / width
        print(f"{name:14} {args.reference:5}  {curve:9.4f}  (reference)")
        for paths in (int(p) for p in args.paths.split(",")):
            rough, error, seconds = [], [], []
            for seed in range(args.seeds):
                band, took = edges(predictor, frame, args.steps, paths, seed)
                rough.append(float(np.mean(np.abs(np.diff(band, 2, axis=1)))) / width)
                error.append(float(np.mean(np.abs(band - reference))) / width)
                seconds.append(took)
            print(
                f"{name:14} {paths:5}  {np.mean(rough):9.4f}  {np.mean(error):6.4f}  {statistics.median(seconds):7.3f}"
            )


if __name__ == "__main__":
    main()
