"""What bounds a generation step on this machine: bytes a one-token step streams against memory
bandwidth, and FLOPs of a window pass against matrix-multiply throughput (Kronos-small shapes).

    python benchmarks/machine_limits.py --threads 2

Bandwidth is a 256 MiB tensor copy (read + write) and throughput a [1024, 512] x [512, 1536]
product, each the fastest of `--repeat` timings, in float32 and bfloat16. The floors it prints are
what bench_generation.py's scenarios A-C cannot beat on this machine with these kernels.
"""

from __future__ import annotations

import argparse
import time

import torch

from kronos.nn.config import KRONOS_SMALL, ModelConfig


def fastest(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def copy_bandwidth(dtype: torch.dtype, repeat: int) -> float:
    """Bytes per second read and written by a copy of a 256 MiB tensor."""
    src = torch.ones(2**28 // torch.finfo(dtype).bits * 8, dtype=dtype)
    dst = torch.empty_like(src)
    return 2 * src.numel() * src.element_size() / fastest(lambda: dst.copy_(src), repeat)


def matmul_flops(dtype: torch.dtype, repeat: int) -> float:
    """FLOP/s of a [1024, 512] x [512, 1536] product, a window pass's typical shape."""
    x, w = torch.randn(1024, 512, dtype=dtype), torch.randn(1536, 512, dtype=dtype)
    return 2 * 1024 * 512 * 1536 / fastest(lambda: torch.nn.functional.linear(x, w), repeat)


def step_weights(config: ModelConfig) -> int:
    """Weights a one-token step multiplies by: blocks, fusion, dependency layer and both heads."""
    d, ff = config.d_model, config.ff_dim
    blocks = config.n_layers * (4 * d * d + 3 * d * ff)
    vocab = 2**config.s1_bits + 2**config.s2_bits
    return blocks + 2 * d * d + 4 * d * d + vocab * d


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights = step_weights(KRONOS_SMALL)
    d, layers = KRONOS_SMALL.d_model, KRONOS_SMALL.n_layers
    print(
        f"torch {torch.__version__}, {args.threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    print(
        f"oneDNN bf16 kernels (the CPU's bf16 instructions): {torch.ops.mkldnn._is_mkldnn_bf16_supported()}"
    )
    # B's slide: the 400-token history part once, then 5 paths x ~116 generated tokens
    window_tokens = 400 + 5 * 116
    window_flops = 2 * window_tokens * layers * (4 * d * d + 3 * d * KRONOS_SMALL.ff_dim)
    for dtype in (torch.float32, torch.bfloat16):
        size = torch.finfo(dtype).bits // 8
        bandwidth, flops = copy_bandwidth(dtype, args.repeat), matmul_flops(dtype, args.repeat)
        kv = 2 * layers * 512 * d * size  # one row's keys and values at a full 512-token window
        step_bytes = weights * size + kv
        print(
            f"{str(dtype):15s} memory {bandwidth / 1e9:5.1f} GB/s, matmul {flops / 1e9:6.1f} GFLOP/s; "
            f"a one-token step streams {step_bytes / 1e6:5.1f} MB (weights {weights * size / 1e6:.1f} MB): "
            f">= {step_bytes / bandwidth * 1e3:5.2f} ms; B's window pass {window_flops / 1e9:.1f} GFLOP: "
            f">= {window_flops / flops:.2f} s"
        )


if __name__ == "__main__":
    main()
