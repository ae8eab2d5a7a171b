"""The `kronos` command line."""

from __future__ import annotations

import argparse
import sys

from .evaluation.command import add_evaluate_arguments, run_evaluate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kronos", description="Kronos, the foundation model for financial candlesticks"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    evaluate = commands.add_parser(
        "evaluate",
        help="rolling-origin backtest of a model against naive baselines",
        description="Rolling-origin backtest of a model against persistence, drift and a Gaussian random walk; "
        "writes a report with tables, plots and the raw per-origin results.",
    )
    add_evaluate_arguments(evaluate)
    evaluate.set_defaults(handler=run_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as err:
        print(f"kronos {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
