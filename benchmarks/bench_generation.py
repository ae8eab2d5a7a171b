"""Cached generation in float32, bfloat16 and with a streaming window, against the plain engine
(upstream's algorithm, float32), side by side in one run.

Random weights with Kronos-small shapes (d_model 512, 8 layers, 8 heads, ff 1024, 10+10 bits) and
Tokenizer-base shapes, max_context 512. Each (scenario, engine) runs in a fresh subprocess so that
its peak memory is its own; both engines get identical weights, inputs and seeds.

    python benchmarks/bench_generation.py                  # A, B, C, D and the sliding-memory check
    python benchmarks/bench_generation.py --scenarios A C  # a subset
    python benchmarks/bench_generation.py --modes fp32 bf16 --device cuda  # no plain runs

Modes (`MODES`): plain (the reference loop in float32, what upstream runs: the test oracle
tests/reference_generation.py), fp32 (cached, exact
window), bf16 (cached, bfloat16 weights and activations), streaming (cached, float32, streaming
window). Each timed run follows an untimed warm-up on the first series (see `warm_up`). Prints, per
scenario and mode: seconds, generated tokens per second (series x paths x steps / s), the peak
resident memory added by the run, the speed-up over plain, and whether the tokens equal plain's.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from kronos.nn.config import KRONOS_SMALL, KRONOS_TOKENIZER_BASE


@dataclass(frozen=True)
class Scenario:
    name: str
    n_series: int
    hist_len: int
    pred_len: int
    sample_count: int
    T: float
    top_k: int
    top_p: float
    max_context: int = 512
    note: str = ""

    def sampling(self):
        from kronos.engine.sampling import Sampling

        return Sampling(
            T=self.T, top_k=self.top_k, top_p=self.top_p, sample_count=self.sample_count, seed=None
        )


SCENARIOS = {
    "A": Scenario("A", 1, 400, 120, 1, 1.0, 1, 1.0, note="history 400, 120 steps, 1 path, greedy"),
    "B": Scenario("B", 1, 400, 120, 5, 1.0, 0, 0.9, note="history 400, 120 steps, 5 paths, T=1, top_p=0.9"),
    "C": Scenario("C", 1, 384, 127, 1, 1.0, 1, 1.0, note="history 384, 127 steps (never slides), greedy"),
    "D": Scenario("D", 64, 256, 24, 5, 1.0, 0, 0.9, note="64 series x history 256, 24 steps, 5 paths"),
    # Memory check: D's batch with a window that fills at step 8 and then slides for 16 steps.
    "D-slide": Scenario(
        "D-slide",
        64,
        256,
        24,
        5,
        1.0,
        0,
        0.9,
        max_context=264,
        note="D with max_context 264: the window is full from step 8 on",
    ),
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not found")


def record_step_peaks(peaks: list[int]) -> None:
    """Instrument the cached engine: before each step, store the peak resident memory of the
    previous one and reset the peak, so that memory is seen step by step."""
    from kronos.engine import generation

    last_position = generation._last_position

    def recorded(*args, **kwargs):
        peaks.append(peak_rss_bytes())  # step 0: the setup (tokenizer encode, caches)
        reset_peak_rss()
        return last_position(*args, **kwargs)

    generation._last_position = recorded


def build(device: str, dtype: torch.dtype):
    from kronos import Kronos, KronosTokenizer

    torch.manual_seed(0)
    tokenizer = KronosTokenizer.from_config(KRONOS_TOKENIZER_BASE).eval().to(device, dtype)
    model = Kronos.from_config(KRONOS_SMALL).eval().to(device, dtype)
    return tokenizer, model


def inputs(sc: Scenario, device: str):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(sc.n_series, sc.hist_len, 6, generator=gen).cumsum(1) / 10
    minutes = torch.arange(sc.hist_len + sc.pred_len) * 5
    stamp = torch.stack(
        [
            minutes % 60,
            (minutes // 60) % 24,
            (minutes // 1440) % 7,
            1 + (minutes // 1440) % 28,
            1 + (minutes // 40320) % 12,
        ]
    ).T.float()
    stamp = stamp.expand(sc.n_series, -1, -1)
    return (
        x.to(device),
        stamp[:, : sc.hist_len].contiguous().to(device),
        stamp[:, sc.hist_len :].contiguous().to(device),
    )


@dataclass(frozen=True)
class Mode:
    name: str
    cached: bool  # False: the plain loop (tests/reference_generation.py)
    dtype: str
    window: str = "exact"

    def options(self) -> dict:
        """generate_tokens keywords (window only where it is not the default)."""
        return {} if self.window == "exact" else dict(window=self.window)

    def engine(self):
        """(generate_tokens, decode_tokens) of the cached engine, or of the plain loop."""
        if self.cached:
            from kronos.engine.generation import decode_tokens, generate_tokens

            return generate_tokens, decode_tokens
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from reference_generation import plain_decode_tokens, plain_generate_tokens

        return plain_generate_tokens, plain_decode_tokens


MODES = {
    "plain": Mode("plain", False, "float32"),
    "fp32": Mode("fp32", True, "float32"),
    "bf16": Mode("bf16", True, "bfloat16"),
    "streaming": Mode("streaming", True, "float32", "streaming"),
    "bf16-streaming": Mode("bf16-streaming", True, "bfloat16", "streaming"),
}


def warm_up(tokenizer, model, x, x_stamp, y_stamp, sc: Scenario, mode: Mode) -> None:
    """One untimed call on the first series, 3 steps in a window one token longer than the history,
    so that the prefill, a growing step and a sliding step have each run once before timing."""
    from kronos.engine.generation import SeriesBatch

    generate_tokens, decode_tokens = mode.engine()
    batch = SeriesBatch(x[:1], x_stamp[:1], y_stamp[:1, :3])
    tokens = generate_tokens(tokenizer, model, batch, sc.sampling(), sc.hist_len + 1, **mode.options())
    decode_tokens(tokenizer, tokens, sc.hist_len + 1)


def run_one(sc: Scenario, mode: Mode, device: str, threads: int, steps: bool, queue) -> None:
    torch.set_num_threads(threads)
    from kronos.engine.generation import SeriesBatch

    generate_tokens, decode_tokens = mode.engine()
    tokenizer, model = build(device, getattr(torch, mode.dtype))
    x, x_stamp, y_stamp = inputs(sc, device)
    warm_up(tokenizer, model, x, x_stamp, y_stamp, sc, mode)
    on_gpu = torch.device(device).type == "cuda"
    if on_gpu:
        torch.cuda.synchronize()  # the warm-up's queued kernels are not the timed run's
    step_peaks: list[int] = []
    if steps:
        record_step_peaks(step_peaks)
    reset_peak_rss()
    before = rss_bytes()
    torch.manual_seed(2)
    start = time.perf_counter()
    tokens = generate_tokens(
        tokenizer, model, SeriesBatch(x, x_stamp, y_stamp), sc.sampling(), sc.max_context, **mode.options()
    )
    step_peaks.append(peak_rss_bytes())
    reset_peak_rss()
    decode_tokens(tokenizer, tokens, sc.max_context)
    if on_gpu:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    step_peaks.append(peak_rss_bytes())
    peak = max([peak_rss_bytes(), *step_peaks]) - before
    gpu_peak = torch.cuda.max_memory_allocated() if on_gpu else None
    queue.put(
        dict(
            seconds=seconds,
            peak=peak,
            step_peaks=[p - before for p in step_peaks],
            gpu_peak=gpu_peak,
            tokens=[t.cpu().numpy() for t in tokens.generated],
        )
    )


def run_fresh(sc: Scenario, mode: Mode, args) -> dict:
    """One run in a fresh process, so that its peak memory is its own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    steps = mode.cached and sc.name == "D-slide"
    proc = ctx.Process(target=run_one, args=(sc, mode, args.device, args.threads, steps, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def measure(sc: Scenario, modes: tuple[Mode, ...], args) -> list[dict]:
    """Per mode, the fastest of `args.repeat` runs, taken in turns so that the modes see the same
    spells of machine load; peak memory is the largest over the runs. (Against another source
    tree's engine: benchmarks/bench_against.py.)"""
    runs: list[list[dict]] = [[] for _ in modes]
    for _ in range(args.repeat):
        for mode_runs, mode in zip(runs, modes):
            mode_runs.append(run_fresh(sc, mode, args))
    results = []
    for engine_runs in runs:
        best = min(engine_runs, key=lambda r: r["seconds"])
        peak = max(r["peak"] for r in engine_runs)
        results.append(dict(best, peak=peak, all_seconds=[r["seconds"] for r in engine_runs]))
    return results


def fmt_mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:8.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenarios", nargs="+", default=["A", "B", "C", "D", "D-slide"], choices=list(SCENARIOS)
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per engine and scenario; the fastest is reported"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["plain", "fp32", "bf16", "streaming"],
        choices=list(MODES),
        help="what to time (default: plain fp32 bf16 streaming); speed-ups are over plain",
    )
    args = parser.parse_args()
    modes = tuple(MODES[name] for name in args.modes)
    print(
        f"torch {torch.__version__}, device {args.device}, {args.threads} threads, "
        f"fastest of {args.repeat} run(s) per mode, taken in turns"
    )
    for name in args.scenarios:
        sc = SCENARIOS[name]
        paths = sc.n_series * sc.sample_count
        print(f"\n[{sc.name}] {sc.note}")
        if name == "D-slide":
            (cached,) = measure(sc, (next(m for m in modes if m.cached),), args)
            full_from = sc.max_context - sc.hist_len
            peaks = cached["step_peaks"]  # setup, steps 0..pred_len-1, final decode
            sliding = [p / 2**20 for p in peaks[full_from + 1 : -1]]
            print(
                f"  cached: {cached['seconds']:7.2f} s, peak memory added {fmt_mb(cached['peak'])}; peak per step "
                f"while the window slides (steps {full_from}-{sc.pred_len - 1}): "
                + " ".join(f"{p:.0f}" for p in sliding)
                + f" MB (min {min(sliding):.0f}, max {max(sliding):.0f}); setup {peaks[0] / 2**20:.0f} MB, "
                + f"final decode {peaks[-1] / 2**20:.0f} MB"
            )
            continue
        results = dict(zip(args.modes, measure(sc, modes, args)))
        plain = results.get("plain")
        for label, r in results.items():
            rate = paths * sc.pred_len / r["seconds"]
            gpu = f", GPU peak {fmt_mb(r['gpu_peak'])}" if r["gpu_peak"] is not None else ""
            runs = (
                ""
                if len(r["all_seconds"]) == 1
                else " (runs: " + ", ".join(f"{t:.2f}" for t in r["all_seconds"]) + ")"
            )
            versus = ""
            if plain is not None and label != "plain":
                same = all((a == b).all() for a, b in zip(plain["tokens"], r["tokens"]))
                speedup = plain["seconds"] / r["seconds"]
                versus = f"  {speedup:5.1f}x, tokens {'identical to' if same else 'differ from'} plain"
            print(
                f"  {label:14s}: {r['seconds']:8.2f} s  {rate:9.1f} tokens/s  peak memory added {fmt_mb(r['peak'])}"
                + gpu
                + versus
                + runs
            )


if __name__ == "__main__":
    main()
