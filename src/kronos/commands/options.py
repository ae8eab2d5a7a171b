"""What several subcommands share: `CommandError` and the options that describe the data files,
name a model, choose how it decodes and where it runs.

Each `add_*` function adds a group of options to a (sub)parser; the others turn parsed options
into the plain values the library takes, raising `CommandError` naming the flag.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

import pandas as pd

from kronos.engine.sampling import TEMPERATURE, TOP_P, Sampling
from kronos.forecasting.core import MAX_CONTEXT, NORMALIZE_ON, WINDOWS
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.pretrained import DEFAULT_MODEL
from kronos.forecasting.tables import TableLayout
from kronos.ray.engine import ENGINES


class CommandError(Exception):
    """A user error: printed as one line, exit status 2."""


def check_positive(args: argparse.Namespace, *names: str) -> None:
    """CommandError naming the first of the options `names` (attribute names) given as 0 or less."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise CommandError(f"--{name.replace('_', '-')} must be a positive number, got {value}")


# --- the data files -------------------------------------------------------------------------------


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """--id-column, --timestamp-column and --columns: the layout of the data files."""
    parser.add_argument("--id-column", help="column naming the symbol, for a long table of several symbols")
    parser.add_argument(
        "--timestamp-column",
        help="column of timestamps, or a date and a time column as Date,Time (default: timestamps/date/datetime/"
        "time, and Date + Time where both are there)",
    )
    parser.add_argument(
        "--columns",
        help='map fields to the file\'s columns, e.g. "open=Open,close=Adj Close"; quote a name holding a comma: '
        "'close=\"Close, adj.\"' (default: the fields' own names, in any case)",
    )


def parse_column_map(text: str | None) -> dict[str, str]:
    """'open=Open,close=Adj Close' -> {'open': 'Open', 'close': 'Adj Close'}; entries are split at
    commas outside quotes, and quotes around a field or name are dropped ("close='Adj Close'")."""
    if not text:
        return {}
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace, lexer.whitespace_split, lexer.commenters, lexer.escape = ",", True, "", ""
    try:
        items = [item.strip() for item in lexer]
    except ValueError as err:  # an unclosed quote
        raise CommandError(f"--columns {text!r}: {err}; close the quote around the column name") from err
    mapping = {}
    for item in items:
        if "=" not in item:
            raise CommandError(f"--columns entry {item!r} must look like field=FileColumn, e.g. close=Last")
        field, column = (part.strip() for part in item.split("=", 1))
        mapping[field.lower()] = column
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


def add_date_range_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--start and --end: score only the forecasts whose bars lie within these dates."""
    parser.add_argument(
        "--start",
        metavar="DATE",
        help="score only origins whose forecast bars start on or after DATE (ISO, e.g. 2024-01-31; "
        "with --cross-section: the first rebalance date); earlier bars are still history",
    )
    parser.add_argument(
        "--end",
        metavar="DATE",
        help="score only origins whose forecast bars end on or before DATE (a date takes in its whole day)",
    )


def date_range(args: argparse.Namespace) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """--start and --end as timestamps, checked: dates, and an end not before the start."""
    dates = []
    for flag in ("start", "end"):
        text = getattr(args, flag)
        try:
            stamp = None if text is None else pd.Timestamp(text)
        except ValueError as err:
            raise CommandError(
                f"--{flag} {text!r} is not a date: give an ISO date such as 2024-01-31"
            ) from err
        if text is not None and stamp is pd.NaT:
            raise CommandError(f"--{flag} {text!r} is not a date: give an ISO date such as 2024-01-31")
        dates.append(stamp)
    start, end = dates
    if start is not None and end is not None and end < start:
        raise CommandError(f"--end {args.end} is before --start {args.start}")
    return start, end


# --- the model and how it decodes -----------------------------------------------------------------


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
        help="CPU threads (default: 1 for models under 5M parameters, else up to torch's default, fewer while they run slower (beside a busy core))",
    )


def add_context_options(parser: argparse.ArgumentParser) -> None:
    """--max-context and --normalize, as `kronos forecast` and `kronos evaluate` both take them,
    and the decoding options."""
    parser.add_argument(
        "--max-context",
        type=context_bars,
        help=f"model context window in bars (default: the model's own; a larger one is capped to it with "
        f"a warning; at most {MAX_CONTEXT:,})",
    )
    parser.add_argument(
        "--normalize",
        choices=NORMALIZE_ON,
        default="history",
        help="normalise each forecast on its whole lookback (default, as upstream) or only on the bars "
        "within the model's context",
    )
    add_decoding_options(parser)


def context_bars(text: str) -> int:
    """--max-context's value: a whole number of bars from 1 to MAX_CONTEXT."""
    try:
        bars = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of bars, got {text!r}") from None
    if not 1 <= bars <= MAX_CONTEXT:
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {MAX_CONTEXT:,} bars, got {bars:,} (default: the model's own context)"
        )
    return bars


