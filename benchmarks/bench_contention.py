"""Generation quiet and beside a busy core, per thread policy, in one run.

    python benchmarks/bench_contention.py                  # scenario A, 3 rounds
    python benchmarks/bench_contention.py --scenarios A C --rounds 5 --pin 1

Policies: `fixed-N` (torch's thread count N for the whole call: today's engines run fixed at the
machine's count), `adaptive` (`kronos.engine.threads.AdaptiveThreads`, fresh for each run,
starting from the machine's count: a predictor's first call), `adaptive-kept` (one
AdaptiveThreads for all runs, as a predictor keeps it across calls) and `trials-kept` (a kept
AdaptiveThreads that does not read the load: its timed trials alone, as where /proc/stat is
missing). "Busy" runs beside a `python -c 'while True: pass'` subprocess (pinned to CPU
`--pin` if given, else placed by the OS). Rounds alternate quiet and busy, every policy in each,
so that all see the same spells of other load; per policy and state the median of the rounds is
reported, and the ratio busy / quiet, and each policy's time against the quiet fastest policy.
Random weights with Kronos-small shapes, in-process runs after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch
from bench_generation import SCENARIOS, Scenario, build, inputs

from kronos.engine.generation import SeriesBatch, decode_tokens, generate_tokens
from kronos.engine.threads import AdaptiveThreads


def busy_core(pin: int | None) -> subprocess.Popen:
    """A process spinning on one core (on CPU `pin` if given)."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    if pin is not None:
        os.sched_setaffinity(proc.pid, {pin})
    time.sleep(0.2)  # let it start spinning
    return proc


def run(
    tokenizer, model, sc: Scenario, policy: str, most: int, kept: dict[str, AdaptiveThreads]
) -> tuple[float, list[torch.Tensor], int]:
    """Seconds of one generate + decode under `policy`, its tokens, and the count it ended on."""
    x, x_stamp, y_stamp = inputs(sc, "cpu")
    adaptive = {"adaptive": AdaptiveThreads(most), **kept}.get(policy)
    torch.set_num_threads(most if adaptive is not None else int(policy.split("-")[1]))
    torch.manual_seed(2)
    start = time.perf_counter()
    tokens = generate_tokens(
        tokenizer, model, SeriesBatch(x, x_stamp, y_stamp), sc.sampling(), sc.max_context, threads=adaptive
    )
    if adaptive is not None:
        torch.set_num_threads(adaptive.pass_count())
    decode_tokens(tokenizer, tokens, sc.max_context)
    seconds = time.perf_counter() - start
    return seconds, list(tokens.generated), torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", nargs="+", default=["A"], choices=list(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="the machine's count")
    parser.add_argument("--pin", type=int, default=None, help="CPU to pin the busy loop to")
    args = parser.parse_args()
    most = args.threads
    kept = {"adaptive-kept": AdaptiveThreads(most), "trials-kept": AdaptiveThreads(most, load=None)}
    policies = [f"fixed-{most}", "fixed-1", "adaptive", *kept] if most > 1 else ["fixed-1"]
    tokenizer, model = build("cpu", torch.float32)
    print(
        f"torch {torch.__version__}, {most} threads at most, busy loop pinned to {args.pin}, {args.rounds} rounds; "
        f"the load {'is' if kept['adaptive-kept'].load is not None else 'cannot be'} read from /proc/stat"
    )
    for name in args.scenarios:
        sc = SCENARIOS[name]
        warm = Scenario(**{**sc.__dict__, "pred_len": 3, "max_context": sc.hist_len + 1})
        run(tokenizer, model, warm, f"fixed-{most}", most, kept)
        times: dict[tuple[str, bool], list[float]] = {}
        tokens, settled = {}, {}
        for _ in range(args.rounds):
            for busy in (False, True):
                proc = busy_core(args.pin) if busy else None
                try:
                    for policy in policies:
                        seconds, tokens[policy], count = run(tokenizer, model, sc, policy, most, kept)
                        times.setdefault((policy, busy), []).append(seconds)
                        settled.setdefault((policy, busy), []).append(count)
                finally:
                    if proc is not None:
                        proc.kill()
                        proc.wait()
        quiet_best = min(statistics.median(times[(p, False)]) for p in policies)
        same = all(all(torch.equal(a, b) for a, b in zip(tokens[policies[0]], tokens[p])) for p in policies)
        print(f"\n[{name}] {sc.note}; tokens identical across policies: {same}")
        for policy in policies:
            quiet, busy = (statistics.median(times[(policy, b)]) for b in (False, True))
            print(
                f"  {policy:13s} quiet {quiet:6.2f} s, busy {busy:6.2f} s: busy / quiet {busy / quiet:4.2f}x, "
                f"quiet / fastest quiet {quiet / quiet_best:4.2f}x, busy / fastest quiet {busy / quiet_best:4.2f}x"
                f"  (runs quiet {', '.join(f'{t:.2f}' for t in times[(policy, False)])}; busy "
                f"{', '.join(f'{t:.2f}' for t in times[(policy, True)])}; ended on threads quiet "
                f"{settled[(policy, False)]}, busy {settled[(policy, True)]})",
                flush=True,
            )


if __name__ == "__main__":
    main()
