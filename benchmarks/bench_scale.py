"""Forecast a universe with the shipped model here and on a local Ray cluster: series/s and memory.

Default workload: 2,000 random-walk series of 512 business-day bars (`bench_predict_df`'s
universe), 20 steps, 20 paths, batch size 32, seed 0, `kronos-default` (its lookback of 108
bars). Three ways, each run in a fresh process on the same universe:

- `local-1`, `local-2` (only with `--ways`): `predict_df` in one process with 1 or 2 torch threads;
- `ray`: `kronos.ray.engine.forecast_dataset` on a Ray cluster started on this machine with
  `--cpus` CPUs (default 2), one actor per CPU, 1 torch thread each.

Runs take turns (local-1, ray, local-1, ...) so that the machine's load falls on all of
them alike, and the fastest of `--repeat` runs of each is reported. Timed: the forecast call
only (for Ray: actors starting and loading the model, shipping the series, gathering the
table; not the cluster's start, reported apart). Memory: peak resident set size (VmHWM) of the
process for local, and of each actor and of the driver for Ray. Finally each way's forecast is
compared with the first way's: equal bit for bit, or the largest difference.

    python benchmarks/bench_scale.py
    python benchmarks/bench_scale.py --series 200 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

WAYS = ("local-1", "local-2", "ray")
ACTOR = b"ray::MapWorker(MapBatches(_ModelActor))"


def peak_rss_mib(pid: int | str = "self") -> float:
    """VmHWM of a process, the peak of its resident set, in MiB (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


class ActorMemory(threading.Thread):
    """Polls the peak resident memory of every model actor while a Ray run lasts."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peaks: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for entry in Path("/proc").iterdir():
                try:
                    if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(ACTOR):
                        pid = int(entry.name)
                        self.peaks[pid] = max(self.peaks.get(pid, 0.0), peak_rss_mib(pid))
                except OSError:
                    continue
            time.sleep(0.2)


def run_one(args: argparse.Namespace) -> dict:
    """One timed forecast in this process; the forecast goes to args.forecast."""
    import torch

    from kronos import KronosPredictor, Sampling

    universe = pd.read_parquet(args.universe)
    sampling = Sampling(sample_count=args.paths, seed=0)
    settings = dict(quantile_levels=(0.1, 0.5, 0.9), sampling=sampling, batch_size=args.batch_size)
    result: dict = {"way": args.run}
    if args.run.startswith("local"):
        torch.set_num_threads(int(args.run.split("-")[1]))
        predictor = KronosPredictor.from_pretrained(device="cpu")
        start = time.perf_counter()
        forecast = predictor.predict_df(universe, prediction_length=args.steps, **settings)
        result["seconds"] = time.perf_counter() - start
        result["worker_mib"] = [peak_rss_mib()]
    else:
        import ray

        from kronos.ray.engine import RayEngine, forecast_dataset

        start = time.perf_counter()
        ray.init(
            num_cpus=args.cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            logging_level=logging.ERROR,
        )
        result["cluster_start_seconds"] = time.perf_counter() - start
        memory = ActorMemory()
        memory.start()
        start = time.perf_counter()
        forecast = forecast_dataset(
            universe,
            RayEngine(num_actors=args.cpus),
            id_column="id",
            steps=args.steps,
            **settings,
        )
        result["seconds"] = time.perf_counter() - start
        memory.stop.set()
        memory.join()
        result["worker_mib"] = sorted(memory.peaks.values())
        result["driver_mib"] = peak_rss_mib()
        ray.shutdown()
    forecast.to_parquet(args.forecast, index=False)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--bars", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--paths", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the Ray cluster, one actor each")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each way, taken in turns")
    parser.add_argument(
        "--ways", default="local-1,ray", help=f"comma-separated, of {', '.join(WAYS)} (default local-1,ray)"
    )
    parser.add_argument("--run", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--universe", help=argparse.SUPPRESS)
    parser.add_argument("--forecast", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        print(json.dumps(run_one(args)))
        return

    from bench_predict_df import random_walk_universe

    with tempfile.TemporaryDirectory() as folder:
        universe = Path(folder, "universe.parquet")
        random_walk_universe(args.series, args.bars).to_parquet(universe, index=False)
        ways = [way for way in args.ways.split(",") if way in WAYS]
        best: dict[str, dict] = {}
        for round_ in range(args.repeat):
            for way in ways:
                command = [sys.executable, __file__, *(argv or sys.argv[1:]), "--run", way]
                command += ["--universe", str(universe), "--forecast", str(Path(folder, f"{way}.parquet"))]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                result = json.loads(output.strip().splitlines()[-1])
                print(f"round {round_ + 1} {way}: {result['seconds']:.1f} s", flush=True)
                if way not in best or result["seconds"] < best[way]["seconds"]:
                    best[way] = result
        reference = pd.read_parquet(Path(folder, f"{ways[0]}.parquet")).select_dtypes("number").to_numpy()
        print(
            f"\n{args.series} series x {args.bars} bars, {args.steps} steps, {args.paths} paths, "
            f"batch size {args.batch_size}; fastest of {args.repeat} runs each, taken in turns\n"
        )
        print(f"| way | time | series/s | peak memory per worker | same numbers as {ways[0]} |")
        print("|---|---|---|---|---|")
        for way in ways:
            result = best[way]
            numbers = pd.read_parquet(Path(folder, f"{way}.parquet")).select_dtypes("number").to_numpy()
            difference = np.abs(numbers - reference).max()
            same = "yes, bit for bit" if difference == 0 else f"no, largest difference {difference:.3g}"
            workers = ", ".join(f"{m:.0f}" for m in result["worker_mib"]) + " MiB"
            if "driver_mib" in result:
                workers += f" (driver {result['driver_mib']:.0f} MiB)"
            print(
                f"| {way} | {result['seconds']:.1f} s | {args.series / result['seconds']:.2f} | {workers} | {same} |"
            )
        if "ray" in best:
            print(f"\nRay cluster start (not timed above): {best['ray']['cluster_start_seconds']:.1f} s")


if __name__ == "__main__":
    main()
