"""The `kronos` command: `kronos train`, `kronos forecast`, `kronos evaluate` and `kronos serve`.

Each subcommand is a row of SUBCOMMANDS: its name, help and description, the function that adds
its arguments and the one that runs it; a new one is added by writing those two and a row.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from kronos.commands.evaluate import add_context_options, add_evaluate_arguments, run_evaluate
from kronos.commands.serve import add_serve_arguments, run_serve
from kronos.engine.sampling import PATHS, TEMPERATURE, TOP_P
from kronos.forecasting.paths import BAND_QUANTILE_LEVELS
from kronos.forecasting.pretrained import DEFAULT_MODEL
from kronos.forecasting.tables import TableLayout
from kronos.io import check_output_file, write_atomically
from kronos.ray.engine import add_engine_arguments, engine_options


class CommandError(Exception):
    """A user error: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with a usage error on one line and exit status 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


def table_layout(args: argparse.Namespace) -> TableLayout:
    """The layout of the data files as --id-column, --columns, --timestamp-column and, where the
    command has it, --ohlc-from-close describe it."""
    columns = parse_column_map(args.columns)
    try:
        return TableLayout(
            args.id_column, columns, args.timestamp_column, getattr(args, "ohlc_from_close", False)
        )
    except ValueError as err:
        raise CommandError(f"--columns {args.columns!r}: {err}") from err


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


def run_train(args: argparse.Namespace) -> int:
    from kronos.training import load_config, train

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
    where = f"best checkpoint in {result.best_dir}" if result.best_dir else "no best checkpoint on disk"
    print(f"{args.stage} trained: {result.step} steps, best validation loss {best}; {where}")
    return 0


