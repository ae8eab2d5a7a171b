"""Benchmark KronosPredictor.predict_df on a universe of synthetic series.

Default workload: 1,000 random-walk OHLCV series of 300 business-day bars, 20 steps ahead,
20 sampled paths each. Two models: the tiny upstream compatibility checkpoint (`--model tiny`)
and randomly initialised networks with Kronos-small and Tokenizer-base shapes (`--model small`;
the timing depends on shapes, not on the weights' values).

Reported: wall time of the predict_df call, sampled paths per second (series x paths / time),
and memory as resident set size from `resource.getrusage(RUSAGE_SELF).ru_maxrss`: the
process's peak RSS after setup (model, data) and after the call, so their difference bounds
what predict_df added at its peak.

    python benchmarks/bench_predict_df.py --model tiny
    python benchmarks/bench_predict_df.py --model small --series 100 --threads 2
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kronos import Kronos, KronosPredictor, KronosTokenizer, Sampling
from kronos.nn.config import KRONOS_SMALL, KRONOS_TOKENIZER_BASE

TINY_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "compat" / "tiny"


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def random_walk_universe(n_series: int, n_bars: int, seed: int = 0) -> pd.DataFrame:
    """Long table of business-day OHLCV bars: a geometric random walk per series, ~1.5% daily moves."""
    rng = np.random.default_rng(seed)
    stamps = pd.bdate_range("2023-01-02", periods=n_bars)
    start = rng.uniform(5, 500, size=(n_series, 1))
    close = start * np.exp(np.cumsum(rng.normal(0, 0.015, size=(n_series, n_bars)), axis=1))
    open_ = np.concatenate([start, close[:, :-1]], axis=1) * np.exp(rng.normal(0, 0.003, (n_series, n_bars)))
    wick = np.abs(rng.normal(0, 0.006, size=(2, n_series, n_bars)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    volume = rng.lognormal(10, 0.5, size=(n_series, n_bars)).round()
    return pd.DataFrame(
        {
            "id": np.repeat([f"S{i:05d}" for i in range(n_series)], n_bars),
            "timestamps": np.tile(stamps, n_series),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": volume.ravel(),
            "amount": (volume * (open_ + high + low + close) / 4).ravel(),
        }
    )


def build_predictor(name: str, max_context: int) -> KronosPredictor:
    if name == "tiny":
        if not TINY_DIR.is_dir():
            raise SystemExit(f"tiny checkpoints not found at {TINY_DIR}")
        model = Kronos.from_pretrained(TINY_DIR / "model")
        tokenizer = KronosTokenizer.from_pretrained(TINY_DIR / "tokenizer")
    else:
        torch.manual_seed(0)
        model = Kronos.from_config(KRONOS_SMALL)
        tokenizer = KronosTokenizer.from_config(KRONOS_TOKENIZER_BASE)
    return KronosPredictor(model, tokenizer, device="cpu", max_context=max_context)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "small"], default="tiny")
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--bars", type=int, default=300, help="history length of every series")
    parser.add_argument("--pred-len", type=int, default=20)
    parser.add_argument("--samples", type=int, default=20, help="sampled paths per series")
    parser.add_argument("--batch-size", type=int, default=32, help="series per generation batch")
    parser.add_argument("--max-context", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--verbose", action="store_true", help="show a progress bar")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    predictor = build_predictor(args.model, args.max_context)
    universe = random_walk_universe(args.series, args.bars)
    setup_rss = peak_rss_mib()
    torch.manual_seed(0)
    start = time.perf_counter()
    table = predictor.predict_df(
        universe,
        prediction_length=args.pred_len,
        sampling=Sampling(sample_count=args.samples),
        batch_size=args.batch_size,
        verbose=args.verbose,
    )
    elapsed = time.perf_counter() - start
    peak_rss = peak_rss_mib()
    paths = args.series * args.samples
    print(
        f"model={args.model} series={args.series} bars={args.bars} pred_len={args.pred_len} "
        f"samples={args.samples} batch_size={args.batch_size} threads={args.threads}"
    )
    print(f"time: {elapsed:.1f} s")
    print(f"paths/s: {paths / elapsed:.1f} ({args.series / elapsed:.2f} series/s)")
    print(f"peak RSS (ru_maxrss): after setup {setup_rss:.0f} MiB, after predict_df {peak_rss:.0f} MiB")
    print(f"output: {len(table)} rows x {table.shape[1]} columns")
    print(f"raw OHLC violation rate: {table.attrs['ohlc_violation_rate']:.3f}")


if __name__ == "__main__":
    main()
