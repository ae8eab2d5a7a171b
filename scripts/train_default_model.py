"""Build `kronos-default`, the model shipped in the package, in one reproducible command.

    python scripts/train_default_model.py --config configs/default.toml

Steps: write the training data (scripts/build_default_data.py, and the synthetic series of
scripts/build_synthetic_data.py), train the tokenizer, train the predictor on it, choose its
sampling temperature, evaluate both on the held-out final segment of every series, and copy the
best checkpoints into src/kronos/shipped/kronos-default/. Needs the `data` extra.

The predictor's best checkpoint is chosen by forecast metrics (`--select-by`, default the CRPS
ratio to the best random walk; `kronos.evaluation.selection`) at `--select-origins` origins per
bar-spacing family in the held-out segments, scored after every epoch, printed and written to
predictor/forecast_selection.csv and .json; `--select-by val_loss` chooses by token loss instead.
The `temperature` step scores the best checkpoint the same way at each of `[sampling] temperatures`
and writes the one with the lowest `--select-by` metric (crps_ratio under val_loss) into its
kronos.json, the table to predictor/temperature.csv.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from kronos.evaluation.selection import FAMILIES, POOLED, ForecastScorer, family_table
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.schedules import bar_spacing
from kronos.nn.metadata import METADATA_NAME, ModelMetadata, SamplingDefaults, read_metadata
from kronos.nn.model import Kronos
from kronos.nn.tokenizer import KronosTokenizer
from kronos.training import Selection, load_config, load_windows, train
from kronos.training.dataset import split_point
from kronos.training.evaluation import evaluate_checkpoints
from kronos.training.trainer import VAL_LOSS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_default_data import main as build_data  # noqa: E402
from build_synthetic_data import main as build_synthetic  # noqa: E402

STEPS = ("data", "tokenizer", "predictor", "temperature", "evaluate", "install")
# The synthetic part of the default data (kronos.training.synthetic; docs/training.md, "Synthetic
# corpus"): 48 series of 3000 bars from seed 0, beside the real series' 45,728 bars.
SYNTHETIC = ["--series", "48", "--bars", "3000", "--seed", "0"]
REPO = Path(__file__).resolve().parents[1]
INSTALL_DIR = REPO / "src" / "kronos" / "shipped" / "kronos-default"


def trained_metadata(best: Path) -> ModelMetadata:
    """The kronos.json the predictor stage wrote beside its best checkpoint."""
    trained = read_metadata("predictor", best)
    if trained is None:
        raise SystemExit(f"{best} has no {METADATA_NAME}: train the predictor stage first")
    return trained


def metadata(config, best: Path) -> ModelMetadata:
    """The shipped model's kronos.json: what training wrote beside the best checkpoint (context,
    history, bar spacings, sampling, anchor, center, series and bars) without its tokenizer reference (the
    tokenizer ships beside it), plus the bars per spacing and where the held-out series are."""
    trained = trained_metadata(best)
    series, _, _ = load_windows(config)
    spacings = [bar_spacing(s.timestamps) for s in series]
    extra = {
        "bars_by_frequency": {
            f: sum(len(s.timestamps) for s, g in zip(series, spacings) if g == f) for f in trained.frequencies
        },
        "held_out_series": "benchmarks/data/heldout/",
        "recipe": "python scripts/train_default_model.py --config configs/default.toml",
    }
    return replace(trained, tokenizer=None, extra={**trained.extra, **extra})


def forecast_scores(config, origins: int, paths: int) -> Callable[[KronosPredictor], dict[str, float]]:
    """ForecastScorer at `origins` per bar-spacing family in the held-out segment of every
    training series, `paths` paths each; each call's family table is printed."""
    series, _, _ = load_windows(config)
    held_out = [split_point(len(one), config.data.val_fraction) for one in series]
    history = config.data.history_len()
    scorer = ForecastScorer(
        series, held_out, config.data.window - history, history, origins, paths, config.train.seed
    )

    def score(predictor: KronosPredictor) -> dict[str, float]:
        scores = scorer(predictor)
        print(family_table(scores).to_string(float_format="{:.4f}".format))
        return scores

    return score


def forecast_selection(config, metric: str, origins: int, paths: int) -> Selection | None:
    """The predictor's selection by `metric` of `forecast_scores` (None for val_loss)."""
    if metric == VAL_LOSS:
        return None
    return Selection(forecast_scores(config, origins, paths), metric)


def score_rows(scores: dict[str, float], keys: dict) -> list[dict]:
    """A scorer's metrics as rows: one per family and one "all" (pooled over families), each
    starting with `keys`."""
    rows = [
        {**keys, "family": family, **metrics.to_dict()} for family, metrics in family_table(scores).iterrows()
    ]
    rows.append({**keys, "family": "all", **{name: scores[name] for name in POOLED}})
    return rows


def selection_table(history: list[dict]) -> pd.DataFrame:
    """The per-epoch forecast metrics: one row per epoch and family (and "all", pooled over
    families), with the epoch's validation loss and whether it is the kept checkpoint."""
    rows = []
    for record in history:
        epoch = {"epoch": record["epoch"], "val_loss": record.get(VAL_LOSS), "best": record["best"]}
        rows.extend(score_rows(record["forecast"], epoch))
    return pd.DataFrame(rows)


