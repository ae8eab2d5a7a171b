"""Kill training with SIGKILL at random moments, resume it each time, and check that the result is
bit-identical to an uninterrupted run.

    python scripts/kill_resume_check.py --trials 10 [--seed 0]

Each trial starts `kronos train tokenizer ... --resume auto` again and again (a tiny tokenizer
on the two example files, 6 epochs), killing it after a random delay once training has begun, until a run finishes by itself. The final checkpoint, `best/` and
`metrics.jsonl` (without its timings) are then compared byte for byte with a run that was never
interrupted. Also counted: kills that left an unfinished directory swap (a checkpoint or `best/`
half written) and kills that tore the last line of `metrics.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE = "tokenizer"
CONFIG = """
[data]
paths = {paths}
window = 32
history = 28
val_fraction = 0.2
[tokenizer]
d_model = 16
n_heads = 2
ff_dim = 32
n_enc_layers = 2
n_dec_layers = 2
s1_bits = 4
s2_bits = 4
[model]
d_model = 16
n_heads = 2
ff_dim = 32
n_layers = 2
[train]
epochs = 6
batch_size = 16
lr = 3e-3
samples_per_epoch = 160
val_samples = 64
patience = 0
device = "cpu"
num_threads = 1
progress = false
log_every = 1
keep_checkpoints = 2
"""


def start(config: Path, out: Path, resume: bool) -> subprocess.Popen:
    """`kronos train tokenizer`, returned once it has imported everything, loaded the data and
    begun training."""
    command = [
        sys.executable,
        "-m",
        "kronos.commands.main",
        "train",
        STAGE,
        "--config",
        str(config),
        "--out",
        str(out),
    ]
    run = subprocess.Popen(
        command + (["--resume", "auto"] if resume else []),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert run.stdout is not None
    for line in run.stdout:
        if line.startswith("training"):
            break
    return run


def run_to_end(config: Path, out: Path) -> float:
    """Seconds of training (after start-up) of an uninterrupted run."""
    run = start(config, out, resume=False)
    started = time.perf_counter()
    output, _ = run.communicate()
    if run.returncode != 0:
        raise SystemExit(f"the uninterrupted run failed:\n{output}")
    return time.perf_counter() - started


def run_with_kills(config: Path, out: Path, span: float, rng: random.Random) -> dict:
    """Kill after a random delay once training has begun, resume, until a run ends by itself."""
    kills = unfinished_swaps = torn_metrics = 0
    while True:
        run = start(config, out, resume=True)
        assert run.stdout is not None
        try:
            run.wait(timeout=rng.uniform(0, span))
        except subprocess.TimeoutExpired:
            run.send_signal(signal.SIGKILL)
            run.wait()
            kills += 1
            stage_dir = out / STAGE
            leftovers = [*stage_dir.glob(".*"), *(stage_dir / "checkpoints").glob(".*")]
            unfinished_swaps += bool(leftovers)
            metrics = stage_dir / "metrics.jsonl"
            torn_metrics += metrics.exists() and not metrics.read_bytes().endswith(b"\n")
            continue
        rest = run.stdout.read()
        if run.returncode != 0:
            raise SystemExit(f"a resumed run failed:\n{rest}")
        return {"kills": kills, "unfinished_swaps": unfinished_swaps, "torn_metrics": torn_metrics}


def fingerprint(stage_dir: Path) -> dict:
    latest = sorted((stage_dir / "checkpoints").glob("epoch-*"))[-1]
    records = [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "latest": latest.name,
        "latest_weights": (latest / "model.safetensors").read_bytes(),
        "latest_optimizer": (latest / "optimizer.safetensors").read_bytes(),
        "best_weights": (stage_dir / "best" / "model.safetensors").read_bytes(),
        "metrics": [{k: v for k, v in r.items() if k != "seconds"} for r in records],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = [str(REPO / "examples" / "sp500_daily.csv"), str(REPO / "examples" / "eurusd_hourly.csv")]
        config = folder / "config.toml"
        config.write_text(CONFIG.format(paths=json.dumps(paths)))
        seconds = run_to_end(config, folder / "reference")
        reference = fingerprint(folder / "reference" / STAGE)
        print(f"uninterrupted run: {seconds:.1f} s of training", flush=True)
        identical, totals = 0, {"kills": 0, "unfinished_swaps": 0, "torn_metrics": 0}
        for trial in range(args.trials):
            out = folder / f"trial{trial}"
            counts = run_with_kills(config, out, span=seconds, rng=rng)
            same = fingerprint(out / STAGE) == reference
            identical += same
            totals = {k: totals[k] + counts[k] for k in totals}
            print(f"trial {trial + 1}: {counts}, bit-identical: {same}", flush=True)
        print(
            f"{identical} of {args.trials} trials bit-identical; {totals['kills']} kills, "
            f"{totals['unfinished_swaps']} left an unfinished directory swap, "
            f"{totals['torn_metrics']} a torn metrics line"
        )


if __name__ == "__main__":
    main()