# --- kronos forecast ------------------------------------------------------------------------------


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --tokenizer, --device and --threads: how `kronos forecast` and `kronos serve` name
    and run a model."""
    parser.add_argument(
        "--model", default=DEFAULT_MODEL,
        help=f"model: '{DEFAULT_MODEL}', a directory (a checkpoint, or one holding model/ and tokenizer/), or a hub id",
    )  # fmt: skip
    parser.add_argument("--tokenizer", help="tokenizer directory or hub id (default: the model's own)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads (default: 1 for models under 5M parameters, else torch's default)",
    )


def add_forecast_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="CSV or Parquet file of bars, oldest to newest, or a folder of them")
    parser.add_argument("--steps", type=int, required=True, help="number of future bars")
    add_model_arguments(parser)
    parser.add_argument(
        "--paths", type=int, default=PATHS, help=f"sampled paths per series (default {PATHS})"
    )
    parser.add_argument(
        "--quantiles",
        default=",".join(f"{q:g}" for q in BAND_QUANTILE_LEVELS),
        help="comma-separated quantile levels (default: the 50%%, 80%% and 95%% bands and the median)",
    )
    parser.add_argument(
        "--lookback",
        type=int,
        help="bars of history each forecast sees (default: what the model was trained with)",
    )
    add_context_options(parser)
    parser.add_argument("--temperature", type=float, default=TEMPERATURE)
    parser.add_argument("--top-p", type=float, default=TOP_P)
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="calibrate each series' bands on its own past: forecast its history from within, compare "
        "with what followed, and correct the spread per step (needs 20 past forecasts: about "
        "lookback + 10 x steps bars)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the sampling (default 0)")
    parser.add_argument("--batch-size", type=int, default=32, help="series per generation batch (default 32)")
    parser.add_argument(
        "--ohlc-from-close",
        action="store_true",
        help="for a file of closes only: build open (the previous close), high and low (max and min of open "
        "and close); the output says so in its synthetic_ohlc column",
    )
    parser.add_argument(
        "--freq",
        help="spacing of the future bars, a pandas frequency such as 5min, h, D or B (default: inferred from the data)",
    )
    parser.add_argument("--symbol", help="forecast only this symbol of a long table (with --id-column)")
    parser.add_argument("--out", help="write the forecast to this .csv or .parquet file (default: print CSV)")
    parser.add_argument("--plot", help="draw history and forecast to this PNG file (one series)")
    add_data_options(parser)
    add_engine_arguments(parser)


def _check_forecast_args(args: argparse.Namespace) -> tuple[float, ...]:
    from kronos.forecasting.paths import check_quantile_levels
    from kronos.forecasting.series import MAX_PRED_LEN

    for flag, value in (
        ("--steps", args.steps),
        ("--paths", args.paths),
        ("--batch-size", args.batch_size),
        ("--lookback", args.lookback),
        ("--max-context", args.max_context),
        ("--threads", args.threads),
    ):
        if value is not None and value <= 0:
            raise CommandError(f"{flag} must be a positive number, got {value}")
    if args.steps > MAX_PRED_LEN:
        raise CommandError(f"--steps must be at most {MAX_PRED_LEN:,}, got {args.steps:,}")
    if args.lookback is not None and args.lookback < 3:
        raise CommandError(
            f"--lookback must be at least 3 bars (the spacing of the bars is read from them), got {args.lookback}"
        )
    if args.symbol and not args.id_column:
        raise CommandError("--symbol needs --id-column, the column that names the symbols")
    engine_options(args)
    if args.engine == "ray" and args.device:
        raise CommandError("--device applies to --engine local; Ray actors use a GPU with --gpus-per-actor")
    if args.out and Path(args.out).suffix.lower() not in (".csv", ".parquet"):
        raise CommandError(f"--out {args.out!r}: the file name must end in .csv or .parquet")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise CommandError(f"--plot {args.plot!r}: the file name must end in .png")
    if (
        args.out
        and Path(args.out).suffix.lower() == ".parquet"
        and importlib.util.find_spec("pyarrow") is None
    ):
        raise CommandError("writing Parquet needs pyarrow: pip install 'kronos[parquet]' (or write .csv)")
    try:
        return check_quantile_levels([float(q) for q in args.quantiles.split(",") if q.strip()])
    except ValueError as err:
        raise CommandError(f"--quantiles {args.quantiles!r}: {err}") from err


def run_forecast(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    levels = _check_forecast_args(args)
    for flag, path in (("--out", args.out), ("--plot", args.plot)):
        if path:
            check_output_file(path, flag)

    from kronos.forecasting.predictor import KronosPredictor
    from kronos.forecasting.schedules import future_timestamps
    from kronos.forecasting.tables import load_series, long_table
    from kronos.ray.engine import RayEngine, forecast_dataset

    series = load_series([args.file], table_layout(args))
    if args.symbol:
        series = [pick_symbol(series, args.symbol, args.file)]
    if args.plot and len(series) > 1:
        raise CommandError(
            f"--plot draws one series and {args.file} holds {len(series)}: choose one with --symbol"
        )
    # one series: its schedule is checked before any weights load
    future = (
        future_timestamps(series[0].timestamps, args.steps, series[0].name, args.freq)
        if len(series) == 1
        else None
    )
    decoding = dict(
        max_context=args.max_context, normalize_on=args.normalize, dtype=args.dtype, window=args.window
    )
    predictor = KronosPredictor.from_pretrained(
        args.model,
        args.tokenizer,
        device=args.device if args.engine == "local" else "cpu",  # with Ray, for its lookback and context
        num_threads=args.threads,
        **decoding,
    )
    lookback = args.lookback or predictor.lookback
    sampling = dict(T=args.temperature, top_p=args.top_p, seed=args.seed)
    calibrations = (
        calibrate_series(predictor, series, args, lookback, dict(sample_count=args.paths, **sampling))
        if args.calibrate
        else None
    )
    options = dict(
        quantile_levels=levels, batch_size=args.batch_size, freq=args.freq, max_history=lookback, min_history=3,
        on_gap="ignore",  # holidays and nights are gaps too; the schedule of the future follows them
        calibration=calibrations, **sampling,
    )  # fmt: skip
    # a lone file is a long table of one series too: its id keys its seeded draws, so it gets the
    # same forecast alone as in a folder or table, on either engine
    if args.engine == "ray" and future is None:
        engine = RayEngine(
            args.model, args.tokenizer, decoding, num_cpus_per_actor=args.threads or 1, **engine_options(args)
        )
        forecast = forecast_dataset(
            long_table(series), engine, steps=args.steps, paths=args.paths, id_column="symbol", **options
        )
        assert forecast is not None  # without out= the table comes back
    else:
        forecast = predictor.predict_df(
            long_table(series), "symbol", prediction_length=args.steps, sample_count=args.paths, **options
        )
    built = {one.key for one in series if one.synthetic_ohlc}
    if built:  # the label that open, high and low were built from the close
        forecast["synthetic_ohlc"] = forecast["symbol"].isin(built)
    if future is not None:
        forecast = forecast.drop(columns="symbol")
        bars = min(lookback, len(series[0]))
        what = f"{series[0].name}: {args.steps} steps ({future.description}) from {bars} bars"
    else:
        what = f"{len(series)} series: {args.steps} steps from up to {lookback} bars each"
    where = " (shipped with the package)" if args.model == DEFAULT_MODEL else ""
    print(
        f"model: {args.model}{where}; lookback {lookback} bars, context {predictor.max_context}",
        file=sys.stderr,
    )
    if args.out:
        write_table(forecast, args.out)
        print(f"wrote {len(forecast)} forecast rows to {args.out}", file=sys.stderr)
    else:
        print(forecast.to_csv(index=False), end="")
    if args.plot:
        plot_forecast(series[0], forecast, args.plot, args.model, lookback)
        print(f"wrote plot to {args.plot}", file=sys.stderr)
    print(f"{what}, {args.paths} paths, {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


def calibrate_series(
    predictor, series: list, args: argparse.Namespace, lookback: int, sampling: dict
) -> dict:
    """A calibration per series, fitted on the series' own bars (`KronosPredictor.calibrate`)."""
    from kronos.forecasting.calibration import required_rows

    needed = required_rows(lookback, args.steps)
    short = [f"{one.name} ({len(one)} bars)" for one in series if len(one) < needed]
    if short:
        raise CommandError(
            f"--calibrate needs at least {needed} bars per series (lookback {lookback}, {args.steps} steps, "
            f"20 past forecasts); too short: {', '.join(short[:5])}{' ...' if len(short) > 5 else ''}"
        )
    calibrations = {}
    for one in series:
        frame = one.frame()
        calibrations[one.key] = calibration = predictor.calibrate(
            frame,
            frame["timestamps"],
            args.steps,
            lookback=lookback,
            series_id=one.key,
            batch_size=args.batch_size,
            **sampling,
        )
        print(
            f"{one.name}: calibrated on {calibration.origins} past forecasts; model's move kept "
            f"{calibration.shrink.mean():.0%}, model's spread weighed {calibration.weight.mean():.0%} "
            "against the history's volatility (means over the steps)",
            file=sys.stderr,
        )
    return calibrations


