"""Run the upstream compatibility fixtures and the generation speed scenarios on a CUDA device, in
one command, and print a summary. For the day a GPU machine is lent; installs nothing.

    python scripts/gpu_check.py                      # cuda:0, scenarios A B C D, modes fp32 bf16 streaming
    python scripts/gpu_check.py --scenarios A C --repeat 3

1. The fixtures (tests/fixtures/compat/tiny, made by upstream on CPU in float32): the model's and
   tokenizer's outputs, and every greedy `predict` / `predict_batch` case, computed on the device
   and compared with the CPU tolerances of tests/test_compat.py (token ids exactly, floats to
   rtol 1e-4). A case that differs is reported with its largest difference: on a GPU, float32
   products round otherwise than on the CPU, and a greedy path may part at a near tie.
2. benchmarks/bench_generation.py on the device (cached fp32, bf16, streaming; no plain runs).
Exits 2 without a CUDA device, 1 if a fixture case differs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "compat" / "tiny"
RTOL = 1e-4  # as tests/test_compat.py
COLUMNS = ["open", "high", "low", "close", "volume", "amount"]


def difference(got: np.ndarray, want: np.ndarray) -> str | None:
    """None if `got` matches `want` as test_compat asks, else what differs."""
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if want.dtype.kind in "iu":
        wrong = int((got != want).sum())
        return None if wrong == 0 else f"{wrong} of {want.size} token ids differ"
    atol = RTOL * 1e-2 * float(np.abs(want).max())
    if np.allclose(got, want, rtol=RTOL, atol=atol):
        return None
    return (
        f"largest difference {float(np.abs(got - want).max()):.3g} (tolerance rtol {RTOL}, atol {atol:.3g})"
    )


def fixture_outputs(device: torch.device) -> dict[str, np.ndarray]:
    """The fixture's model, tokenizer and predictor cases computed on `device`."""
    from kronos import Kronos, KronosPredictor, KronosTokenizer

    cases = json.loads((FIXTURES / "cases.json").read_text())
    with np.load(FIXTURES / "expected.npz") as data:
        expected = {k: data[k] for k in data.files}
    model = Kronos.from_pretrained(FIXTURES / "model").to(device).eval()
    tokenizer = KronosTokenizer.from_pretrained(FIXTURES / "tokenizer").to(device).eval()
    bars = pd.read_csv(FIXTURES / "ohlcv.csv", parse_dates=["timestamps"])
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        x = torch.tensor(expected["window_norm"], device=device)[None]
        stamp = torch.tensor(expected["window_stamp"], device=device)[None]
        s1, s2 = tokenizer.encode(x, half=True)
        out["encode_s1"], out["encode_s2"] = s1, s2
        out["decode_half"] = tokenizer.decode([s1, s2], half=True)
        logits, context = model.decode_s1(s1, s2, stamp)
        out["decode_s1_logits"], out["decode_s1_context"] = logits, context
        next_s1 = torch.tensor(expected["decode_s2_next"], device=device)
        out["decode_s2_logits"] = model.decode_s2(context, next_s1)
    predictor = KronosPredictor(model, tokenizer, device=device, max_context=64)
    stamps = bars["timestamps"]
    for case in cases["cases"]:
        sampling = dict(T=case.get("T"), top_k=case.get("top_k"), top_p=case.get("top_p"))
        if case.get("call") == "predict":
            (start, stop), n = case["rows"], case["pred_len"]
            frame = predictor.predict(
                bars.iloc[start:stop][COLUMNS], stamps.iloc[start:stop], stamps.iloc[stop : stop + n],
                pred_len=n, sample_count=case["sample_count"], verbose=False, **sampling,
            )  # fmt: skip
            out[case["name"]] = frame.to_numpy()
        elif case.get("call") == "predict_batch":
            rows, n = case["series_rows"], case["pred_len"]
            frames = predictor.predict_batch(
                [bars.iloc[a:b] for a, b in rows], [stamps.iloc[a:b] for a, b in rows],
                [stamps.iloc[b : b + n] for _, b in rows],
                pred_len=n, sample_count=case["sample_count"], verbose=False, **sampling,
            )  # fmt: skip
            out["predict_batch"] = np.stack([f.to_numpy() for f in frames])
    return {k: np.asarray(v.float().cpu() if isinstance(v, torch.Tensor) else v) for k, v in out.items()}


def check_fixtures(device: torch.device) -> list[str]:
    """Print each case's verdict; return the names of the cases that differ."""
    with np.load(FIXTURES / "expected.npz") as data:
        expected = {k: data[k] for k in data.files}
    failed = []
    for name, got in fixture_outputs(device).items():
        verdict = difference(got, expected[name])
        print(f"  {name:28s} {'exact' if verdict is None else 'DIFFERS: ' + verdict}")
        if verdict is not None:
            failed.append(name)
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--scenarios", nargs="+", default=["A", "B", "C", "D"])
    parser.add_argument("--modes", nargs="+", default=["fp32", "bf16", "streaming"])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device (torch.cuda.is_available() is False): run it on a GPU machine",
            file=sys.stderr,
        )
        return 2
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(device)}")
    print("1. compatibility fixtures on the device:")
    failed = check_fixtures(device)
    print("2. generation speed on the device:", flush=True)
    bench = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_generation.py"), "--device", str(device),
         "--scenarios", *args.scenarios, "--modes", *args.modes, "--repeat", str(args.repeat)],
        cwd=ROOT / "benchmarks",
    )  # fmt: skip
    print(
        f"summary: fixtures {'all exact' if not failed else 'differ: ' + ', '.join(failed)}; "
        f"speed scenarios {'ran' if bench.returncode == 0 else f'FAILED (exit {bench.returncode})'}"
    )
    return 1 if failed or bench.returncode else 0


if __name__ == "__main__":
    sys.exit(main())
