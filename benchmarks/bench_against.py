"""The cached engine of this checkout against the one of another source tree, in one process.

Both get the same weights (Kronos-small and Tokenizer-base shapes, random), inputs and seeds, as
in bench_generation.py; runs alternate between the two and the fastest of each is reported, with
the ratio of the medians (steadier on a busy machine). One process avoids the minutes that
building and warming a model in a fresh process take on a busy machine, so the comparison fits in
a few minutes. The other tree may have either layout:
generation in `kronos.engine.generation` (this one) or, before the layered folders, in
`kronos.generation`.

    git archive HEAD~1 src | tar -x -C /tmp/old
    python benchmarks/bench_against.py /tmp/old/src --repeat 3
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from bench_generation import SCENARIOS, build, inputs

from kronos.nn.config import KRONOS_SMALL, KRONOS_TOKENIZER_BASE

ABSOLUTE_IMPORT = re.compile(r"^(\s*)(from|import) kronos(?=[.\s])", re.MULTILINE)


def import_as(src: str, name: str):
    """The kronos package in `src` imported under another name: (its generation module, the
    package, the folder of the copy). Absolute imports of kronos are renamed in the copy;
    relative ones need nothing."""
    folder = Path(tempfile.mkdtemp())
    shutil.copytree(Path(src) / "kronos", folder / name)
    for path in (folder / name).rglob("*.py"):
        path.write_text(ABSOLUTE_IMPORT.sub(rf"\1\2 {name}", path.read_text()))
    sys.path.insert(0, str(folder))
    package = importlib.import_module(name)
    layered = (folder / name / "engine" / "generation.py").exists()
    return (
        importlib.import_module(f"{name}.engine.generation" if layered else f"{name}.generation"),
        package,
        folder,
    )


def generate(generation, tokenizer, model, sampling, x, x_stamp, y_stamp, max_context: int):
    """generate_tokens in the calling convention of the tree that `generation` comes from: a
    SeriesBatch, or in trees before it the tensors and lengths one by one."""
    if hasattr(generation, "SeriesBatch"):
        batch = generation.SeriesBatch(x, x_stamp, y_stamp)
        return generation.generate_tokens(tokenizer, model, batch, sampling, max_context)
    pred_len = y_stamp.shape[1]
    return generation.generate_tokens(tokenizer, model, x, x_stamp, y_stamp, max_context, pred_len, sampling)


def run(generation, tokenizer, model, sampling, x, x_stamp, y_stamp, max_context: int) -> tuple[float, list]:
    torch.manual_seed(2)
    start = time.perf_counter()
    tokens = generate(generation, tokenizer, model, sampling, x, x_stamp, y_stamp, max_context)
    generation.decode_tokens(tokenizer, tokens, max_context)
    return time.perf_counter() - start, list(tokens.generated)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("against", help="the other source tree's src folder")
    parser.add_argument("--scenarios", nargs="+", default=["A", "B", "C", "D"], choices=list(SCENARIOS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="sample with this seed (this checkout: batch-invariant kernels)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from kronos.engine import generation

    old_generation, old_kronos, folder = import_as(args.against, "kronos_against")
    tokenizer, model = build("cpu", torch.float32)
    old_tokenizer = old_kronos.KronosTokenizer(**asdict(KRONOS_TOKENIZER_BASE)).eval()
    old_model = old_kronos.Kronos(**asdict(KRONOS_SMALL)).eval()
    old_tokenizer.load_state_dict(tokenizer.state_dict())
    old_model.load_state_dict(model.state_dict())
    engines = {"this": (generation, tokenizer, model), "against": (old_generation, old_tokenizer, old_model)}
    print(
        f"torch {torch.__version__}, {args.threads} threads, fastest of {args.repeat} alternating runs, "
        f"seed {args.seed}"
    )
    for name in args.scenarios:
        sc = SCENARIOS[name]
        sampling = replace(sc.sampling(), seed=args.seed)
        x, x_stamp, y_stamp = inputs(sc, "cpu")
        seconds: dict[str, list[float]] = {label: [] for label in engines}
        tokens = {}
        for gen, tok, mod in engines.values():  # warm-up: prefill, a growing and a sliding step
            run(gen, tok, mod, sampling, x[:1], x_stamp[:1], y_stamp[:1, :3], sc.hist_len + 1)
        for _ in range(args.repeat):
            for label, (gen, tok, mod) in engines.items():
                t, tokens[label] = run(gen, tok, mod, sampling, x, x_stamp, y_stamp, sc.max_context)
                seconds[label].append(t)
        this, against = min(seconds["this"]), min(seconds["against"])
        middle = statistics.median(seconds["this"]) / statistics.median(seconds["against"]) - 1
        same = all(torch.equal(a, b) for a, b in zip(tokens["this"], tokens["against"]))
        print(
            f"[{name}] {sc.note}: {this:.2f} s against {against:.2f} s ({this / against - 1:+.1%}; medians "
            f"{middle:+.1%}); runs "
            + ", ".join(f"{t:.2f}" for t in seconds["this"])
            + " against "
            + ", ".join(f"{t:.2f}" for t in seconds["against"])
            + f"; identical tokens: {same}",
            flush=True,
        )
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
