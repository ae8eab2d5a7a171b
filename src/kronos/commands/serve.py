"""`kronos serve`: its arguments and how it starts. Imports the service only when it runs, so that
`kronos --help` works without the serve extra."""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import sys
from typing import Any

from kronos.commands.options import CommandError, add_model_arguments
from kronos.forecasting.predictor import KronosPredictor
from kronos.serve.guard import ANY_HOST, READ_TIMEOUT_S  # the standard library's only

API_KEY_ENV = "KRONOS_API_KEY"
MCP_PATH = "/v1/mcp"  # under /v1, so behind the API key
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
SERVE_PACKAGES = ("fastapi", "uvicorn", "multipart", "prometheus_client")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--allowed-host", action="append", default=[], metavar="NAME",
        help="a host name clients reach the server by, besides localhost/127.0.0.1/[::1] and --host "
        "(repeatable; '*' for any). Requests whose Host header names none of them are refused: DNS rebinding",
    )  # fmt: skip
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"require this key on every /v1 route (default: ${API_KEY_ENV}); clients send "
        "'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
    )
    batching = parser.add_argument_group("micro-batching")
    batching.add_argument(
        "--max-batch",
        type=int,
        default=32,
        help="series per generation call (default 32; 1 turns batching off)",
    )
    batching.add_argument(
        "--batch-wait-ms", type=float, default=5.0,
        help="how long the first request of a batch waits for others (default 5 ms)",
    )  # fmt: skip
    batching.add_argument(
        "--max-queue", type=int, default=1024, help="series waiting before requests get 503 (default 1024)"
    )
    add_limit_arguments(parser, "caps on one request (a request over one gets a 4xx naming it)")
    parser.add_argument(
        "--root", default=".", metavar="DIR",
        help="folder whose files the MCP tools at /v1/mcp may read (default: the working directory)",
    )  # fmt: skip
    parser.add_argument(
        "--read-timeout", type=float, default=READ_TIMEOUT_S,
        help=f"seconds a request body may take to arrive, in all (default {READ_TIMEOUT_S:g}; then 408)",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default info: one access line per request)",
    )  # fmt: skip


def add_limit_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """The caps on one request (`kronos.serve.schemas.Limits`), as `kronos serve` and `kronos mcp` take them."""
    caps = parser.add_argument_group(title)
    caps.add_argument("--max-bars", type=int, default=10_000, help="bars per series (default 10000)")
    caps.add_argument("--max-steps", type=int, default=256, help="forecast steps (default 256)")
    caps.add_argument("--max-paths", type=int, default=256, help="sampled paths per series (default 256)")
    caps.add_argument("--max-series", type=int, default=64, help="series per batch request (default 64)")
    caps.add_argument(
        "--max-past-forecasts", type=int, default=1000,
        help="past forecasts a calibrated request may run, over all its series (default 1000; "
        "a series calibrates on up to 200)",
    )  # fmt: skip
    caps.add_argument("--max-body-mb", type=float, default=16.0, help="request body in MiB (default 16)")


def limits(args: argparse.Namespace) -> Any:
    """The caps the options set, as a `kronos.serve.schemas.Limits`."""
    from kronos.serve.schemas import Limits

    return Limits(
        max_bars=args.max_bars,
        max_steps=args.max_steps,
        max_paths=args.max_paths,
        max_series=args.max_series,
        max_past_forecasts=args.max_past_forecasts,
        max_body_bytes=int(args.max_body_mb * 2**20),
    )


def check_serve_arguments(args: argparse.Namespace) -> None:
    """Every option checked, and the serve extra installed, before the model loads."""
    for flag in (
        "max_batch", "max_queue", "max_bars", "max_steps", "max_paths", "max_series", "max_past_forecasts", "threads"
    ):  # fmt: skip
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise CommandError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if not 0 < args.port < 65536:
        raise CommandError(f"--port must be between 1 and 65535, got {args.port}")
    if not args.batch_wait_ms >= 0 or not args.max_body_mb > 0:
        raise CommandError("--batch-wait-ms must be >= 0 and --max-body-mb > 0")
    if args.api_key is not None and not args.api_key.strip():
        raise CommandError(f"the API key (--api-key or ${API_KEY_ENV}) is empty")
    if not args.read_timeout > 0:
        raise CommandError(f"--read-timeout must be > 0 seconds, got {args.read_timeout}")
    if any(not name.strip() for name in args.allowed_host):
        raise CommandError("--allowed-host must name a host, got an empty name")
    if args.host in WILDCARD_HOSTS and not args.allowed_host:
        raise CommandError(
            f"--host {args.host!r} listens on every address, but the server answers only requests whose Host "
            "header names it: pass the names clients use, --allowed-host NAME (repeatable; '*' for any)"
        )
    missing = [name for name in SERVE_PACKAGES if _absent(name)]
    if missing:
        raise ImportError(f"kronos serve needs {', '.join(missing)}: pip install 'kronos-forecasting[serve]'")


def run_serve(args: argparse.Namespace) -> int:
    check_serve_arguments(args)
    import uvicorn

    from kronos.serve.app import ServeConfig, create_app

    predictor = KronosPredictor.from_pretrained(
        args.model, args.tokenizer, device=args.device, num_threads=args.threads
    )
    config = ServeConfig(
        args.model, args.api_key, limits(args), args.max_batch, args.batch_wait_ms, args.max_queue,
        allowed_hosts(args), args.read_timeout,
    )  # fmt: skip
    if args.api_key is None and not _loopback(args.host):
        print(
            f"kronos serve: warning: listening on {args.host} without an API key: anyone who can reach "
            f"this port can use the model (set --api-key or ${API_KEY_ENV})",
            file=sys.stderr,
        )
    if args.api_key is None and ANY_HOST in args.allowed_host:
        print(
            "kronos serve: warning: --allowed-host '*' without an API key: any web page a browser on this "
            f"network opens can reach the model by DNS rebinding (set --api-key or ${API_KEY_ENV})",
            file=sys.stderr,
        )
    batching = f"batches of up to {args.max_batch} series" if args.max_batch > 1 else "micro-batching off"
    print(
        f"kronos serve: {args.model} (context {predictor.max_context}, lookback {predictor.lookback}) on "
        f"http://{args.host}:{args.port}/, {batching}, API key {'required' if args.api_key else 'off'}",
        file=sys.stderr,
    )
    app = create_app(predictor, config)
    mount_mcp(app, predictor, config, args)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def mount_mcp(app: Any, predictor: KronosPredictor, config: Any, args: argparse.Namespace) -> None:
    """The MCP tools at /v1/mcp (under the API key), when the mcp extra is installed."""
    if _absent("mcp"):
        print(
            "kronos serve: MCP tools off: pip install 'kronos-forecasting[mcp]' to serve them at /v1/mcp",
            file=sys.stderr,
        )
        return
    from kronos.mcpserver.server import mount
    from kronos.mcpserver.tools import Toolbox, ToolSettings

    settings = ToolSettings.at(args.root, config.limits)
    mount(app, Toolbox(predictor, settings, args.model), MCP_PATH, args.host)
    print(
        f"kronos serve: MCP tools at http://{args.host}:{args.port}{MCP_PATH}, files under {settings.root}",
        file=sys.stderr,
    )


def allowed_hosts(args: argparse.Namespace) -> tuple[str, ...]:
    """The names besides loopback the server answers to: --allowed-host, and --host where it is one address."""
    named = [] if args.host in WILDCARD_HOSTS or _loopback(args.host) else [args.host]
    return tuple(dict.fromkeys([*named, *args.allowed_host]))


def _absent(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
