"""Sanity check of the evaluation: does it tell a useful model from a useless one?

1. Periodic series (a deterministic 20-bar price cycle plus small noise): a small Kronos tokenizer
   and model trained here on it must beat persistence clearly (ratio CI below 1).
2. Pure random walk: the same recipe trained on a random walk, and every baseline, must not beat
   the historical-volatility Gaussian random walk by more than noise on CRPS (ratio CI reaching 1).

The training loop is deliberately minimal (it is a check of the evaluation, not the trainer):
tokenizer loss = mse(z_pre, x) + mse(z, x) + bsq_loss on normalised windows; model loss = the
head's cross-entropy of next (s1, s2) tokens from the frozen tokenizer. Windows are normalised
with the statistics of their first `lookback` bars, exactly as KronosPredictor does at inference.

    python benchmarks/sanity_check.py --threads 1 [--out DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from kronos import Kronos, KronosPredictor, KronosTokenizer
from kronos.engine.sampling import Sampling
from kronos.evaluation import Backtest, evaluate
from kronos.forecasting.series import prepare_ohlcv, time_features

LOOKBACK, STEPS, CLIP = 48, 12, 5.0
WINDOW = LOOKBACK + STEPS


def bars_from_close(
    close: np.ndarray, volume: np.ndarray, rng: np.random.Generator, start: str
) -> pd.DataFrame:
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.abs(rng.normal(0, 0.02, len(close))) * np.abs(close).mean() / 100
    return pd.DataFrame(
        {
            "timestamps": pd.date_range(start, periods=len(close), freq="5min"),
            "open": open_,
            "high": np.maximum(open_, close) + wick,
            "low": np.minimum(open_, close) - wick,
            "close": close,
            "volume": volume,
            "amount": volume * close,
        }
    )


def periodic_series(n: int, seed: int, start: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n) + rng.integers(0, 20)
    close = 100 + 4 * np.sin(2 * np.pi * t / 20) + rng.normal(0, 0.15, n)
    volume = 1000 + 300 * np.cos(2 * np.pi * t / 20) + rng.normal(0, 20, n)
    return bars_from_close(close, volume, rng, start)


def random_walk_series(n: int, seed: int, start: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(n)))
    volume = rng.uniform(800, 1200, n)
    return bars_from_close(close, volume, rng, start)


def training_windows(df: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """All windows of WINDOW bars, normalised with their lookback's mean and std: x [N, W, 6], stamps [N, W, 5]."""
    x = prepare_ohlcv(df)
    stamps = time_features(df["timestamps"])
    starts = np.arange(0, len(x) - WINDOW + 1)
    windows = np.stack([x[s : s + WINDOW] for s in starts])
    mean = windows[:, :LOOKBACK].mean(axis=1, keepdims=True)
    std = windows[:, :LOOKBACK].std(axis=1, keepdims=True)
    windows = np.clip((windows - mean) / (std + 1e-5), -CLIP, CLIP)
    return torch.from_numpy(windows.astype(np.float32)), torch.from_numpy(
        np.stack([stamps[s : s + WINDOW] for s in starts])
    )


