"""`kronos mcp`: the MCP tools over stdio, for an agent that starts the server itself. Imports the
SDK only when it runs, so that `kronos --help` works without the mcp extra."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

from kronos.commands.options import CommandError, add_model_arguments
from kronos.commands.serve import add_limit_arguments, limits
from kronos.forecasting.predictor import KronosPredictor

LIMIT_FLAGS = ("max_bars", "max_steps", "max_paths", "max_series", "max_past_forecasts", "threads")


def add_mcp_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument(
        "--root", default=".", metavar="DIR",
        help="folder whose files the tools may read; paths outside it are refused (default: the working directory)",
    )  # fmt: skip
    add_limit_arguments(parser, "caps on one tool call (a call over one is refused, naming it)")


def check_mcp_arguments(args: argparse.Namespace) -> None:
    """Every option checked, and the mcp extra installed, before the model loads."""
    for flag in LIMIT_FLAGS:
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise CommandError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if not args.max_body_mb > 0:
        raise CommandError(f"--max-body-mb must be > 0, got {args.max_body_mb}")
    if not Path(args.root).expanduser().is_dir():
        raise CommandError(f"--root {args.root!r} is not a folder")
    if importlib.util.find_spec("mcp") is None:
        raise ImportError("kronos mcp needs the MCP SDK: pip install 'kronos-forecasting[mcp]'")


def run_mcp(args: argparse.Namespace) -> int:
    """Load the model, then serve the tools on stdin/stdout until the client closes them. Logs go
    to stderr: stdout carries the protocol alone."""
    check_mcp_arguments(args)
    import anyio

    from kronos.mcpserver.server import run_stdio
    from kronos.mcpserver.tools import Toolbox, ToolSettings

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="kronos mcp: %(message)s")
    settings = ToolSettings.at(args.root, limits(args))
    predictor = KronosPredictor.from_pretrained(
        args.model, args.tokenizer, device=args.device, num_threads=args.threads
    )
    print(
        f"kronos mcp: {args.model} (context {predictor.max_context}, lookback {predictor.lookback}) on stdio; "
        f"files under {settings.root}",
        file=sys.stderr,
    )
    anyio.run(run_stdio, Toolbox(predictor, settings, args.model))
    return 0
