"""Write the OHLCV series that train `kronos-default` as CSV files, from data shipped in PyPI packages.

Needs the `data` extra: pip install 'kronos[data]' (arch, backtesting, pmdarima, gym-anytrading).
Overlapping series are cut so that no validation segment (the final part of a series) lies inside
another series' training part: gym-anytrading's EURUSD hourly bars end before backtesting's EURUSD
begins, and its GOOGL (kept for the fine-tuning check) starts after backtesting's GOOG ends.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

SOURCES = {
    "SP500": "arch: arch.data.sp500.load(), S&P 500 index daily 1999-2018",
    "NASDAQ": "arch: arch.data.nasdaq.load(), NASDAQ Composite daily 1999-2018",
    "GOOG": "backtesting: backtesting.test.GOOG, Google daily 2004-2013",
    "EURUSD_H1_2017_2018": "backtesting: backtesting.test.EURUSD, EUR/USD hourly 2017-04 to 2018-02",
    "MSFT": "pmdarima: pmdarima.datasets.load_msft(), Microsoft daily 1986-2017",
    "EURUSD_H1_ASK_2017": "gym-anytrading: FOREX_EURUSD_1H_ASK, EUR/USD hourly ask 2017-01 to 2017-04",
}
# Kept out of the default model's data: the fine-tuning check (scripts/finetune_check.py) uses it
# as the "one more series" the shipped model has never seen.
FINETUNE_SOURCES = {"GOOGL": "gym-anytrading: STOCKS_GOOGL, Alphabet class A daily 2013-2018"}


def standard(df: pd.DataFrame, timestamps) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "timestamps": pd.to_datetime(timestamps),
            "open": df["Open"].to_numpy(dtype=float),
            "high": df["High"].to_numpy(dtype=float),
            "low": df["Low"].to_numpy(dtype=float),
            "close": df["Close"].to_numpy(dtype=float),
            "volume": df["Volume"].to_numpy(dtype=float),
        }
    )
    return out.sort_values("timestamps").reset_index(drop=True)


def load_all() -> dict[str, pd.DataFrame]:
    """Every series of SOURCES and FINETUNE_SOURCES, by name."""
    import arch.data.nasdaq
    import arch.data.sp500
    import gym_anytrading.datasets as gym_data
    import pmdarima.datasets
    from backtesting.test import EURUSD, GOOG

    series = {
        "SP500": standard(arch.data.sp500.load(), arch.data.sp500.load().index),
        "NASDAQ": standard(arch.data.nasdaq.load(), arch.data.nasdaq.load().index),
        "GOOG": standard(GOOG, GOOG.index),
        "EURUSD_H1_2017_2018": standard(EURUSD, EURUSD.index),
    }
    msft = pmdarima.datasets.load_msft()
    series["MSFT"] = standard(msft, msft["Date"])
    eurusd_ask = gym_data.FOREX_EURUSD_1H_ASK
    eurusd_ask = standard(eurusd_ask, pd.to_datetime(eurusd_ask.index, format="%d.%m.%Y %H:%M:%S.%f"))
    series["EURUSD_H1_ASK_2017"] = eurusd_ask[
        eurusd_ask["timestamps"] < series["EURUSD_H1_2017_2018"]["timestamps"].iloc[0]
    ]
    googl = gym_data.STOCKS_GOOGL
    googl = standard(googl, googl.index)
    series["GOOGL"] = googl[googl["timestamps"] > series["GOOG"]["timestamps"].iloc[-1]]
    # Bars with a zero range and zero volume are market holidays carried forward; drop them.
    for name, df in series.items():
        flat = (df["high"] == df["low"]) & (df["volume"] == 0)
        series[name] = df[~flat].reset_index(drop=True)
    return series


def write_examples(out: Path, bars: int = 400) -> None:
    """The example files in examples/: the last bars of two MIT/NCSA-licensed series."""
    import arch.data.sp500
    import gym_anytrading.datasets as gym_data

    sp500 = arch.data.sp500.load()
    eurusd = gym_data.FOREX_EURUSD_1H_ASK
    examples = {
        "sp500_daily.csv": standard(sp500, sp500.index),
        "eurusd_hourly.csv": standard(eurusd, pd.to_datetime(eurusd.index, format="%d.%m.%Y %H:%M:%S.%f")),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, df in examples.items():
        df = df[~((df["high"] == df["low"]) & (df["volume"] == 0))].iloc[-bars:]
        df.to_csv(out / name, index=False, float_format="%.6g")
        print(f"example {out / name}: {len(df)} bars")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="directory for the default model's CSV files")
    parser.add_argument(
        "--finetune-out", help="also write the fine-tuning check's series into this directory"
    )
    parser.add_argument("--examples", help="also write the example files of examples/ into this directory")
    args = parser.parse_args(argv)
    if args.examples:
        write_examples(Path(args.examples))
    for name, df in load_all().items():
        target = args.finetune_out if name in FINETUNE_SOURCES else args.out
        if not target:
            continue
        target = Path(target)
        target.mkdir(parents=True, exist_ok=True)
        df.to_csv(target / f"{name}.csv", index=False)
        source = {**SOURCES, **FINETUNE_SOURCES}[name]
        print(
            f"{target / name}.csv: {len(df)} bars {df['timestamps'].iloc[0]} .. {df['timestamps'].iloc[-1]} ({source})"
        )


if __name__ == "__main__":
    main()
