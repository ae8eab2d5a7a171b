"""`kronos evaluate`: the command-line front end of `evaluate` and `write_report`."""

from __future__ import annotations

import argparse

from kronos.commands.cross_section import add_cross_section_arguments, run_cross_section
from kronos.commands.options import (
    CommandError,
    add_context_options,
    add_date_range_options,
    add_engine_arguments,
    add_sampling_options,
    chosen_sampling,
    date_range,
    engine_options,
    predictor_options,
)
from kronos.engine.sampling import PATHS
from kronos.evaluation.backtest import Backtest, evaluate
from kronos.evaluation.baselines import BASELINES
from kronos.evaluation.data import read_series
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.pretrained import DEFAULT_MODEL
from kronos.io import check_output_dir
from kronos.ray.engine import RayEngine


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the `evaluate` options to a (sub)parser."""
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="CSV or Parquet file(s) or folder(s) of them: one file per symbol, or a long table with --id-column",
    )
    parser.add_argument(
        "--model",
        help="model checkpoint directory, shipped model name or hub id (default: the shipped default model)",
    )
    parser.add_argument(
        "--tokenizer", help="tokenizer checkpoint directory or hub id (default: beside the model)"
    )
    parser.add_argument("--id-column", help="column naming the series in a long table")
    parser.add_argument(
        "--lookback",
        type=int,
        metavar="L",
        help="bars of history each forecast sees (default: the history the model was trained with)",
    )
    parser.add_argument(
        "--steps",
        "--horizon",
        type=int,
        required=True,
        metavar="H",
        help="bars forecast at each origin (with --cross-section: of the forward return)",
    )
    spread = parser.add_mutually_exclusive_group()
    spread.add_argument(
        "--origins", type=int, metavar="N", help="N origins per series, spread evenly (default 100)"
    )
    spread.add_argument(
        "--every", type=int, metavar="K", help="an origin every K bars, counted back from the end"
    )
    add_date_range_options(parser)
    parser.add_argument(
        "--paths", type=int, default=PATHS, metavar="P", help=f"sample paths per origin (default {PATHS})"
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="also score kronos-calibrated: at each origin, the forecast calibrated on the series' own "
        "bars before it (as `kronos forecast --calibrate` does)",
    )
    parser.add_argument(
        "--out", default="kronos-evaluation", metavar="DIR", help="report folder (default kronos-evaluation)"
    )
    parser.add_argument("--html", action="store_true", help="also write report.html")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument(
        "--baselines",
        default=",".join(BASELINES),
        help=f"comma-separated baselines to run beside the model (default {','.join(BASELINES)}; 'none' for none)",
    )
    parser.add_argument(
        "--baselines-only", action="store_true", help="evaluate the baselines without a model"
    )
    add_sampling_options(parser)
    parser.add_argument(
        "--top-k",
        type=int,
        default=0,
        help="top-k sampling, 0 = off (default 0); with --cross-section: the series held long (and short) by "
        "the books, default a fifth of the universe (sampling then uses no top-k)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for sampling and the bootstrap (default 0)")
    parser.add_argument("--batch-size", type=int, default=32, help="origins per model batch (default 32)")
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals (default 1000)"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    add_context_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_engine_arguments(parser)
    add_cross_section_arguments(parser)
    return parser


def _baseline_names(text: str) -> list[str]:
    if text.strip().lower() == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise CommandError(f"--baselines: unknown {unknown}; choose from {list(BASELINES)} or 'none'")
    return names


def backtest_settings(args: argparse.Namespace, predictor: KronosPredictor | None) -> Backtest:
    """The backtest the parsed options describe, checked; sampling as `predictor`'s unless told
    (the package's for None: the checks come before the model loads)."""
    baselines = _baseline_names(args.baselines)
    if args.bootstrap < 1:
        raise CommandError(f"--bootstrap must be a positive number of resamples, got {args.bootstrap}")
    start, end = date_range(args)
    return Backtest(
        steps=args.steps,
        lookback=args.lookback,
        origins=100 if args.origins is None and args.every is None else args.origins,
        every=args.every,
        sampling=chosen_sampling(args, predictor, args.top_k),
        baselines=baselines,
        calibrate=args.calibrate,
        batch_size=args.batch_size,
        start=start,
        end=end,
    )


def run_evaluate(args: argparse.Namespace) -> int:
    """Run the backtest described by parsed arguments, write the report, print where it is."""
    if args.cross_section:
        return run_cross_section(args)
    backtest = backtest_settings(args, None)
    ray_options = engine_options(args)
    check_output_dir(args.out, "--out")
    series = read_series(args.files, id_column=args.id_column)
    model = args.model or DEFAULT_MODEL
    predictor, engine = None, None
    if not args.baselines_only:
        on_ray = args.engine == "ray"
        predictor = KronosPredictor.from_pretrained(  # with Ray, for its lookback, context and sampling
            model, args.tokenizer, device="cpu" if on_ray else args.device, **predictor_options(args)
        )
        if on_ray:
            engine = RayEngine(
                model, args.tokenizer, predictor_options(args), progress=not args.quiet, **ray_options
            )
        backtest = backtest_settings(args, predictor)
    result = evaluate(series, predictor, backtest, engine=engine, progress=not args.quiet)
    written = result.write_report(args.out, html=args.html, plots=not args.no_plots, n_boot=args.bootstrap)
    summary = result.summary("close", n_boot=args.bootstrap)
    columns = [
        c
        for c in ("mae", "crps", "crps_ratio", "crps_dm_p", "mae_dm_p", "coverage_80", "coverage_95", "brier")
        if c in summary
    ]
    print(summary[columns].to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"report: {written['report.md']}")
    return 0
