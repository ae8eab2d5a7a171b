"""`kronos train`: its arguments, and a config file with the command line's changes, trained."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from kronos.commands.options import add_data_options, parse_column_map
from kronos.training import load_config, train


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=["tokenizer", "predictor"])
    parser.add_argument("--config", help="TOML config file (see configs/ and docs/training.md)")
    parser.add_argument(
        "--data", nargs="+", metavar="FILE", help="data files or glob patterns (sets data.paths)"
    )
    parser.add_argument("--out", help="output directory (sets train.out_dir; the stage is a subdirectory)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.lr=1e-3 --set data.window=64 (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--resume", metavar="DIR|auto", help="continue from a checkpoint directory, or the latest"
    )
    add_data_options(parser)


def config_overrides(args: argparse.Namespace) -> list[str]:
    """The --set overrides, then those of --data, --out and the data options, as KEY=JSON."""
    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.paths={json.dumps([str(Path(p).resolve()) for p in args.data])}")
    if args.out:
        overrides.append(f"train.out_dir={json.dumps(str(Path(args.out).resolve()))}")
    if args.id_column:
        overrides.append(f"data.id_column={json.dumps(args.id_column)}")
    if args.timestamp_column:
        overrides.append(f"data.timestamp_column={json.dumps(args.timestamp_column)}")
    for field, column in parse_column_map(args.columns).items():
        overrides.append(f"data.columns.{field}={json.dumps(column)}")
    return overrides


def run_train(args: argparse.Namespace) -> int:
    config = load_config(args.config, config_overrides(args))
    result = train(config, args.stage, resume=args.resume)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, rank 0 reports
    if result.best_val_loss is None:
        best = "no validation loss (no validation data)"
    else:
        before = "n/a" if result.initial_val_loss is None else f"{result.initial_val_loss:.4f}"
        best = f"validation loss {before} before training, best {result.best_val_loss:.4f}"
    where = f"best checkpoint in {result.best_dir}" if result.best_dir else "no best checkpoint on disk"
    print(f"{args.stage} trained: {result.step} steps, {best}; {where}")
    return 0