def pick_symbol(series: list, symbol: str, file: str):
    names = {str(s.key): s for s in series}
    if symbol not in names:
        raise CommandError(f"symbol {symbol!r} is not in {file}; it holds {sorted(names)}")
    return names[symbol]


def write_table(table, path: str) -> None:
    """A table as CSV or Parquet, by the file's extension."""
    if Path(path).suffix.lower() == ".parquet":
        write_atomically(path, lambda tmp: table.to_parquet(tmp, index=False), "--out")
    else:
        write_atomically(path, lambda tmp: table.to_csv(tmp, index=False), "--out")


def plot_forecast(series, forecast, path: str, model: str, lookback: int) -> None:
    """Candles of the recent history with volume, then the median forecast close with its bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import EngFormatter

    steps = len(forecast)
    shown = series.frame().iloc[-max(3 * steps, 60) :].reset_index(drop=True)
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
    joined = np.concatenate([[n - 1], x_future])
    for low, high, alpha in ((0.025, 0.975, 0.12), (0.1, 0.9, 0.2), (0.25, 0.75, 0.3)):
        if f"close_q{low:g}" in forecast and f"close_q{high:g}" in forecast:
            ax.fill_between(
                joined,
                np.r_[last_close, forecast[f"close_q{low:g}"]],
                np.r_[last_close, forecast[f"close_q{high:g}"]],
                color="#1f77b4",
                alpha=alpha,
                lw=0,
                label=f"{round((high - low) * 100)}% band",
            )
    if "close_q0.5" in forecast:
        ax.plot(
            joined, np.r_[last_close, forecast["close_q0.5"]], color="#1f77b4", lw=2, label="median forecast"
        )
    ax.axvline(n - 0.5, color="grey", ls="--", lw=1)
    ax_vol.bar(x_future, forecast["volume_mean"], width=0.7, color="#1f77b4", alpha=0.4)
    prob_up = forecast["prob_close_above_last"].iloc[-1]
    built = " (open/high/low built from the close)" if series.synthetic_ohlc else ""
    ax.set_title(
        f"{series.name}{built}: {steps}-step forecast by {model} from {lookback} bars; "
        f"P(close ends above last) = {prob_up:.0%}"
    )
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
    try:
        write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight"), "--plot")
    finally:
        plt.close(fig)


# --- the command ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subcommand:
    """`kronos NAME`: its line in `kronos --help`, its description, the function that adds its
    arguments to its parser and the one that runs it (`handler`)."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], object]
    run: Callable[[argparse.Namespace], int]