def add_decoding_options(parser: argparse.ArgumentParser) -> None:
    """--dtype, --window, --anchor and --center, how the model decodes (KronosPredictor's keywords of
    the same names)."""
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="weights and activations (default float32; bfloat16 halves the bytes of the weights, "
        "see docs/performance.md for when it pays)",
    )
    parser.add_argument(
        "--window",
        choices=WINDOWS,
        default="exact",
        help="how a full context window slides: exact (default, upstream's numbers) passes it again "
        "at every step; streaming keeps the cached tokens that stay, faster past the context",
    )
    parser.add_argument(
        "--anchor",
        action=argparse.BooleanOptionalAction,
        help="start every forecast from the last close rather than from the tokenizer's reconstruction "
        "of it (default: the model's, from its kronos.json; off for the published models)",
    )
    parser.add_argument(
        "--center",
        action=argparse.BooleanOptionalAction,
        help="keep the median of uncalibrated forecasts at the last close, the model's spread and shape "
        "about it (default: the model's, from its kronos.json: on for kronos-default; off for the "
        "published models); calibrations fit their own centre, and --cross-section ranks the model's own paths",
    )


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """-T/--temperature and --top-p, unset meaning the model's own (`KronosPredictor.default_sampling`)."""
    parser.add_argument(
        "-T",
        "--temperature",
        type=float,
        help="sampling temperature (default: the model's, from its kronos.json; else the package's "
        f"{TEMPERATURE:g})",
    )
    parser.add_argument(
        "--top-p",
        type=float,
        help="nucleus sampling threshold (default: the model's, from its kronos.json; else the package's "
        f"{TOP_P:g})",
    )


def chosen_sampling(args: argparse.Namespace, predictor: KronosPredictor | None, top_k: int = 0) -> Sampling:
    """The sampling the options choose: --temperature and --top-p where given, else the model's
    (`KronosPredictor.sampling_with`; the package's without a model), with --paths and --seed."""
    given = dict(T=args.temperature, top_k=top_k, top_p=args.top_p, sample_count=args.paths, seed=args.seed)
    if predictor is not None:
        return predictor.sampling_with(**given)
    return Sampling(**{k: v for k, v in given.items() if v is not None})


def predictor_options(args: argparse.Namespace) -> dict[str, Any]:
    """The KronosPredictor keywords of the context and decoding options."""
    return dict(
        max_context=args.max_context,
        normalize_on=args.normalize,
        dtype=args.dtype,
        window=args.window,
        anchor=args.anchor,
        center=args.center,
    )


# --- where the model runs -------------------------------------------------------------------------


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--engine, --address, --actors and --gpus-per-actor (`kronos forecast` and `kronos evaluate`)."""
    group = parser.add_argument_group("engine")
    group.add_argument(
        "--engine", choices=ENGINES, default="local",
        help="run the model here (default) or on a Ray cluster (pip install 'kronos-forecasting[ray]')",
    )  # fmt: skip
    group.add_argument(
        "--address",
        help="with --engine ray: 'auto' (the cluster this machine joined) or ray://HOST:PORT (default: start one here)",
    )
    group.add_argument(
        "--actors", type=int,
        help="with --engine ray: actors, each loading the model once (default: as many as the cluster's CPUs or GPUs hold)",
    )  # fmt: skip
    group.add_argument(
        "--gpus-per-actor", type=float, default=0.0,
        help="with --engine ray: GPUs per actor, e.g. 1, or 0.5 for two actors per GPU (default 0: CPUs)",
    )  # fmt: skip


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """The RayEngine keywords of the engine options (none for --engine local), checked with the
    flags named; --device is refused with --engine ray (actors use a GPU with --gpus-per-actor)."""
    if args.engine == "local":
        given = [flag for flag, value in (("--address", args.address), ("--actors", args.actors)) if value]
        given += ["--gpus-per-actor"] if args.gpus_per_actor else []
        if given:
            raise CommandError(f"{' and '.join(given)} need{'s' if len(given) == 1 else ''} --engine ray")
        return {}
    if args.actors is not None and args.actors <= 0:
        raise CommandError(f"--actors must be a positive number, got {args.actors}")
    if not args.gpus_per_actor >= 0:
        raise CommandError(f"--gpus-per-actor must be 0 or more, got {args.gpus_per_actor}")
    if args.device:
        raise CommandError("--device applies to --engine local; Ray actors use a GPU with --gpus-per-actor")
    return dict(address=args.address, num_actors=args.actors, num_gpus_per_actor=args.gpus_per_actor)
