"""Build `kronos-default`, the model shipped in the package, in one reproducible command.

    python scripts/train_default_model.py --config configs/default.toml

Steps: write the training data (scripts/build_default_data.py), train the tokenizer, train the
predictor on it, evaluate both on the held-out final segment of every series, and copy the best
checkpoints into src/kronos/shipped/kronos-default/. Needs the `data` extra.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from kronos.forecasting.schedules import bar_spacing
from kronos.nn.metadata import ModelMetadata
from kronos.training import load_config, load_windows, train
from kronos.training.evaluation import evaluate_checkpoints

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_default_data import main as build_data  # noqa: E402

STEPS = ("data", "tokenizer", "predictor", "evaluate", "install")
REPO = Path(__file__).resolve().parents[1]
INSTALL_DIR = REPO / "src" / "kronos" / "pretrained" / "kronos-default"


def metadata(config) -> ModelMetadata:
    """The shipped model's kronos.json: what training writes beside a checkpoint (context, history,
    bar spacings, series and bars), plus the bars per spacing and where the held-out series are."""
    series, _, _ = load_windows(config)
    spacings = [bar_spacing(s.timestamps) for s in series]
    frequencies = tuple(sorted(set(spacings) - {""}))
    return ModelMetadata(
        max_context=config.data.window,
        history=config.data.history_len(),
        frequencies=frequencies,
        extra={
            "series": len(series),
            "bars": sum(len(s.timestamps) for s in series),
            "bars_by_frequency": {
                f: sum(len(s.timestamps) for s, g in zip(series, spacings) if g == f) for f in frequencies
            },
            "held_out_series": "benchmarks/data/heldout/",
            "recipe": "python scripts/train_default_model.py --config configs/default.toml",
        },
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "default.toml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}"
    )
    parser.add_argument("--resume", action="store_true", help="continue interrupted training stages")
    args = parser.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step(s) {unknown}; steps are {list(STEPS)}")
    config = load_config(args.config, args.overrides)
    torch.set_num_threads(config.train.num_threads or 2)
    run_dir = Path(config.resolve_path(config.train.out_dir))
    started = time.time()
    if "data" in steps:
        build_data(["--out", str(run_dir / "data")])
    for stage in ("tokenizer", "predictor"):
        if stage in steps:
            result = train(config, stage, resume="auto" if args.resume else None)
            print(
                f"{stage}: best validation loss {result.best_val_loss:.4f} after {result.epochs_done} epochs"
            )
    if "evaluate" in steps:
        report = evaluate_checkpoints(
            config, run_dir / "tokenizer" / "best", run_dir / "predictor" / "best", horizon=20
        )
        (run_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
        print(json.dumps(report["summary"], indent=2))
    if "install" in steps:
        for part, stage in (("tokenizer", "tokenizer"), ("model", "predictor")):
            target = INSTALL_DIR / part
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for name in ("config.json", "model.safetensors"):
                shutil.copy2(run_dir / stage / "best" / name, target / name)
        metadata(config).write(INSTALL_DIR / "model")
        print(f"installed into {INSTALL_DIR}")
    print(f"done in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
