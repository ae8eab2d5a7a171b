"""`kronos forecast`: its arguments, and the forecast of every series of a file, a long table or
a folder, here or on a Ray cluster, written as CSV or Parquet and optionally drawn."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import pandas as pd

from kronos.commands.options import (
    CommandError,
    add_context_options,
    add_data_options,
    add_engine_arguments,
    add_model_arguments,
    add_sampling_options,
    check_positive,
    chosen_sampling,
    engine_options,
    predictor_options,
    table_layout,
)
from kronos.commands.plot import plot_forecast
from kronos.engine.sampling import PATHS, Sampling
from kronos.forecasting.actions import adjust_splits
from kronos.forecasting.calibration import Calibration, PastOrigins, required_rows
from kronos.forecasting.paths import DEFAULT_QUANTILE_LEVELS, check_quantile_levels
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.pretrained import DEFAULT_MODEL
from kronos.forecasting.schedules import check_calendar, frequency, future_timestamps
from kronos.forecasting.series import MAX_PRED_LEN, MIN_HISTORY, Series
from kronos.forecasting.tables import TableOptions, load_series, long_table
from kronos.io import check_output_file, write_atomically
from kronos.ray.engine import RayEngine, forecast_dataset


def add_forecast_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="CSV or Parquet file of bars, oldest to newest, or a folder of them")
    parser.add_argument("--steps", type=int, required=True, help="number of future bars")
    add_model_arguments(parser)
    parser.add_argument(
        "--paths", type=int, default=PATHS, help=f"sampled paths per series (default {PATHS})"
    )
    parser.add_argument(
        "--quantiles",
        default=",".join(f"{q:g}" for q in DEFAULT_QUANTILE_LEVELS),
        help="comma-separated quantile levels (default: the 50%%, 80%% and 95%% bands and the median)",
    )
    parser.add_argument(
        "--lookback",
        type=int,
        help="bars of history each forecast sees (default: what the model was trained with)",
    )
    add_context_options(parser)
    add_sampling_options(parser)
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="calibrate each series' bands on its own past: forecast its history from within, compare "
        "with what followed, and correct the spread per step (needs 20 past forecasts: about "
        "lookback + 10 x steps bars)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the sampling (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (--calibrate shows one)")
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
    parser.add_argument(
        "--adjust-splits",
        action="store_true",
        help="back-adjust the prices before split-like bars (a close halved overnight: 2:1), which are "
        "otherwise warned about",
    )
    parser.add_argument(
        "--calendar",
        help="exchange calendar of the future bars, e.g. XNYS, XLON, XTKS: its holidays get no bar "
        "(pip install 'kronos-forecasting[calendars]')",
    )
    parser.add_argument("--symbol", help="forecast only this symbol of a long table (with --id-column)")
    parser.add_argument("--out", help="write the forecast to this .csv or .parquet file (default: print CSV)")
    parser.add_argument("--plot", help="draw history and forecast to this PNG file (one series)")
    add_data_options(parser)
    add_engine_arguments(parser)


def check_forecast_arguments(args: argparse.Namespace) -> tuple[float, ...]:
    """Every option checked before any data is read; returns the quantile levels."""
    check_positive(args, "steps", "paths", "batch_size", "lookback", "max_context", "threads")
    if args.steps > MAX_PRED_LEN:
        raise CommandError(f"--steps must be at most {MAX_PRED_LEN:,}, got {args.steps:,}")
    for flag, value in (("--lookback", args.lookback), ("--max-context", args.max_context)):
        if value is not None and value < MIN_HISTORY:
            raise CommandError(
                f"{flag} must be at least {MIN_HISTORY} bars (the fewest a forecast is given), got {value}"
            )
    if args.symbol and not args.id_column:
        raise CommandError("--symbol needs --id-column, the column that names the symbols")
    if args.freq is not None:
        try:
            frequency(args.freq)
        except ValueError as err:
            raise CommandError(f"--{err}") from err  # "--freq '-1D' does not step forward ..."
    engine_options(args)
    _check_output_names(args)
    _check_schedule_options(args)
    try:
        levels = check_quantile_levels([float(q) for q in args.quantiles.split(",") if q.strip()])
    except ValueError as err:
        raise CommandError(f"--quantiles {args.quantiles!r}: {err}") from err
    source = Path(args.file)
    inputs = [source, *(source.iterdir() if source.is_dir() else ())]
    for flag, path in (("--out", args.out), ("--plot", args.plot)):
        if path:
            check_output_file(path, flag, inputs)
    return levels


def _check_schedule_options(args: argparse.Namespace) -> None:
    """--freq a pandas frequency that steps forward, --calendar an exchange calendar (spelt as its package spells it)."""
    try:
        if args.freq is not None:
            frequency(args.freq)
    except ValueError as err:
        raise CommandError(f"--freq: {err}") from err
    try:
        args.calendar = check_calendar(args.calendar)
    except ValueError as err:
        raise CommandError(f"--calendar: {err}") from err


def _check_output_names(args: argparse.Namespace) -> None:
    """--out names a .csv or .parquet file (Parquet with pyarrow installed), --plot a .png."""
    out = Path(args.out).suffix.lower() if args.out else None
    if out is not None and out not in (".csv", ".parquet"):
        raise CommandError(f"--out {args.out!r}: the file name must end in .csv or .parquet")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise CommandError(f"--plot {args.plot!r}: the file name must end in .png")
    if out == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise CommandError(
            "writing Parquet needs pyarrow: pip install 'kronos-forecasting[parquet]' (or write .csv)"
        )


def run_forecast(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    levels = check_forecast_arguments(args)
    series = read_series(args)
    # one series: its schedule is checked before any weights load
    future = (
        future_timestamps(series[0].timestamps, args.steps, series[0].name, args.freq, args.calendar)
        if len(series) == 1
        else None
    )
    predictor = KronosPredictor.from_pretrained(
        args.model,
        args.tokenizer,
        device=args.device if args.engine == "local" else "cpu",  # with Ray, for its lookback and context
        num_threads=args.threads,
        **predictor_options(args),
    )
    lookback = args.lookback or predictor.lookback
    if lookback < MIN_HISTORY:
        raise CommandError(
            f"{args.model} takes {lookback} bars of history, fewer than the {MIN_HISTORY} a forecast is given: "
            f"pass --lookback {MIN_HISTORY} or more"
        )
    # a lone file is a long table of one series too: its id keys its seeded draws, so it gets the
    # same forecast alone as in a folder or table, on either engine
    on_ray = args.engine == "ray" and future is None
    forecast = forecast_series(args, predictor, series, lookback, levels, on_ray)
    used = [min(lookback, len(one)) for one in series]  # the bars each forecast was given
    if future is not None:
        forecast = forecast.drop(columns="symbol")
        what = f"{series[0].name}: {args.steps} steps ({future.description}) from {used[0]} bars"
    else:
        span = f"{min(used)} to {max(used)}" if min(used) < max(used) else f"{used[0]}"
        what = f"{len(series)} series: {args.steps} steps from {span} bars each"
    where = " (shipped with the package)" if args.model == DEFAULT_MODEL else ""
    print(
        f"model: {args.model}{where}; lookback {lookback} bars, context {predictor.max_context}",
        file=sys.stderr,
    )
    write_forecast(forecast, args)
    if args.plot:
        plot_forecast(series[0], forecast, args.plot, args.model, used[0])
        print(f"wrote plot to {args.plot}", file=sys.stderr)
    print(f"{what}, {args.paths} paths, {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


def read_series(args: argparse.Namespace) -> list[Series]:
    """The series of the file or folder, or the one --symbol names; one only with --plot."""
    series = load_series([args.file], table_layout(args))
    if args.adjust_splits:
        series = [adjust_splits(one) for one in series]
    if args.symbol:
        series = [pick_symbol(series, args.symbol, args.file)]
    short = [f"{one.name} ({len(one)} bars)" for one in series if len(one) < MIN_HISTORY]
    if short:
        raise CommandError(
            f"a forecast needs at least {MIN_HISTORY} bars of history; too short: {', '.join(short[:5])}"
            f"{' ...' if len(short) > 5 else ''}"
        )
    if args.plot and len(series) > 1:
        raise CommandError(
            f"--plot draws one series and {args.file} holds {len(series)}: choose one with --symbol"
        )
    return series


def pick_symbol(series: list[Series], symbol: str, file: str) -> Series:
    names = {str(s.key): s for s in series}
    if symbol not in names:
        raise CommandError(f"symbol {symbol!r} is not in {file}; it holds {sorted(names)}")
    return names[symbol]


def forecast_series(
    args: argparse.Namespace,
    predictor: KronosPredictor,
    series: list[Series],
    lookback: int,
    levels: tuple[float, ...],
    on_ray: bool,
) -> pd.DataFrame:
    """`predict_df`'s long table of forecasts (keyed by "symbol") of every series, calibrated with
    --calibrate, made by `predictor` or on Ray; with a synthetic_ohlc column where open, high and
    low were built from the close."""
    sampling = chosen_sampling(args, predictor)
    calibrations = calibrate_series(predictor, series, args, lookback, sampling) if args.calibrate else None
    # holidays and nights are gaps too; the schedule of the future follows them
    table = TableOptions(freq=args.freq, on_gap="ignore", max_history=lookback, calendar=args.calendar)
    options = dict(
        quantile_levels=levels,
        sampling=sampling,
        table=table,
        batch_size=args.batch_size,
        calibration=calibrations,
    )
    bars = long_table(series)
    if on_ray:
        engine = RayEngine(
            args.model,
            args.tokenizer,
            predictor_options(args),
            num_cpus_per_actor=args.threads or 1,
            **engine_options(args),
        )
        forecast = forecast_dataset(bars, engine, steps=args.steps, id_column="symbol", **options)
        assert forecast is not None  # without out= the table comes back
    else:
        forecast = predictor.predict_df(bars, "symbol", prediction_length=args.steps, **options)
    built = {one.key for one in series if one.synthetic_ohlc}
    if built:
        forecast["synthetic_ohlc"] = forecast["symbol"].isin(built)
    return forecast


def calibrate_series(
    predictor: KronosPredictor,
    series: list[Series],
    args: argparse.Namespace,
    lookback: int,
    sampling: Sampling,
) -> dict[object, Calibration]:
    """A calibration per series, fitted on the series' own bars (`KronosPredictor.fit_calibration`)."""
    needed = required_rows(lookback, args.steps)
    short = [f"{one.name} ({len(one)} bars)" for one in series if len(one) < needed]
    if short:
        raise CommandError(
            f"--calibrate needs at least {needed} bars per series (lookback {lookback}, {args.steps} steps, "
            f"20 past forecasts); too short: {', '.join(short[:5])}{' ...' if len(short) > 5 else ''}"
        )
    calibrations = {}
    for one in series:
        if not args.quiet:
            print(f"{one.name}: calibrating on its past forecasts", file=sys.stderr)
        calibrations[one.key] = calibration = predictor.fit_calibration(
            one,
            args.steps,
            sampling,
            PastOrigins(lookback),
            batch_size=args.batch_size,
            progress=not args.quiet,
        )
        print(
            f"{one.name}: calibrated on {calibration.origins} past forecasts; model's move kept "
            f"{calibration.shrink.mean():.0%}, model's spread weighed {calibration.weight.mean():.0%} "
            "against the history's volatility (means over the steps)",
            file=sys.stderr,
        )
    return calibrations


def write_forecast(forecast: pd.DataFrame, args: argparse.Namespace) -> None:
    """The forecast to --out, as CSV or Parquet by its extension, else as CSV to stdout."""
    if not args.out:
        print(forecast.to_csv(index=False), end="")
        return
    if Path(args.out).suffix.lower() == ".parquet":
        write_atomically(args.out, lambda tmp: forecast.to_parquet(tmp, index=False), "--out")
    else:
        write_atomically(args.out, lambda tmp: forecast.to_csv(tmp, index=False), "--out")
    print(f"wrote {len(forecast)} forecast rows to {args.out}", file=sys.stderr)
