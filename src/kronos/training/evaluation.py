"""Held-out evaluation of a tokenizer and predictor: token cross-entropy, reconstruction error,
and forecast error against a last-close (persistence) baseline on the final segment of each series."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kronos.engine.sampling import Sampling
from kronos.forecasting.paths import sample_quantiles
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.series import CLOSE, Series
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer
from kronos.training.config import Config
from kronos.training.dataset import WindowSet, load_windows, split_point, validation_rows
from kronos.training.stages import causal_eval


@torch.no_grad()
def window_losses(tokenizer: KronosTokenizer, model: Kronos | None, windows: WindowSet, rows, batch_size=64):
    """Mean reconstruction MSE (full code, s1 only) and, with a model, next-token cross-entropies."""
    tokenizer.eval()
    if model is not None:
        causal_eval(model)
    sums: dict[str, float] = {}
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        x, stamp = (torch.from_numpy(a) for a in windows.batch(chunk))
        (z_pre, z), _, _, _ = tokenizer(x)
        parts = {"recon_mse_full": F.mse_loss(z, x), "recon_mse_s1": F.mse_loss(z_pre, x)}
        if model is not None:
            s1, s2 = tokenizer.encode(x, half=True)
            s1_logits, s2_logits = model(
                s1[:, :-1], s2[:, :-1], stamp[:, :-1], use_teacher_forcing=True, s1_targets=s1[:, 1:]
            )
            ce, ce_s1, ce_s2 = model.head.compute_loss(s1_logits, s2_logits, s1[:, 1:], s2[:, 1:])
            parts.update({"token_ce": ce, "token_ce_s1": ce_s1, "token_ce_s2": ce_s2})
        for key, value in parts.items():
            sums[key] = sums.get(key, 0.0) + value.item() * len(chunk)
    return {key: value / len(rows) for key, value in sums.items()}


def forecast_errors(
    predictor: KronosPredictor,
    series: Series,
    split: int,
    history: int,
    horizon: int,
    origins: int,
    sample_count: int,
) -> dict[str, Any]:
    """Close-price MAE of the mean forecast vs persistence, over forecasts starting in [split, end).

    Each forecast sees only the `history` bars before its origin; its paths are drawn (by
    `KronosPredictor.sample`, default sampling) from torch's global generator.
    """
    first, last = max(split, history), len(series) - horizon
    if last < first:
        raise ValueError(
            f"series {series.name!r} has no room for a {horizon}-step forecast after bar {split}"
        )
    starts = np.unique(np.linspace(first, last, origins).round().astype(int))
    forecast = predictor.sample(
        [series.window(t - history, t) for t in starts],
        horizon,
        Sampling(sample_count=sample_count),
        future=[series.timestamps[t : t + horizon] for t in starts],
    )
    close_paths = forecast.paths[..., CLOSE]  # [origins, paths, horizon]
    actual = np.stack([series.bars[t : t + horizon, CLOSE] for t in starts])
    last_close = np.array([series.bars[t - 1, CLOSE] for t in starts])[:, None]
    mean_forecast = close_paths.mean(axis=1)
    low, high = sample_quantiles(close_paths, [0.1, 0.9], axis=1)
    model_mae = float(np.abs(mean_forecast - actual).mean())
    persistence_mae = float(np.abs(last_close - actual).mean())
    return {
        "series": series.name,
        "forecasts": len(starts),
        "mae_close_model": model_mae,
        "mae_close_persistence": persistence_mae,
        "mae_ratio": model_mae / persistence_mae,
        "band80_coverage": float(((actual >= low) & (actual <= high)).mean()),
    }


def evaluate_checkpoints(
    config: Config,
    tokenizer_dir: str | Path,
    model_dir: str | Path,
    horizon: int = 20,
    origins: int = 24,
    sample_count: int = 16,
    seed: int = 0,
) -> dict[str, Any]:
    """Validation numbers of a tokenizer + predictor on the config's data (its held-out segments)."""
    series, _, val_set = load_windows(config)
    if val_set is None:
        raise ValueError("evaluation needs held-out data: data.val_fraction must be above 0")
    tokenizer = KronosTokenizer.from_pretrained(str(tokenizer_dir))
    model = Kronos.from_pretrained(str(model_dir))
    rows = validation_rows(len(val_set), config.train)
    report: dict[str, Any] = {
        "validation_windows": len(rows),
        **window_losses(tokenizer, model, val_set, rows),
    }
    predictor = KronosPredictor(model, tokenizer, device="cpu", max_context=config.data.window)
    torch.manual_seed(seed)
    history = config.data.window - horizon
    per_series = [
        forecast_errors(
            predictor,
            s,
            split_point(len(s), config.data.val_fraction),
            history,
            horizon,
            origins,
            sample_count,
        )
        for s in series
    ]
    report["forecast"] = per_series
    report["summary"] = {
        "token_ce": report["token_ce"],
        "token_ce_s1": report["token_ce_s1"],
        "token_ce_s2": report["token_ce_s2"],
        "recon_mse_full": report["recon_mse_full"],
        "recon_mse_s1": report["recon_mse_s1"],
        "mean_mae_ratio": float(np.mean([r["mae_ratio"] for r in per_series])),
        "series_beating_persistence": sum(r["mae_ratio"] < 1 for r in per_series),
        "series": len(per_series),
        "mean_band80_coverage": float(np.mean([r["band80_coverage"] for r in per_series])),
        "horizon": horizon,
        "history": history,
        "paths": sample_count,
    }
    return report
