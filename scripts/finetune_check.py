"""Check that fine-tuning the shipped model on a series it has not seen lowers its validation loss there.

    python scripts/finetune_check.py --config configs/finetune_googl.toml

Writes the series (GOOGL daily from gym-anytrading; needs the `data` extra), measures the shipped
model on the series' held-out final segment, fine-tunes the predictor on the earlier part, and
measures again: token cross-entropy and the 20-step close forecast error against persistence.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from kronos import Kronos, KronosPredictor, KronosTokenizer
from kronos.forecasting.pretrained import resolve_checkpoint
from kronos.training import load_config, load_windows, train
from kronos.training.dataset import split_point, validation_rows
from kronos.training.evaluation import forecast_errors, window_losses

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_default_data import main as build_data  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def measure(config, model: Kronos, tokenizer: KronosTokenizer, horizon: int = 20) -> dict:
    series, _, val_set = load_windows(config)
    rows = validation_rows(len(val_set), config.train)
    result = window_losses(tokenizer, model, val_set, rows)
    predictor = KronosPredictor(model, tokenizer, device="cpu", max_context=config.data.window)
    torch.manual_seed(0)
    s = series[0]
    split = split_point(len(s), config.data.val_fraction)
    result.update(forecast_errors(predictor, s, split, config.data.window - horizon, horizon, 24, 16))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "finetune_googl.toml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.overrides)
    torch.set_num_threads(config.train.num_threads or 2)
    data_file = Path(config.resolve_path(config.data.paths[0]))
    build_data(["--finetune-out", str(data_file.parent)])
    tokenizer = KronosTokenizer.from_pretrained(resolve_checkpoint(config.model.tokenizer, "tokenizer"))
    before = measure(
        config, Kronos.from_pretrained(resolve_checkpoint(config.model.pretrained, "model")), tokenizer
    )
    result = train(config, "predictor")
    after = measure(config, Kronos.from_pretrained(str(result.best_dir)), tokenizer)
    keys = ("token_ce", "token_ce_s1", "token_ce_s2", "mae_close_model", "mae_close_persistence", "mae_ratio")
    report = {
        "series": before["series"],
        "epochs": result.epochs_done,
        "steps": result.step,
        "before": before,
        "after": after,
    }
    (Path(result.out_dir) / "finetune_check.json").write_text(json.dumps(report, indent=2))
    print(f"{'':24s}{'shipped':>12s}{'fine-tuned':>12s}")
    for key in keys:
        print(f"{key:24s}{before[key]:12.4f}{after[key]:12.4f}")
    verdict = "lower" if after["token_ce"] < before["token_ce"] else "NOT lower"
    print(
        f"validation token cross-entropy after fine-tuning is {verdict} ({before['token_ce']:.4f} -> {after['token_ce']:.4f})"
    )


if __name__ == "__main__":
    main()
