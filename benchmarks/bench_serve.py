"""Throughput and latency of `kronos serve` with micro-batching on and off, side by side.

Two servers run at once on 127.0.0.1 (nothing else is contacted): one with the default batching
(`--max-batch 32`, `--batch-wait-ms 5`) and one with `--max-batch 1`, which runs every request
alone. For each number of concurrent clients (1, 4, 16), each client posts single-series
forecasts back to back over its own connection (sp500_daily windows of the model's lookback, 20
steps, 20 paths, seed 0) until `--requests` have been answered; runs alternate between the two
servers and the fastest of `--repeat` runs is kept. Reported: requests per second, median and
95th-percentile latency, and the mean series per generation call (from /metrics). The time from
starting `kronos serve` to its first 200 on /readyz is reported too.

    python benchmarks/bench_serve.py
    python benchmarks/bench_serve.py --clients 1,16 --requests 96 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from kronos_server import Server, start_server  # noqa: E402

SP500 = ROOT / "examples" / "sp500_daily.csv"
FIELDS = ["open", "high", "low", "close", "volume"]


def request_bodies(lookback: int, steps: int, paths: int, count: int = 64) -> list[dict]:
    frame = pd.read_csv(SP500)
    starts = np.linspace(0, len(frame) - lookback, count).astype(int)
    return [
        {
            "bars": [
                {"timestamp": row["timestamps"], **{f: float(row[f]) for f in FIELDS}}
                for row in frame.iloc[start : start + lookback].to_dict("records")
            ],
            "steps": steps,
            "paths": paths,
            "seed": 0,
        }
        for start in starts
    ]


async def load(url: str, bodies: list[dict], clients: int, requests: int) -> list[float]:
    """Latencies of `requests` forecasts posted by `clients` concurrent clients, each on its own connection."""
    latencies: list[float] = []
    counter = iter(range(requests))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            for i in counter:
                started = time.perf_counter()
                response = await http.post("/v1/forecast", json=bodies[i % len(bodies)])
                if response.status_code != 200:
                    raise RuntimeError(f"request {i}: {response.status_code} {response.text[:300]}")
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def series_per_call(server: Server) -> tuple[float, float]:
    return server.metric("kronos_batch_series_sum"), server.metric("kronos_batch_series_count")


def run(server: Server, bodies: list[dict], clients: int, requests: int) -> dict:
    series_before, calls_before = series_per_call(server)
    started = time.perf_counter()
    latencies = asyncio.run(load(server.url, bodies, clients, requests))
    elapsed = time.perf_counter() - started
    series_after, calls_after = series_per_call(server)
    return {
        "rps": requests / elapsed,
        "p50": 1000 * float(np.percentile(latencies, 50)),
        "p95": 1000 * float(np.percentile(latencies, 95)),
        "per_call": (series_after - series_before) / max(calls_after - calls_before, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="kronos-default")
    parser.add_argument("--clients", default="1,4,16", help="comma-separated numbers of concurrent clients")
    parser.add_argument("--requests", type=int, default=64, help="requests per run (default 64)")
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per setting, the fastest kept (default 2)"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--paths", type=int, default=20)
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]

    folder = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    started = time.perf_counter()
    batched = start_server(folder, ["--model", args.model])
    ready_s = time.perf_counter() - started
    alone = start_server(folder, ["--model", args.model, "--max-batch", "1"])
    try:
        lookback = httpx.get(f"{batched.url}/v1/models").json()["models"][0]["lookback"]
        bodies = request_bodies(lookback, args.steps, args.paths)
        servers = {"on": batched, "off": alone}
        for server in servers.values():  # untimed warm-up
            run(server, bodies, 4, 8)
        best: dict[tuple[int, str], dict] = {}
        for _ in range(args.repeat):
            for n in clients:
                for name, server in servers.items():
                    result = run(server, bodies, n, args.requests)
                    key = (n, name)
                    if key not in best or result["rps"] > best[key]["rps"]:
                        best[key] = result
                    print(f"  {n:>2} clients, batching {name:>3}: {result['rps']:.2f} req/s", file=sys.stderr)
    finally:
        batched.stop()
        alone.stop()

    print(f"`kronos serve --model {args.model}` ready {ready_s:.1f} s after start")
    print(
        f"{args.requests} requests per run, {lookback} bars, {args.steps} steps, {args.paths} paths; best of {args.repeat}\n"
    )
    print("| clients | batching | req/s | p50 ms | p95 ms | series per call | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for n in clients:
        for name in ("off", "on"):
            r = best[(n, name)]
            speedup = f"{r['rps'] / best[(n, 'off')]['rps']:.2f}x" if name == "on" else ""
            print(
                f"| {n} | {name} | {r['rps']:.2f} | {r['p50']:.0f} | {r['p95']:.0f} | {r['per_call']:.1f} | {speedup} |"
            )


if __name__ == "__main__":
    main()
