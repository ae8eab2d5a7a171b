"""A real `kronos serve` process for the tests: start it, wait until it is ready, stop it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

API_KEY = "test-key-0123"
CAPS = {"max_bars": 2000, "max_steps": 64, "max_paths": 64, "max_series": 8, "max_past_forecasts": 200,
        "max_body_mb": 1, "read_timeout": 5}  # fmt: skip
# small caps, so that the cap errors are cheap to reach, a 5 s read timeout, and a 20 ms batching wait
TEST_ARGS = [f"--{k.replace('_', '-')}={v}" for k, v in CAPS.items()] + ["--batch-wait-ms", "20"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def client(self, key: str | None = API_KEY, timeout: float = 120) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include `labels` (0 when there are none)."""
        total = 0.0
        for line in httpx.get(f"{self.url}/metrics").text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(
    folder: Path, args: list[str], api_key: str | None = None, ready_within: float = 180
) -> Server:
    """`kronos serve ARGS` on 127.0.0.1 and a free port, logging to folder/server.log; returns once
    /readyz answers 200."""
    port = free_port()
    log = folder / f"server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "kronos.commands.main",
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if k != "KRONOS_API_KEY"} | {"HF_HUB_OFFLINE": "1"}
    if api_key:
        env["KRONOS_API_KEY"] = api_key
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + ready_within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kronos serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"kronos serve was not ready within {ready_within} s:\n{log.read_text()}")
