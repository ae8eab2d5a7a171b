"""The MCP server: the tools of `kronos.mcpserver.tools` on the official MCP Python SDK.

`build_server(toolbox)` registers `forecast`, `evaluate` and `models` on an `MCPServer`; `kronos
mcp` runs it over stdio (`run_stdio`), and `kronos serve` mounts its streamable-HTTP endpoint
inside the service's app (`mount`), behind the service's middleware and API key. A tool's work
runs in a worker thread; its progress goes out as MCP progress notifications, and a cancelled
call stops at its next generation step or batch. Refusals come back as tool errors (isError)
with the library's and the command's messages; the server keeps answering.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field
from starlette.applications import Starlette

from kronos.mcpserver.tools import Toolbox
from kronos.serve.schemas import Bar
from kronos.version import __version__

REFUSALS = (ValueError, TypeError, OverflowError, OSError)  # what bad arguments and files raise
INSTRUCTIONS = (
    "Kronos forecasts OHLCV bars (open, high, low, close, volume, amount) with a local model, offline. "
    "`forecast` gives per-step quantile bands, P(close ends above the last close) and expected volatility; "
    "`evaluate` backtests the model against naive baselines on a file and says whether it beats them; "
    "`models` lists the models and the caps. Files are read from under the server's root folder only."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


InlineBars = Annotated[
    list[Bar] | None,
    Field(description="the history, oldest first, as the service's JSON bars (or give file)"),
]
FileOrBars = Annotated[
    str | None, Field(description="a CSV or Parquet file under the server's root (or give bars)")
]
QuantileLevels = Annotated[
    list[float] | None,
    Field(description="levels strictly inside (0, 1); default the median and 50/80/95% bands"),
]
ForecastSeed = Annotated[
    int | None, Field(description="seed of the sampling (default 0); null for fresh draws")
]
ModelChoice = Annotated[
    str | None, Field(description="a model from the models tool (default: the served one)")
]
"""The tools' arguments that take more than a line to describe; `model` is every tool's."""


class Cancelled(Exception):
    """The client cancelled the call: raised in the worker at its next step or batch."""


def build_server(toolbox: Toolbox) -> MCPServer:
    """An MCP server with the three tools over `toolbox`."""
    server: MCPServer = MCPServer(
        "kronos", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    worker = _Worker()

    @server.tool(annotations=READ_ONLY, structured_output=False)
    async def forecast(
        ctx: Context,
        steps: Annotated[int, Field(description="future bars to forecast")],
        bars: InlineBars = None,
        file: FileOrBars = None,
        paths: Annotated[int, Field(description="sampled paths (default 20)")] = 20,
        quantile_levels: QuantileLevels = None,
        seed: ForecastSeed = 0,
        calibrate: Annotated[
            bool, Field(description="calibrate the bands on the series' own past forecasts")
        ] = False,
        model: ModelChoice = None,
    ) -> CallToolResult:
        """Forecast the next `steps` bars of one series: per step the quantiles and mean of every
        column, P(close ends above the last close) and the expected volatility."""
        work = functools.partial(
            toolbox.forecast, bars, file, steps, paths, quantile_levels, seed, calibrate, model
        )
        answer = await worker.run(ctx, work)
        return CallToolResult(
            content=[TextContent(type="text", text=forecast_text(answer))], structured_content=answer
        )

    @server.tool(annotations=READ_ONLY, structured_output=False)
    async def evaluate(
        ctx: Context,
        file: Annotated[str, Field(description="a CSV or Parquet file under the server's root")],
        steps: Annotated[int, Field(description="bars forecast at each origin")],
        origins: Annotated[
            int | None, Field(description="origins per series, spread evenly (default 100)")
        ] = None,
        paths: Annotated[int, Field(description="sampled paths per origin (default 20)")] = 20,
        seed: Annotated[int, Field(description="seed of the sampling and the bootstrap (default 0)")] = 0,
        calibrate: Annotated[
            bool, Field(description="also score the forecasts calibrated on each origin's past")
        ] = False,
        model: ModelChoice = None,
    ) -> CallToolResult:
        """Rolling-origin backtest of the model against naive baselines on a file, as `kronos
        evaluate`: the summary table (close) and the report's verdict."""
        work = functools.partial(toolbox.evaluate, file, steps, origins, paths, seed, calibrate, model)
        answer = await worker.run(ctx, work)
        return CallToolResult(
            content=[TextContent(type="text", text=evaluate_text(answer))], structured_content=answer
        )

    @server.tool(annotations=READ_ONLY, structured_output=False)
    async def models() -> CallToolResult:
        """The models available offline with their context, lookback and bar spacings, and this server's caps."""
        answer = toolbox.models()
        lines = [
            f"{m['name']} ({m['source']}): context {m['max_context']}, lookback {m['lookback']}, "
            f"bar spacings {', '.join(m['frequencies']) or 'unknown'}"
            for m in answer["models"]
        ]
        return CallToolResult(
            content=[TextContent(type="text", text="\n".join(lines))], structured_content=answer
        )

    return server


