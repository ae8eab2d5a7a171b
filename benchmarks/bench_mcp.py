"""How long an agent waits for `forecast` from `kronos mcp`: the README's example
(examples/sp500_daily.csv, 20 steps, the default 20 paths, seed 0) through the MCP SDK's own
client over stdio, timed from the call to the answer after start-up (initialize), the first
call and the next ones apart.

    python benchmarks/bench_mcp.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
README_FORECAST = {"file": "sp500_daily.csv", "steps": 20, "paths": 20, "seed": 0}


async def measure(repeat: int) -> tuple[float, list[float]]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "kronos", "mcp", "--root", str(EXAMPLES)]
    )
    started = time.perf_counter()
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        startup = time.perf_counter() - started
        calls = []
        for _ in range(repeat):
            begun = time.perf_counter()
            result = await session.call_tool("forecast", README_FORECAST)
            calls.append(time.perf_counter() - begun)
            if result.is_error:
                raise SystemExit(f"forecast failed: {result.content[0].text}")
    return startup, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="forecast calls in the session (default 5)")
    args = parser.parse_args()
    startup, calls = anyio.run(measure, args.repeat)
    print(f"start-up (spawn to initialized): {startup:.2f} s")
    print(f"forecast, README example, first call: {calls[0]:.3f} s")
    if len(calls) > 1:
        print(
            f"forecast, next {len(calls) - 1} calls: median {statistics.median(calls[1:]):.3f} s, max {max(calls[1:]):.3f} s"
        )


if __name__ == "__main__":
    main()
