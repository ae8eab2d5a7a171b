"""What bounds generation on this machine, and how close the engine comes: each scenario's floor
beside its measured time, in one run (Kronos-small and Tokenizer-base shapes, random weights).

    python benchmarks/machine_limits.py                        # A, B, C, fp32, 2 threads
    python benchmarks/machine_limits.py --scenarios A C --repeat 3

The machine: bandwidth is a 256 MiB tensor copy (read + write), throughput the packed oneDNN
product the engine runs (`torch.ops.mkldnn._linear_pointwise`; F.linear where there is none) on a
window pass's shape [1024, 512] x [512, 1536]; each the fastest of `--repeat` timings.

A scenario's floor walks its steps as the engine does (`window_bounds`):
- a one-token step (the window grows) must stream the model's weights and the keys and values it
  attends to once: bytes / bandwidth;
- a window pass (the window is full and slides: the whole window passed again) and the history
  pass must multiply every token by the weights: FLOPs / throughput (attention's FLOPs counted);
- the tokenizer's passes are left out (a few percent of a step's bytes): the floor is a lower bound.
The issue's floor counts the one-token bytes for every step ("bytes x steps"); both are printed.

The machine may be a share of a host whose memory speed swings from second to second (here a
2-vCPU VM: one 256 MiB buffer copied at 33 GB/s and then 54 GB/s a few copies later), so each of
the `--repeat` runs of a scenario comes right after its own measurement of the machine (the
median of 5 copies and of 5 products), and its ratio is to the floor of that moment: the median
of these paired ratios is the scenario's figure, printed with their range and the fastest run.
The first lines give the machine's median and fastest of 9.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from bench_generation import SCENARIOS, Scenario, build, inputs

from kronos.engine.generation import SeriesBatch, decode_tokens, generate_tokens, window_bounds
from kronos.nn.config import KRONOS_SMALL, ModelConfig

Pick = Callable[[list[float]], float]  # min: the fastest timing; statistics.median: the typical one


def timings(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds of `repeat` calls of fn, after one untimed call."""
    fn()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


@dataclass(frozen=True)
class Machine:
    bandwidth: float  # bytes/s
    flops: float  # FLOP/s
    itemsize: int


@dataclass(frozen=True)
class MachineTimings:
    """Timings of a copy of a 256 MiB tensor and of a [1024, 512] x [512, 1536] product (a window
    pass's typical shape) in the kernel the engine's packed products use: oneDNN's on a packed
    weight where available. `machine(pick)` reads them as bandwidth and throughput."""

    copy_bytes: int  # read and written
    copies: list[float]
    product_flop: int
    products: list[float]
    itemsize: int

    def machine(self, pick: Pick) -> Machine:
        """`pick` of the timings (min: the fastest; statistics.median: the typical one)."""
        return Machine(
            self.copy_bytes / pick(self.copies), self.product_flop / pick(self.products), self.itemsize
        )


def time_machine(dtype: torch.dtype, repeat: int) -> MachineTimings:
    src = torch.ones(2**28 // torch.finfo(dtype).bits * 8, dtype=dtype)
    dst = torch.empty_like(src)
    copies = timings(lambda: dst.copy_(src), repeat)
    x, w = torch.randn(1024, 512, dtype=dtype), torch.randn(1536, 512, dtype=dtype)
    # as PackedLinear: oneDNN's packed product in float32, F.linear otherwise (bfloat16 packs only on
    # CPUs with AVX-512 or AVX-NE-CONVERT, and the engine does not pack it)
    if dtype == torch.float32 and torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call,unused-ignore]
        packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
        product = lambda: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")  # noqa: E731
    else:
        product = lambda: torch.nn.functional.linear(x, w)  # noqa: E731
    products = timings(product, repeat)
    return MachineTimings(
        2 * src.numel() * src.element_size(), copies, 2 * 1024 * 512 * 1536, products, src.element_size()
    )


def step_weights(config: ModelConfig) -> int:
    """Weights a one-token step multiplies by: blocks, fusion, dependency layer and both heads."""
    d, ff = config.d_model, config.ff_dim
    blocks = config.n_layers * (4 * d * d + 3 * d * ff)
    vocab = 2**config.s1_bits + 2**config.s2_bits
    return blocks + 2 * d * d + 4 * d * d + vocab * d


@dataclass(frozen=True)
class Floor:
    """Seconds a scenario cannot beat: one-token steps at the bandwidth, the history pass and the
    window passes at the throughput, and the issue's bytes x steps."""

    steps: float
    history: float
    windows: float
    n_steps: int
    n_windows: int
    bytes_per_step: float  # the issue's: every step streams one step's bytes

    @property
    def total(self) -> float:
        return self.steps + self.history + self.windows


def pass_flops(config: ModelConfig, prefix: int, paths: int, own: int) -> float:
    """FLOPs of a pass over `prefix` tokens shared by `paths` paths of `own` tokens each (rows of
    the products and their causal attention; the dependency layer keeps keys and values of all)."""
    d, ff, layers = config.d_model, config.ff_dim, config.n_layers
    tokens = prefix + paths * own
    products = 2 * tokens * (layers * (4 * d * d + 3 * d * ff) + 2 * d * d)
    attended = prefix * (prefix + 1) / 2 + paths * (own * prefix + own * (own + 1) / 2)
    return products + 2 * 2 * attended * d * layers


