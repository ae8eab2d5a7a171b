"""`kronos evaluate --cross-section`: the command-line front end of `evaluate_cross_section`.

Its options are added to `kronos evaluate` (`add_cross_section_arguments`); `run_evaluate`
hands a `--cross-section` run to `run_cross_section`.
"""

from __future__ import annotations

import argparse

from kronos.commands.options import (
    CommandError,
    check_positive,
    chosen_sampling,
    date_range,
    engine_options,
    predictor_options,
)
from kronos.evaluation.baselines import BASELINES
from kronos.evaluation.cross_section import COST_BPS, CrossSection, check_top_k, evaluate_cross_section
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.pretrained import DEFAULT_MODEL
from kronos.forecasting.series import Series
from kronos.forecasting.tables import TableLayout, load_series
from kronos.io import check_output_dir
from kronos.ray.engine import RayEngine

# single-series options that mean nothing to a cross-section: refused rather than ignored
SINGLE_SERIES_ONLY = {
    "calibrate": "--calibrate",
    "origins": "--origins",
    "every": "--every",
    "html": "--html",
}


def add_cross_section_arguments(parser: argparse.ArgumentParser) -> None:
    """--cross-section and its options (--rebalance, --cost-bps, --start, --end; --top-k, --steps/--horizon
    and --id-column are evaluate's own)."""
    group = parser.add_argument_group("cross-section (--cross-section)")
    group.add_argument(
        "--cross-section",
        action="store_true",
        help="rank a universe (a long table with --id-column) at each rebalance date by the model's signals and "
        "by momentum, reversal, low-volatility and random baselines; score IC, RankIC, quantiles and books with costs",
    )
    group.add_argument(
        "--rebalance",
        type=int,
        metavar="K",
        help="with --cross-section: bars between rebalance dates (default: the horizon)",
    )
    group.add_argument(
        "--cost-bps",
        type=float,
        default=COST_BPS,
        metavar="C",
        help=f"with --cross-section: cost per unit of weight bought or sold, basis points (default {COST_BPS:g})",
    )


def cross_section_settings(args: argparse.Namespace, predictor: KronosPredictor | None) -> CrossSection:
    """The cross-section the parsed options describe, checked with the flags named; sampling as
    `predictor`'s unless told (the package's for None: the checks come before the model loads)."""
    given = [flag for name, flag in SINGLE_SERIES_ONLY.items() if getattr(args, name)]
    if args.baselines != ",".join(BASELINES):
        given.append("--baselines")
    if given:
        raise CommandError(f"{', '.join(given)}: single-series options, not used by --cross-section")
    if not args.id_column:
        raise CommandError("--cross-section needs --id-column, the column naming each series of the universe")
    check_positive(args, "rebalance", "lookback", "paths", "batch_size")
    if args.top_k < 0:
        raise CommandError(
            f"--top-k must be a positive number (0: a fifth of the universe), got {args.top_k}"
        )
    if not 0 <= args.cost_bps < float("inf"):
        raise CommandError(
            f"--cost-bps must be a finite number of basis points, 0 or more, got {args.cost_bps}"
        )
    start, end = date_range(args)
    return CrossSection(
        horizon=args.steps,
        rebalance=args.rebalance,
        top_k=args.top_k or None,
        cost_bps=args.cost_bps,
        lookback=args.lookback,
        start=start,
        end=end,
        sampling=chosen_sampling(args, predictor),
        batch_size=args.batch_size,
    )


def read_universe(args: argparse.Namespace) -> list[Series]:
    """The universe's series from the files, split by --id-column (named in the error when missing)."""
    try:
        series = load_series(args.files, TableLayout(args.id_column))
    except ValueError as err:
        if "no id column" in str(err):
            raise CommandError(f"--id-column {args.id_column!r}: {err}") from err
        raise
    if args.top_k:
        check_top_k(args.top_k, len(series), "--top-k")
    return series


def run_cross_section(args: argparse.Namespace) -> int:
    """Evaluate the universe as the options say, write the report, print the summary and where it is."""
    settings = cross_section_settings(args, None)
    ray_options = engine_options(args)
    check_output_dir(args.out, "--out")
    universe = read_universe(args)
    predictor, engine = None, None
    if not args.baselines_only:
        model = args.model or DEFAULT_MODEL
        device = "cpu" if args.engine == "ray" else args.device
        predictor = KronosPredictor.from_pretrained(
            model, args.tokenizer, device=device, **predictor_options(args)
        )
        if args.engine == "ray":
            engine = RayEngine(
                model, args.tokenizer, predictor_options(args), progress=not args.quiet, **ray_options
            )
        settings = cross_section_settings(args, predictor)
    result = evaluate_cross_section(universe, predictor, settings, engine=engine, progress=not args.quiet)
    written = result.write_report(args.out, plots=not args.no_plots)
    print(result.headline())
    print(f"report: {written['report.md']}")
    return 0
