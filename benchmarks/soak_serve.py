"""A bounded soak of `kronos serve`: mixed valid and hostile requests for N minutes, RSS sampled.

Starts `kronos serve` (the shipped model, an API key, a 2 s read timeout) on 127.0.0.1 and a free
port, and has `--clients` threads send, in turn: forecasts (single, batch, CSV upload, parse),
forecasts whose client leaves after 50 ms, bad JSON and bad fields, requests without the key,
with a foreign Host or a cross-site Origin, unknown paths and invented HTTP methods, bodies over
the cap and bodies shorter than their Content-Length. Every answer must have the status its kind
expects; anything else (or an exception) is an error. The server's resident memory (VmRSS) and
the size of /metrics are sampled every `--sample-s` seconds. Writes a JSON report (and prints a
summary): the RSS start (first sample after the warm-up round), plateau (median of the second
half), end and maximum, requests by kind and errors.

    python benchmarks/soak_serve.py --minutes 10 --out reports/soak_serve.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SP500 = ROOT / "examples" / "sp500_daily.csv"
KEY = "soak-key"
FIELDS = ["open", "high", "low", "close", "volume"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "kronos.commands.main", "serve", "--port", str(port), "--log-level", "warning",
               "--read-timeout", "2", "--max-body-mb", "1"]  # fmt: skip
    env = os.environ | {"KRONOS_API_KEY": KEY, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"kronos serve exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("kronos serve was not ready within 300 s")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def bars(frame: pd.DataFrame) -> list[dict]:
    return [{"timestamp": str(t), **{f: float(r[f]) for f in FIELDS}} for t, r in zip(frame["timestamps"], frame.to_dict("records"))]  # fmt: skip


def truncated_body(port: int) -> int:
    """A POST whose body stops short of its Content-Length: the server must answer 408 and close."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        head = (f"POST /v1/forecast HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {KEY}\r\n"
                "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n")  # fmt: skip
        sock.sendall(head.encode() + b'{"bars": [')
        answer = sock.recv(4096)
    return int(answer.split(b" ", 2)[1])


def kinds(port: int, frame: pd.DataFrame) -> dict:
    """name -> (function(client) -> status, the status expected)."""
    url = f"http://127.0.0.1:{port}"
    body = {"bars": bars(frame.iloc[-120:]), "steps": 5, "paths": 8, "quantile_levels": [0.1, 0.5, 0.9]}
    csv = SP500.read_bytes()
    counter = itertools.count()

    def impatient(client: httpx.Client) -> int:
        try:
            httpx.post(f"{url}/v1/forecast", json={**body, "steps": 20, "paths": 32}, headers={"X-API-Key": KEY},
                       timeout=0.05)  # fmt: skip
        except httpx.TimeoutException:
            return 0
        return -1  # answered within 50 ms: not what this kind is for

    return {
        "forecast": (lambda c: c.post("/v1/forecast", json=body).status_code, 200),
        "batch": (
            lambda c: (
                c.post(
                    "/v1/forecast/batch",
                    json={
                        **{k: v for k, v in body.items() if k != "bars"},
                        "series": [{"id": i, "bars": body["bars"]} for i in range(3)],
                    },
                ).status_code
            ),
            200,
        ),  # fmt: skip
        "csv": (
            lambda c: (
                c.post(
                    "/v1/forecast/csv", files={"file": ("sp500.csv", csv)}, data={"steps": "3", "paths": "8"}
                ).status_code
            ),
            200,
        ),  # fmt: skip
        "parse": (lambda c: c.post("/v1/parse", files={"file": ("sp500.csv", csv)}).status_code, 200),
        "impatient": (impatient, 0),
        "bad_json": (
            lambda c: (
                c.post(
                    "/v1/forecast", content=b'{"bars": [', headers={"Content-Type": "application/json"}
                ).status_code
            ),
            400,
        ),  # fmt: skip
        "bad_field": (lambda c: c.post("/v1/forecast", json={**body, "steps": "many"}).status_code, 422),
        "no_key": (lambda c: httpx.post(f"{url}/v1/forecast", json=body).status_code, 401),
        "foreign_host": (
            lambda c: c.get("/healthz", headers={"Host": f"rebound-{next(counter)}.example"}).status_code,
            400,
        ),  # fmt: skip
        "cross_site": (
            lambda c: (
                c.post("/v1/forecast", json=body, headers={"Origin": "http://evil.example"}).status_code
            ),
            403,
        ),  # fmt: skip
        "unknown_path": (lambda c: c.get(f"/no/such/{next(counter)}").status_code, 404),
        "invented_method": (lambda c: c.request(f"M{next(counter)}", "/v1/forecast").status_code, 405),
        "too_large": (
            lambda c: (
                c.post(
                    "/v1/forecast", content=b"x" * (2**20 + 1), headers={"Content-Type": "application/json"}
                ).status_code
            ),
            413,
        ),  # fmt: skip
        "truncated": (lambda c: truncated_body(port), 408),
    }


def hammer(
    port: int, frame: pd.DataFrame, until: float, tally: Counter, errors: list, lock: threading.Lock
) -> None:
    plan = kinds(port, frame)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=120) as client:
        for name in itertools.cycle(plan):
            if time.monotonic() > until:
                return
            request, wanted = plan[name]
            try:
                status = request(client)
            except Exception as err:  # counted, and the soak goes on
                status = f"{type(err).__name__}: {err}"
            with lock:
                tally[name] += 1
                if status != wanted:
                    errors.append({"kind": name, "wanted": wanted, "got": status})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--sample-s", type=float, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "soak_serve.json")
    args = parser.parse_args()
    port = free_port()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    server = start(port, args.out.with_suffix(".log"))
    frame = pd.read_csv(SP500, parse_dates=["timestamps"])
    tally: Counter = Counter()
    errors: list = []
    lock = threading.Lock()
    samples: list[dict] = []
    started = time.monotonic()
    until = started + 60 * args.minutes
    threads = [threading.Thread(target=hammer, args=(port, frame, until, tally, errors, lock)) for _ in range(args.clients)]  # fmt: skip
    try:
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
            samples.append({"s": round(time.monotonic() - started, 1), "rss_mib": round(rss_mib(server.pid), 1),
                            "metrics_bytes": len(metrics), "requests": sum(tally.values())})  # fmt: skip
            print(json.dumps(samples[-1]), flush=True)
            time.sleep(args.sample_s)
        for thread in threads:
            thread.join()
    finally:
        server.terminate()
        server.wait(30)
    rss = [s["rss_mib"] for s in samples[1:]] or [samples[0]["rss_mib"]]
    report = {
        "minutes": args.minutes, "clients": args.clients, "requests": sum(tally.values()), "by_kind": dict(tally),
        "errors": len(errors), "first_errors": errors[:20],
        "rss_mib": {"start": rss[0], "plateau": statistics.median(rss[len(rss) // 2 :]), "end": rss[-1], "max": max(rss)},
        "metrics_bytes": {"start": samples[0]["metrics_bytes"], "end": samples[-1]["metrics_bytes"]},
        "samples": samples,
    }  # fmt: skip
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1))


if __name__ == "__main__":
    main()