def floor(sc: Scenario, config: ModelConfig, machine: Machine) -> Floor:
    """The scenario's steps as the engine takes them (`_last_position`), each at its bound."""
    weights = step_weights(config) * machine.itemsize
    kv_per_token = 2 * (config.n_layers + 1) * config.d_model * machine.itemsize
    paths = sc.n_series * sc.sample_count
    steps = history = windows = 0.0
    n_steps = n_windows = 0
    for step in range(sc.pred_len):
        seq_len = sc.hist_len + step
        start, prefix, gen_start = window_bounds(seq_len, sc.hist_len, sc.max_context)
        if step == 0 or start > 0:  # the history pass, or the window passed again
            own = step - gen_start
            seconds = sc.n_series * pass_flops(config, prefix, sc.sample_count, own) / machine.flops
            if step == 0:
                history += seconds
            else:
                windows, n_windows = windows + seconds, n_windows + 1
        else:
            held = sc.n_series * min(sc.hist_len, sc.max_context) + paths * step
            steps += (weights + held * kv_per_token) / machine.bandwidth
            n_steps += 1
    full_kv = paths * sc.max_context * kv_per_token
    return Floor(steps, history, windows, n_steps, n_windows, (weights + full_kv) / machine.bandwidth)


def paired_runs(sc: Scenario, dtype: torch.dtype, repeat: int) -> list[tuple[float, Machine]]:
    """`repeat` in-process runs (generate and decode) after a warm-up, each timed right after a
    measurement of the machine: (seconds, the machine then)."""
    tokenizer, model = build("cpu", dtype)
    x, x_stamp, y_stamp = inputs(sc, "cpu")
    sampling = sc.sampling()

    def run(batch: SeriesBatch, max_context: int) -> None:
        torch.manual_seed(2)
        tokens = generate_tokens(tokenizer, model, batch, sampling, max_context)
        decode_tokens(tokenizer, tokens, max_context)

    run(SeriesBatch(x[:1], x_stamp[:1], y_stamp[:1, :3]), sc.hist_len + 1)
    batch = SeriesBatch(x, x_stamp, y_stamp)
    run(batch, sc.max_context)
    runs = []
    for _ in range(repeat):
        machine = time_machine(dtype, 5).machine(statistics.median)
        start = time.perf_counter()
        run(batch, sc.max_context)
        runs.append((time.perf_counter() - start, machine))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="paired runs per scenario, each after its own measurement of the machine",
    )
    parser.add_argument("--scenarios", nargs="*", default=["A", "B", "C"], choices=list(SCENARIOS))
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"oneDNN bf16 kernels (the CPU's bf16 instructions): {torch.ops.mkldnn._is_mkldnn_bf16_supported()}"
    )
    weights = step_weights(KRONOS_SMALL)
    for dtype in (torch.float32, torch.bfloat16):
        measured = time_machine(dtype, 9)
        fast, typical = measured.machine(min), measured.machine(statistics.median)
        print(
            f"{str(dtype):15s} memory {typical.bandwidth / 1e9:5.1f} GB/s (fastest {fast.bandwidth / 1e9:.1f}), "
            f"packed matmul {typical.flops / 1e9:6.1f} GFLOP/s (fastest {fast.flops / 1e9:.1f}); weights of a "
            f"one-token step {weights * typical.itemsize / 1e6:.1f} MB: >= {weights * typical.itemsize / typical.bandwidth * 1e3:.2f} ms"
        )
    dtype = getattr(torch, args.dtype)
    for name in args.scenarios:
        report(SCENARIOS[name], args.dtype, paired_runs(SCENARIOS[name], dtype, args.repeat))


def report(sc: Scenario, dtype_name: str, runs: list[tuple[float, Machine]]) -> None:
    """The scenario's median ratio to its floor over the paired runs, their range, and the fastest run."""
    floors = [floor(sc, KRONOS_SMALL, machine) for _, machine in runs]
    ratios = sorted(seconds / f.total for (seconds, _), f in zip(runs, floors, strict=True))
    issue = sorted(
        seconds / (f.bytes_per_step * sc.pred_len) for (seconds, _), f in zip(runs, floors, strict=True)
    )
    best = min(range(len(runs)), key=lambda i: runs[i][0])
    (seconds, machine), f = runs[best], floors[best]
    print(
        f"[{sc.name}] {sc.note}, {dtype_name}: {statistics.median(ratios):.2f}x its floor (median of "
        f"{len(runs)} paired runs, {ratios[0]:.2f}-{ratios[-1]:.2f}x); issue's floor (bytes x {sc.pred_len} steps) "
        f"{statistics.median(issue):.2f}x. Fastest run {seconds:.3f} s against {f.total:.3f} s "
        f"({f.n_steps} one-token steps {f.steps:.3f} s + history pass {f.history:.3f} s + {f.n_windows} "
        f"window passes {f.windows:.3f} s; {machine.bandwidth / 1e9:.1f} GB/s, {machine.flops / 1e9:.0f} GFLOP/s)",
        flush=True,
    )


if __name__ == "__main__":
    main()
