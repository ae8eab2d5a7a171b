"""Write a synthetic training corpus (kronos.training.synthetic) as CSV files the trainer reads.

Each series is one file, `<out>/SYN_<i>_<market>_<spacing>.csv`, written whole or not at all,
beside `synthetic.json`: the generator version, the seed, the mixture and every series' spec, so
the corpus can be rebuilt bit for bit (`--series 64 --seed 0` always gives the same files).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kronos.io import check_output_dir, write_atomically, write_text_atomically
from kronos.training.synthetic import (
    CORPUS_MIX,
    GENERATOR_VERSION,
    corpus_specs,
    spec_record,
    synthetic_series,
)

MANIFEST = "synthetic.json"


def build(out: Path, n_series: int, seed: int, bars: int) -> list[Path]:
    """Write the corpus and its manifest into `out` (created if missing); the files written."""
    out = check_output_dir(out, "--out")
    specs = corpus_specs(n_series, seed, bars)
    out.mkdir(parents=True, exist_ok=True)
    written, records = [], []
    for i, spec in enumerate(specs):
        name = f"SYN_{i:04d}_{spec.market}_{spec.spacing}"
        df = synthetic_series(spec)
        path = write_atomically(out / f"{name}.csv", lambda tmp, df=df: df.to_csv(tmp, index=False), name)
        written.append(path)
        records.append({"file": path.name, "bars": len(df), "spec": spec_record(spec)})
        print(f"{path}: {len(df)} bars {df['timestamps'].iloc[0]} .. {df['timestamps'].iloc[-1]}")
    manifest = {
        "generator": "kronos.training.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "series": n_series,
        "bars": bars,
        "mix": {f"{market} {spacing}": share for (market, spacing), share in CORPUS_MIX.items()},
        "files": records,
    }
    write_text_atomically(out / MANIFEST, json.dumps(manifest, indent=1) + "\n", MANIFEST)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for the CSV files and synthetic.json")
    parser.add_argument("--series", type=int, default=64, help="number of series (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--bars", type=int, default=4000, help="bars per series (default 4000)")
    args = parser.parse_args(argv)
    try:
        build(Path(args.out), args.series, args.seed, args.bars)
    except ValueError as err:
        parser.error(str(err))


if __name__ == "__main__":
    main()