class _Worker:
    """Runs tool work in worker threads, forwarding its progress to the client and stopping it
    at its next step once the call is cancelled."""

    async def run(self, ctx: Context, work: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        stop = threading.Event()

        def report(done: float, total: float | None, message: str) -> None:
            if stop.is_set():
                raise Cancelled("the call was cancelled")
            anyio.from_thread.run(ctx.report_progress, done, total, message)

        def call() -> dict[str, Any]:
            return work(progress=report)

        try:
            return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            stop.set()
            raise
        except REFUSALS as err:
            raise ToolError(" ".join(str(err).split())) from err


def forecast_text(answer: dict[str, Any]) -> str:
    """What an agent can quote: the last close, the median move at the horizon, its bands and P(up)."""
    last, steps = answer["last_close"], answer["steps"]
    median = answer["median"]["close"][-1]
    bands = answer["quantiles"]["close"]
    levels = sorted(bands, key=float)
    pairs = [(lo, hi) for lo, hi in zip(levels, reversed(levels)) if float(lo) < 0.5 < float(hi)]
    band_text = "; ".join(
        f"{round((float(hi) - float(lo)) * 100)}% band {_number(bands[lo][-1])} to {_number(bands[hi][-1])}"
        for lo, hi in pairs
    )
    move = "n/a" if median is None or not last else f"{(median / last - 1) * 100:+.2f}%"
    calibrated = " (calibrated)" if answer["calibrated"] else ""
    return (
        f"{answer['series']}: last close {_number(last)} ({answer['history_bars']} bars of history). "
        f"In {steps} bars ({answer['timestamps'][-1]}), median close {_number(median)} ({move}){calibrated}; "
        f"{band_text or 'no central bands asked for'}. "
        f"P(close above {_number(last)}) = {answer['prob_up'][-1]:.2f}; "
        f"expected volatility {_number(answer['expected_volatility'][-1])}. "
        f"Model {answer['model']}, {answer['paths_sampled']} paths, seed {answer['seed']}."
    )


def evaluate_text(answer: dict[str, Any]) -> str:
    s = answer["settings"]
    head = (
        f"{s['n_origins']} origins of {answer['file']}, {s['steps']} steps, {s['paths']} paths, "
        f"lookback {s['lookback']}, model {answer['model']}."
    )
    return "\n".join([head, *answer["verdict"]])


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


async def run_stdio(toolbox: Toolbox) -> None:
    """Serve the tools over stdin and stdout until the client closes them."""
    await build_server(toolbox).run_stdio_async()


def mount(app: Starlette, toolbox: Toolbox, path: str, host: str) -> None:
    """Serve the tools over streamable HTTP at `path` inside `app` (so that its middleware, the API
    key included, covers them), the SDK's session manager running within the app's lifespan.
    `host` is the address the app listens on: on loopback the SDK refuses other Host headers."""
    server = build_server(toolbox)
    endpoint = server.streamable_http_app(streamable_http_path=path, host=host)
    app.router.routes.extend(endpoint.routes)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with server.session_manager.run(), inner(app) as state:
            yield state

    app.router.lifespan_context = lifespan
