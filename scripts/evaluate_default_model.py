"""Evaluate the shipped `kronos-default` on the held-out final 10% of each series it was trained on.

    python scripts/build_default_data.py --out runs/default-model/data     # needs pip install 'kronos-forecasting[data]'
    python scripts/evaluate_default_model.py --data runs/default-model/data --out reports/kronos-default

Each held-out segment gets `--lookback` bars of history before it (the last training bars, which
the model saw in training; no forecast target lies outside the held-out part), then `kronos
evaluate` runs rolling origins over it against the naive baselines.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from kronos.commands.main import main as kronos_main
from kronos.training.dataset import split_point


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="folder of the training series (build_default_data.py)")
    parser.add_argument("--out", default="reports/kronos-default")
    parser.add_argument(
        "--val-fraction", type=float, default=0.1, help="as data.val_fraction in configs/default.toml"
    )
    parser.add_argument("--lookback", type=int, default=108)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--origins", type=int, default=34, help="origins per series")
    parser.add_argument("--paths", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(Path(args.data).glob("*.csv")):
            series = pd.read_csv(path)
            start = split_point(len(series), args.val_fraction) - args.lookback
            series.iloc[start:].to_csv(Path(tmp) / path.name, index=False)
        raise SystemExit(
            kronos_main(
                [
                    "evaluate",
                    tmp,
                    "--lookback",
                    str(args.lookback),
                    "--steps",
                    str(args.steps),
                    "--origins",
                    str(args.origins),
                    "--paths",
                    str(args.paths),
                    "--out",
                    args.out,
                    "--max-context",
                    "128",
                ]
            )
        )


if __name__ == "__main__":
    main()
