"""The `kronos` command: `kronos train`, `kronos forecast`, `kronos evaluate`, `kronos serve` and `kronos mcp`.

Each subcommand is a row of SUBCOMMANDS: its name, help and description, the function that adds
its arguments and the one that runs it; a new one is added by writing those two (in a module of
its own, with what subcommands share in `kronos.commands.options`) and a row.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from kronos.commands.evaluate import add_evaluate_arguments, run_evaluate
from kronos.commands.forecast import add_forecast_arguments, run_forecast
from kronos.commands.mcp import add_mcp_arguments, run_mcp
from kronos.commands.options import CommandError
from kronos.commands.serve import add_serve_arguments, run_serve
from kronos.commands.train import add_train_arguments, run_train
from kronos.forecasting.pretrained import DEFAULT_MODEL


class Parser(argparse.ArgumentParser):
    """argparse with a usage error on one line and exit status 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
        "writes a report with tables, plots and the raw per-origin results. With --cross-section, ranks a "
        "universe at each rebalance date and scores IC, RankIC and top-k and long-short books with costs "
        "against momentum, reversal, low-volatility and random signals.",
        add_evaluate_arguments,
        run_evaluate,
    ),
    Subcommand(
        "serve",
        "run the forecasting service and its web page",
        "Serve forecasts over HTTP (JSON, CSV uploads, many series at once, micro-batched) "
        "with a web page at / to chart them. Needs the serve extra: pip install 'kronos-forecasting[serve]'.",
        add_serve_arguments,
        run_serve,
    ),
    Subcommand(
        "mcp",
        "serve the forecasting tools to an AI agent over MCP (stdio)",
        "Serve Model Context Protocol tools (forecast, evaluate, models) over stdin and stdout, for an "
        "agent that starts this command (Claude Desktop, Claude Code, VS Code, Cursor: docs/mcp.md). Files "
        "are read from under --root only. Needs the mcp extra: pip install 'kronos-forecasting[mcp]'.",
        add_mcp_arguments,
        run_mcp,
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