def train(
    df: pd.DataFrame, seed: int, tokenizer_steps: int, model_steps: int
) -> tuple[Kronos, KronosTokenizer, dict]:
    torch.manual_seed(seed)
    x, stamps = training_windows(df)
    gen = torch.Generator().manual_seed(seed)
    tokenizer = KronosTokenizer(
        d_in=6, d_model=48, n_heads=4, ff_dim=96, n_enc_layers=2, n_dec_layers=2, ffn_dropout_p=0.0,
        attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=5, s2_bits=5, beta=0.05, gamma0=1.0, gamma=1.1,
        zeta=0.05, group_size=5,
    )  # fmt: skip
    model = Kronos(
        s1_bits=5, s2_bits=5, n_layers=3, d_model=64, n_heads=4, ff_dim=128, ffn_dropout_p=0.0,
        attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True,
    )  # fmt: skip
    log = {}
    optimizer = torch.optim.AdamW(tokenizer.parameters(), lr=2e-3, weight_decay=0.01)
    tokenizer.train()
    for step in range(tokenizer_steps):
        batch = x[torch.randint(len(x), (64,), generator=gen)]
        (z_pre, z), bsq_loss, _, _ = tokenizer(batch)
        loss = F.mse_loss(z_pre, batch) + F.mse_loss(z, batch) + bsq_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == tokenizer_steps - 1:
            log["tokenizer_loss"] = loss.item()
            log["tokenizer_recon_mse"] = F.mse_loss(z, batch).item()
    tokenizer.eval()
    with torch.no_grad():
        s1, s2 = zip(*(tokenizer.encode(chunk, half=True) for chunk in x.split(512)))
        s1, s2 = torch.cat(s1), torch.cat(s2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=2e-3, total_steps=model_steps, pct_start=0.1
    )
    model.train()
    for step in range(model_steps):
        pick = torch.randint(len(x), (32,), generator=gen)
        b1, b2, bs = s1[pick], s2[pick], stamps[pick]
        logits = model(b1[:, :-1], b2[:, :-1], bs[:, :-1], use_teacher_forcing=True, s1_targets=b1[:, 1:])
        loss = model.head.compute_loss(*logits, b1[:, 1:], b2[:, 1:])[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step == model_steps - 1:
            log["model_loss"] = loss.item()
    model.eval()
    return model, tokenizer, log


def check(name, train_df, test_df, args) -> pd.DataFrame:
    start = time.perf_counter()
    model, tokenizer, log = train(train_df, args.seed, args.tokenizer_steps, args.model_steps)
    trained = time.perf_counter()
    predictor = KronosPredictor(model, tokenizer, device="cpu", max_context=64)
    result = evaluate(
        test_df,
        predictor,
        Backtest(
            lookback=LOOKBACK,
            steps=STEPS,
            origins=args.origins,
            sampling=Sampling(sample_count=args.paths, seed=args.seed),
        ),
        progress=False,
    )
    evaluated = time.perf_counter()
    if args.out:
        result.write_report(f"{args.out}/{name}")
    summary = result.summary()
    losses = ", ".join(f"{k} {v:.4f}" for k, v in log.items())
    print(
        f"\n== {name}: trained in {trained - start:.0f} s ({losses}); evaluated in {evaluated - trained:.0f} s"
    )
    for metric in ("crps", "mae"):
        best = summary[f"{metric}_best_baseline"].iloc[0]
        print(f"{metric.upper()} (ratio to the best baseline, {best}, with 95% paired-bootstrap CI):")
        for method, row in summary.iterrows():
            print(
                f"  {method:12s} {row[metric]:.4f} [{row[f'{metric}_low']:.4f}, {row[f'{metric}_high']:.4f}]"
                f"  ratio {row[f'{metric}_ratio']:.3f} [{row[f'{metric}_ratio_low']:.3f}, {row[f'{metric}_ratio_high']:.3f}]"
            )
    print(
        "coverage 50/80/95:", summary[["coverage_50", "coverage_80", "coverage_95"]].round(3).to_dict("index")
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokenizer-steps", type=int, default=400)
    parser.add_argument("--model-steps", type=int, default=1200)
    parser.add_argument("--origins", type=int, default=150)
    parser.add_argument("--paths", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the two reports under this folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    failures = []

    periodic = check(
        "periodic", periodic_series(6000, 1, "2024-01-01"), periodic_series(2000, 2, "2024-03-01"), args
    )
    for metric in ("crps", "mae"):
        if not periodic.loc["kronos", f"{metric}_ratio_high"] < 1:
            failures.append(f"periodic: the trained model does not beat the best baseline on {metric}")
        if not periodic.loc["kronos", metric] < periodic.loc["persistence", metric]:
            failures.append(f"periodic: the trained model does not beat persistence on {metric}")

    walk = check(
        "random walk",
        random_walk_series(6000, 3, "2024-01-01"),
        random_walk_series(2000, 4, "2024-03-01"),
        args,
    )
    beaten = walk.index[walk["crps_ratio_high"] < 1].tolist()
    if beaten:
        failures.append(f"random walk: {beaten} beat the best baseline on CRPS beyond noise")
    walks = [
        "gaussian_rw",
        "ewma",
        "garch11",
    ]  # right for a random walk: they differ only in the volatility fit
    if walk.loc[walks, "crps_ratio"].min() != 1.0:
        failures.append(f"random walk: none of {walks} is the best baseline on CRPS")
    if not (walk.loc[walks, "crps_ratio_low"] <= 1.0).all():
        failures.append(f"random walk: {walks} are not within noise of each other on CRPS")

    print("\nSANITY CHECK", "FAILED:\n  " + "\n  ".join(failures) if failures else "PASSED")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
