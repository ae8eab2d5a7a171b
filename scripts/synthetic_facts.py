"""Measure the stylised facts of a synthetic corpus by family (the table in docs/training.md).

Medians over each (market, spacing) family of: the autocorrelation of |r| at lag 1 and its mean
over lags 1-10, the mean |autocorrelation| of r over lags 1-10, excess kurtosis, the leverage
correlation corr(r_t, |r_t+1|), corr(log volume, |r|), the share of up-moves among non-zero moves,
and for intraday equity bars the first and last half hour's mean |log(close/open)| and volume
over those of 12:00-14:00. r is the close-to-close log return.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from kronos.training.synthetic import synthetic_corpus


def autocorrelation(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    return float((x[:-lag] * x[lag:]).mean() / x.var())


def session_ratios(df: pd.DataFrame) -> dict[str, float]:
    """First and last half hour over midday, for |log(close/open)| and volume."""
    body = np.abs(np.log(df["close"] / df["open"]))
    clock = df["timestamps"].dt.strftime("%H:%M")
    profile = pd.DataFrame({"move": body, "volume": df["volume"], "clock": clock}).groupby("clock").mean()
    midday = profile.loc["12:00":"13:59"].mean()
    first, last = profile.loc["09:30":"09:59"].mean() / midday, profile.loc["15:30":"15:59"].mean() / midday
    return {
        "open_move": first["move"],
        "close_move": last["move"],
        "open_volume": first["volume"],
        "close_volume": last["volume"],
    }


def facts(df: pd.DataFrame) -> dict[str, float]:
    r = np.diff(np.log(df["close"].to_numpy()))
    size = np.abs(r)
    return {
        "acf|r| 1": autocorrelation(size, 1),
        "acf|r| 1-10": float(np.mean([autocorrelation(size, lag) for lag in range(1, 11)])),
        "|acf r| 1-10": float(np.mean([abs(autocorrelation(r, lag)) for lag in range(1, 11)])),
        "kurtosis": float(pd.Series(r).kurt()),
        "leverage": float(np.corrcoef(r[:-1], size[1:])[0, 1]),
        "volume~|r|": float(np.corrcoef(np.log(df["volume"].to_numpy()[1:]), size)[0, 1]),
        "up share": float(np.mean(r[r != 0] > 0)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bars", type=int, default=4000)
    args = parser.parse_args(argv)
    rows = []
    for name, df in synthetic_corpus(args.series, args.seed, args.bars):
        _, _, market, spacing = name.split("_")
        row = {"family": f"{market} {spacing}", **facts(df)}
        if market == "equity" and spacing != "1d":
            row.update(session_ratios(df))
        rows.append(row)
    table = pd.DataFrame(rows)
    families = table.groupby("family")
    summary = families.median().assign(
        series=families.size(), **{"leverage < 0": families["leverage"].apply(lambda s: (s < 0).mean())}
    )
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(summary.round(3).to_string())
        print("all series:", table.drop(columns="family").median().round(3).to_dict())


if __name__ == "__main__":
    main()
