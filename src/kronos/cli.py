"""The `kronos` command: `kronos train`, `kronos forecast` and `kronos evaluate`.

Each subcommand registers itself with `add_*_parser(subparsers)` and sets `handler`; a new one is
added by writing such a function and listing it in SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .evaluation.command import add_evaluate_arguments, run_evaluate
from .pretrained import DEFAULT_MODEL, resolve_checkpoint, resolve_tokenizer, shipped_dir

HUB_MAX_CONTEXT = {"NeoQuasar/Kronos-mini": 2048}
SMALL_MODEL_PARAMETERS = 5_000_000


class CommandError(Exception):
    """A user error: printed as one line, exit status 2."""


def parse_column_map(text: str | None) -> dict[str, str]:
    """'open=Open,close=Last' -> {'open': 'Open', 'close': 'Last'}."""
    if not text:
        return {}
    mapping = {}
    for item in text.split(","):
        if "=" not in item:
            raise CommandError(f"--columns entry {item!r} must look like field=FileColumn, e.g. close=Last")
        field, column = (part.strip() for part in item.split("=", 1))
        mapping[field] = column
    return mapping


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id-column", help="column naming the symbol, for a long table of several symbols")
    parser.add_argument(
        "--timestamp-column", help="column of timestamps (default: timestamps/date/datetime/time)"
    )
    parser.add_argument(
        "--columns",
        help="map fields to the file's columns, e.g. open=Open,close='Adj Close' (default: same names)",
    )


# --- kronos train ---------------------------------------------------------------------------------


def add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train or fine-tune a tokenizer or predictor on your OHLCV files",
        description=(
            "Train the tokenizer (stage 1) or the predictor on a frozen tokenizer (stage 2), from scratch "
            "or from pretrained weights. Settings come from a TOML config (--config), changed by --set. "
            "For several processes or machines run it under torchrun."
        ),
    )
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
    parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from .training import load_config, train

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
    config = load_config(args.config, overrides)
    result = train(config, args.stage, resume=args.resume)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, rank 0 reports
    best = f"{result.best_val_loss:.4f}" if result.best_val_loss is not None else "n/a (no validation data)"
    print(
        f"{args.stage} trained: {result.step} steps, best validation loss {best}; best checkpoint in {result.best_dir}"
    )
    return 0


# --- kronos forecast ------------------------------------------------------------------------------


def add_forecast_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "forecast",
        help="forecast the next bars of an OHLCV file",
        description=(
            "Sample future paths of a CSV or Parquet file of bars (timestamps, open, high, low, close, and "
            "optionally volume, amount) and write their mean, with close quantiles, for the next --steps bars. "
            f"Without --model the small model shipped with the package ({DEFAULT_MODEL}) is used, offline."
        ),
    )
    parser.add_argument("file", help="CSV or Parquet file of bars, oldest to newest")
    parser.add_argument("--steps", type=int, required=True, help="number of future bars")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL,
        help=f"model: '{DEFAULT_MODEL}', a directory (a checkpoint, or one holding model/ and tokenizer/), or a hub id",
    )  # fmt: skip
    parser.add_argument("--tokenizer", help="tokenizer directory or hub id (default: the model's own)")
    parser.add_argument("--paths", type=int, default=20, help="sampled paths (default 20)")
    parser.add_argument("--context", type=int, help="history bars the model sees (default: fits the model)")
    parser.add_argument(
        "--max-context", type=int, help="the model's context length (default: the model's own)"
    )
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0, help="random seed of the sampling (default 0)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads (default: 1 for models under 5M parameters, else torch's default)",
    )
    parser.add_argument(
        "--freq",
        help="spacing of the future bars, a pandas frequency such as 5min, h, D or B (default: inferred from the data)",
    )
    parser.add_argument("--symbol", help="which symbol to forecast from a long table (with --id-column)")
    parser.add_argument("--out", help="write the forecast to this CSV file (default: print it)")
    parser.add_argument("--plot", help="draw history and forecast to this PNG file")
    add_data_options(parser)
    parser.set_defaults(handler=run_forecast)


def model_settings(model: str) -> dict:
    """Settings saved beside a shipped or local model (kronos.json), e.g. its max_context."""
    for directory in (shipped_dir(model), Path(model)):
        if (directory / "kronos.json").is_file():
            return json.loads((directory / "kronos.json").read_text())
    return {}


def pick_series(args: argparse.Namespace):
    from .data import load_series

    series = load_series([args.file], args.id_column, parse_column_map(args.columns), args.timestamp_column)
    if len(series) == 1:
        return series[0]
    names = {str(s.symbol): s for s in series}
    if not args.symbol:
        raise CommandError(
            f"{args.file} holds {len(series)} symbols {sorted(names)}: choose one with --symbol"
        )
    if args.symbol not in names:
        raise CommandError(f"symbol {args.symbol!r} is not in {args.file}; it holds {sorted(names)}")
    return names[args.symbol]


def run_forecast(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.steps <= 0:
        raise CommandError(f"--steps must be a positive number of bars, got {args.steps}")
    if args.paths <= 0:
        raise CommandError(f"--paths must be positive, got {args.paths}")
    if args.symbol and not args.id_column:
        raise CommandError("--symbol needs --id-column, the column that names the symbols")

    import numpy as np
    import pandas as pd
    import torch

    from .data import FEATURE_COLUMNS
    from .frames import future_timestamps
    from .model import Kronos
    from .predictor import KronosPredictor
    from .tokenizer import KronosTokenizer

    series = pick_series(args)
    future = future_timestamps(series.timestamps, args.steps, args.file, args.freq)

    model_source = resolve_checkpoint(args.model, "model")
    model = Kronos.from_pretrained(model_source)
    tokenizer_source = resolve_tokenizer(args.model, args.tokenizer)
    tokenizer = KronosTokenizer.from_pretrained(tokenizer_source)
    settings = model_settings(args.model)
    max_context = args.max_context or settings.get("max_context") or HUB_MAX_CONTEXT.get(args.model, 512)
    context = args.context or max(max_context - args.steps, max_context // 2)
    context = min(context, len(series))
    if context < 2:
        raise CommandError(f"{args.file} has {len(series)} bar(s); a forecast needs at least 2")
    if args.threads:
        torch.set_num_threads(args.threads)
    elif sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMETERS:
        torch.set_num_threads(1)  # a small model's matrices are too small to gain from threads
    where = " (shipped with the package)" if args.model == DEFAULT_MODEL else ""
    print(f"model: {args.model}{where}: {model_source}", file=sys.stderr)
    print(f"tokenizer: {tokenizer_source}", file=sys.stderr)
    predictor = KronosPredictor(model, tokenizer, device=args.device, max_context=max_context)
    frame = series.frame().iloc[-context:]
    torch.manual_seed(args.seed)
    paths = predictor.predict_paths(
        frame[FEATURE_COLUMNS],
        frame["timestamps"],
        future.timestamps,
        args.steps,
        sample_count=args.paths,
        T=args.temperature,
        top_p=args.top_p,
    )
    close = paths[..., FEATURE_COLUMNS.index("close")]
    forecast = pd.DataFrame(paths.mean(axis=0), columns=FEATURE_COLUMNS)
    forecast.insert(0, "timestamps", future.timestamps)
    for q in (10, 50, 90):
        forecast[f"close_q{q}"] = np.percentile(close, q, axis=0)
    label = series.name
    if args.out:
        forecast.to_csv(args.out, index=False)
        print(f"wrote {args.steps} forecast bars to {args.out}", file=sys.stderr)
    else:
        print(forecast.to_csv(index=False), end="")
    if args.plot:
        plot_forecast(series.frame(), forecast, close, args.plot, label, args.model, args.steps)
        print(f"wrote plot to {args.plot}", file=sys.stderr)
    print(
        f"{label}: {args.steps} steps ({future.description}) from {context} bars of history, {args.paths} paths, "
        f"{time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return 0


def plot_forecast(history, forecast, close_paths, path: str, symbol: str, model: str, steps: int) -> None:
    """Candles of the recent history, then the median forecast close with its 80% band, and volume."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import EngFormatter

    shown = history.iloc[-max(3 * steps, 60) :].reset_index(drop=True)
    n = len(shown)
    x_hist = np.arange(n)
    x_future = np.arange(n, n + steps)
    fig, (ax, ax_vol) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    up = shown["close"] >= shown["open"]
    for mask, color in ((up, "#26a69a"), (~up, "#ef5350")):
        ax.vlines(x_hist[mask], shown["low"][mask], shown["high"][mask], color=color, lw=1)
        body_low = np.minimum(shown["open"], shown["close"])[mask]
        body = (shown["close"] - shown["open"]).abs()[mask]
        body = np.maximum(body, (shown["high"].max() - shown["low"].min()) * 0.002)
        ax.bar(x_hist[mask], body, bottom=body_low, width=0.7, color=color, edgecolor=color)
        ax_vol.bar(x_hist[mask], shown["volume"][mask], width=0.7, color=color, alpha=0.6)
    last_close = shown["close"].iloc[-1]
    low, median, high = (np.percentile(close_paths, q, axis=0) for q in (10, 50, 90))
    joined = np.concatenate([[n - 1], x_future])
    ax.fill_between(
        joined, np.r_[last_close, low], np.r_[last_close, high], color="#1f77b4", alpha=0.2, label="80% band"
    )
    ax.plot(joined, np.r_[last_close, median], color="#1f77b4", lw=2, label="median forecast")
    ax.axvline(n - 0.5, color="grey", ls="--", lw=1)
    ax_vol.bar(x_future, forecast["volume"], width=0.7, color="#1f77b4", alpha=0.4)
    ax.set_title(f"{symbol}: {steps}-step forecast by {model}, {close_paths.shape[0]} sampled paths")
    ax.set_ylabel("price")
    ax_vol.set_ylabel("volume")
    ax_vol.yaxis.set_major_formatter(EngFormatter())
    ax.legend(loc="best", framealpha=0.9)
    ax.grid(alpha=0.25)
    ax_vol.grid(alpha=0.25)
    stamps = list(shown["timestamps"]) + list(forecast["timestamps"])
    ticks = np.linspace(0, len(stamps) - 1, 8).round().astype(int)
    fmt = "%Y-%m-%d" if all(t.hour == 0 and t.minute == 0 for t in stamps) else "%m-%d %H:%M"
    ax_vol.set_xticks(ticks)
    ax_vol.set_xticklabels([stamps[i].strftime(fmt) for i in ticks], rotation=0)
    ax_vol.set_xlim(-1, len(stamps))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def add_evaluate_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="rolling-origin backtest of a model against naive baselines",
        description="Rolling-origin backtest of a model against persistence, drift and a Gaussian random walk; "
        "writes a report with tables, plots and the raw per-origin results.",
    )
    add_evaluate_arguments(parser)
    parser.set_defaults(handler=run_evaluate)


SUBCOMMANDS: list[Callable] = [add_train_parser, add_forecast_parser, add_evaluate_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kronos", description="Kronos: forecasting, training and evaluation for OHLCV bars"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (CommandError, ValueError, FileNotFoundError, FileExistsError, ImportError) as err:
        print(f"kronos {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
