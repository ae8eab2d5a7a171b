"""Time `evaluate` + `write_report`: by default 200 origins x 20 steps x 20 paths on CPU.

Models: `tiny` is the upstream-made fixture checkpoint (tests/fixtures/compat/tiny); `mini` is a
randomly initialised model with Kronos-mini's shape (d_model 256, 4 layers, 10+10 bits) and
tokenizer-base's shape, so the timing (not the accuracy) is that of the published small model.

    python benchmarks/bench_evaluate.py --model tiny --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kronos import Kronos, KronosPredictor, KronosTokenizer
from kronos.engine.sampling import Sampling
from kronos.evaluation import Backtest, evaluate
from kronos.nn.config import KRONOS_MINI, KRONOS_TOKENIZER_BASE

TINY = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "compat" / "tiny"


def synthetic_bars(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(0.002 * rng.standard_normal(n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    volume = rng.uniform(1e3, 2e3, n)
    return pd.DataFrame(
        {
            "timestamps": pd.date_range("2024-01-01", periods=n, freq="5min"),
            "open": open_,
            "high": np.maximum(open_, close) * 1.0005,
            "low": np.minimum(open_, close) * 0.9995,
            "close": close,
            "volume": volume,
            "amount": volume * close,
        }
    )


def load_models(name: str):
    if name == "tiny":
        return Kronos.from_pretrained(TINY / "model"), KronosTokenizer.from_pretrained(TINY / "tokenizer")
    torch.manual_seed(0)
    tokenizer = KronosTokenizer.from_config(KRONOS_TOKENIZER_BASE)
    model = Kronos.from_config(KRONOS_MINI)
    return model, tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "mini"), default="tiny")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--origins", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--paths", type=int, default=20)
    parser.add_argument("--lookback", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_models(args.model)
    n_params = sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in tokenizer.parameters())
    predictor = KronosPredictor(model, tokenizer, device="cpu", max_context=512)
    bars = synthetic_bars(args.lookback + args.steps + 4 * args.origins)

    start = time.perf_counter()
    result = evaluate(
        bars,
        predictor,
        Backtest(
            lookback=args.lookback,
            steps=args.steps,
            origins=args.origins,
            batch_size=args.batch_size,
            sampling=Sampling(sample_count=args.paths, seed=0),
        ),
        progress=False,
    )
    evaluated = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        result.write_report(folder, html=True)
    reported = time.perf_counter()
    print(
        f"model {args.model} ({n_params / 1e6:.2f}M parameters), {args.threads} thread(s): "
        f"{len(result.origins)} origins x {args.steps} steps x {args.paths} paths, lookback {args.lookback}, "
        f"batch {args.batch_size}\n"
        f"  evaluate (forecasts + baselines + scores): {evaluated - start:.1f} s\n"
        f"  write_report (bootstrap, plots, files):    {reported - evaluated:.1f} s\n"
        f"  total:                                     {reported - start:.1f} s"
    )


if __name__ == "__main__":
    main()