SUBCOMMANDS = [
    Subcommand(
        "train",
        "train or fine-tune a tokenizer or predictor on your OHLCV files",
        "Train the tokenizer (stage 1) or the predictor on a frozen tokenizer (stage 2), from scratch "
        "or from pretrained weights. Settings come from a TOML config (--config), changed by --set. "
        "For several processes or machines run it under torchrun.",
        add_train_arguments,
        run_train,
    ),
    Subcommand(
        "forecast",
        "forecast the next bars of an OHLCV file",
        "Sample future paths of a CSV or Parquet file of bars (timestamps, open, high, low, close, and "
        "optionally volume, amount) and write, for the next --steps bars, the mean and quantiles of every "
        "column, the probability that the close ends above the last close, and the realised volatility. "
        "A long table with --id-column (or a folder of files, one per symbol) gives one long table of "
        f"forecasts. Without --model the small model shipped with the package ({DEFAULT_MODEL}) is used, "
        "offline; its history, context and sampling defaults come from the model itself.",
        add_forecast_arguments,
        run_forecast,
    ),
    Subcommand(
        "evaluate",
        "rolling-origin backtest of a model against naive baselines",
        "Rolling-origin backtest of a model against persistence, drift and a Gaussian random walk; "
        "writes a report with tables, plots and the raw per-origin results.",
        add_evaluate_arguments,
        run_evaluate,
    ),
    Subcommand(
        "serve",
        "run the forecasting service and its web page",
        "Serve forecasts over HTTP (JSON, CSV uploads, many series at once, micro-batched) "
        "with a web page at / to chart them. Needs the serve extra: pip install 'kronos[serve]'.",
        add_serve_arguments,
        run_serve,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="kronos", description="Kronos: forecasting, training and evaluation for OHLCV bars")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in SUBCOMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.description)
        command.add_arguments(sub)
        sub.set_defaults(handler=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `kronos` with `argv` (default: the command line) and return its exit status: 0, or 2
    after one line on stderr naming the problem. Warnings are one line each too."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a usage error already printed
        return done.code if isinstance(done.code, int) else 2
    format_warning = warnings.formatwarning
    warnings.formatwarning = _warning_line(args.command)
    try:
        return args.handler(args)
    except (CommandError, ValueError, TypeError, OSError, ImportError) as err:
        print(f"kronos {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = format_warning


def _one_line(err: Exception | Warning | str) -> str:
    return " ".join(str(err).split())


def _warning_line(command: str) -> Callable:
    def line(message, category, filename, lineno, line=None) -> str:
        return f"kronos {command}: warning: {_one_line(message)}\n"

    return line


if __name__ == "__main__":
    sys.exit(main())