def choose_temperature(
    score: Callable[[KronosPredictor], dict[str, float]],
    metric: str,
    run_dir: Path,
    temperatures: Sequence[float],
    device: str = "cpu",
) -> tuple[float, pd.DataFrame]:
    """The temperature of `temperatures` whose forecasts by the predictor's best checkpoint (with
    the run's tokenizer, the checkpoint's top_p) have the lowest `metric` of `score`, written into
    the checkpoint's kronos.json ("sampling"), and the table of every temperature's metrics (one
    row per temperature and family, "chosen" marking the kept one), written to
    predictor/temperature.csv. The first of equal values wins."""
    best = run_dir / "predictor" / "best"
    trained = trained_metadata(best)
    model = Kronos.from_pretrained(str(best))
    tokenizer = KronosTokenizer.from_pretrained(str(run_dir / "tokenizer" / "best"))
    sampling = trained.sampling or SamplingDefaults()
    scored: list[tuple[float, dict[str, float]]] = []
    for temperature in map(float, temperatures):
        print(f"temperature {temperature:g}:")
        model.metadata = replace(trained, sampling=replace(sampling, temperature=temperature))
        scored.append((temperature, score(KronosPredictor(model, tokenizer, device=device))))
    values = [scores[metric] for _, scores in scored]
    finite = [i for i, value in enumerate(values) if math.isfinite(value)]
    if not finite:
        raise SystemExit(f"no temperature has a finite {metric}: the validation origins scored nothing")
    chosen = scored[min(finite, key=values.__getitem__)][0]
    rows = []
    for temperature, scores in scored:
        rows.extend(score_rows(scores, {"temperature": temperature, "chosen": temperature == chosen}))
    table = pd.DataFrame(rows)
    table.to_csv(run_dir / "predictor" / "temperature.csv", index=False)
    replace(trained, sampling=replace(sampling, temperature=chosen)).write(best)
    return chosen, table


def write_selection(history: list[dict], out_dir: Path) -> None:
    """forecast_selection.csv and .json beside the predictor's checkpoints, and the table printed."""
    table = selection_table(history)
    table.to_csv(out_dir / "forecast_selection.csv", index=False)
    (out_dir / "forecast_selection.json").write_text(json.dumps(history, indent=1))
    print(table.to_string(index=False, float_format="{:.4f}".format))


def temperature_step(config, args: argparse.Namespace, run_dir: Path) -> None:
    """The `temperature` step: choose_temperature over `[sampling] temperatures`, its table printed."""
    if not config.sampling.temperatures:
        print("temperature: no [sampling] temperatures configured; the checkpoint keeps its own")
        return
    metric = "crps_ratio" if args.select_by == VAL_LOSS else args.select_by
    score = forecast_scores(config, args.select_origins, args.select_paths)
    device = config.train_for("predictor").device
    chosen, table = choose_temperature(score, metric, run_dir, config.sampling.temperatures, device)
    print(table.to_string(index=False, float_format="{:.4f}".format))
    print(f"temperature: {chosen:g} has the lowest {metric}; written to {run_dir / 'predictor' / 'best'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "default.toml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}"
    )
    parser.add_argument("--resume", action="store_true", help="continue interrupted training stages")
    parser.add_argument(
        "--select-by",
        default="crps_ratio",
        help="what chooses the predictor's best checkpoint, lower is better: a pooled forecast metric "
        f"({', '.join(POOLED)}), a family's ('daily/crps_ratio'), or {VAL_LOSS} (token loss)",
    )
    parser.add_argument(
        "--select-origins", type=int, default=30, help="scored origins per bar-spacing family"
    )
    parser.add_argument(
        "--select-paths", type=int, default=40, help="paths per scored origin (40: a 95%% band can hold 95%%)"
    )
    args = parser.parse_args(argv)
    family = args.select_by.split("/", 1)[0]
    if args.select_by not in (*POOLED, VAL_LOSS) and family not in FAMILIES:
        parser.error(f"--select-by {args.select_by!r}: give one of {[*POOLED, VAL_LOSS]} or 'FAMILY/METRIC'")
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
        build_synthetic(["--out", str(run_dir / "data"), *SYNTHETIC])
    resume = "auto" if args.resume else None
    if "tokenizer" in steps:
        result = train(config, "tokenizer", resume=resume)
        print(f"tokenizer: best validation loss {result.best_val_loss:.4f} after {result.epochs_done} epochs")
    if "predictor" in steps:
        selection = forecast_selection(config, args.select_by, args.select_origins, args.select_paths)
        result = train(config, "predictor", resume=resume, selection=selection)
        if selection is not None:
            write_selection(result.history, result.out_dir)
        print(
            f"predictor: best {result.selected_by} {result.best_score} (validation loss "
            f"{result.best_val_loss}) after {result.epochs_done} epochs"
        )
    if "temperature" in steps:
        temperature_step(config, args, run_dir)
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
        metadata(config, run_dir / "predictor" / "best").write(INSTALL_DIR / "model")
        print(f"installed into {INSTALL_DIR}")
    print(f"done in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
