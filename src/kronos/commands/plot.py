"""`kronos forecast --plot`: the recent history of one series as candles with volume, then the
median forecast close with its bands. matplotlib is imported when a plot is drawn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kronos.forecasting.series import Series
from kronos.io import write_atomically

UP, DOWN, FORECAST = "#26a69a", "#ef5350", "#1f77b4"
BANDS = ((0.025, 0.975, 0.12), (0.1, 0.9, 0.2), (0.25, 0.75, 0.3))  # low and high level, opacity


def plot_forecast(series: Series, forecast: pd.DataFrame, path: str, model: str, bars: int) -> None:
    """Draw `series` and the forecast of its next `len(forecast)` bars, made from its last `bars`,
    to the PNG file `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = len(forecast)
    shown = series.frame().iloc[-max(3 * steps, 60) :].reset_index(drop=True)
    fig, (ax, ax_vol) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    try:
        _draw_candles(ax, ax_vol, shown)
        _draw_forecast(ax, ax_vol, shown, forecast)
        prob_up = forecast["prob_close_above_last"].iloc[-1]
        built = " (open/high/low built from the close)" if series.synthetic_ohlc else ""
        ax.set_title(
            f"{series.name}{built}: {steps}-step forecast by {model} from {bars} bars; "
            f"P(close ends above last) = {prob_up:.0%}"
        )
        _label_axes(ax, ax_vol, list(shown["timestamps"]) + list(forecast["timestamps"]))
        write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight"), "--plot")
    finally:
        plt.close(fig)


def _draw_candles(ax: Any, ax_vol: Any, shown: pd.DataFrame) -> None:
    """Candles of the bars `shown` at x = 0, 1, ..., their volume below."""
    x = np.arange(len(shown))
    up = shown["close"] >= shown["open"]
    least_body = (shown["high"].max() - shown["low"].min()) * 0.002  # a flat bar stays visible
    for mask, color in ((up, UP), (~up, DOWN)):
        ax.vlines(x[mask], shown["low"][mask], shown["high"][mask], color=color, lw=1)
        body_low = np.minimum(shown["open"], shown["close"])[mask]
        body = np.maximum((shown["close"] - shown["open"]).abs()[mask], least_body)
        ax.bar(x[mask], body, bottom=body_low, width=0.7, color=color, edgecolor=color)
        ax_vol.bar(x[mask], shown["volume"][mask], width=0.7, color=color, alpha=0.6)


def _draw_forecast(ax: Any, ax_vol: Any, shown: pd.DataFrame, forecast: pd.DataFrame) -> None:
    """The bands and median of the forecast close, joined to the last close, and the mean volume."""
    n = len(shown)
    x_future = np.arange(n, n + len(forecast))
    joined = np.concatenate([[n - 1], x_future])
    last_close = shown["close"].iloc[-1]
    for low, high, alpha in BANDS:
        if f"close_q{low:g}" in forecast and f"close_q{high:g}" in forecast:
            ax.fill_between(
                joined,
                np.r_[last_close, forecast[f"close_q{low:g}"]],
                np.r_[last_close, forecast[f"close_q{high:g}"]],
                color=FORECAST,
                alpha=alpha,
                lw=0,
                label=f"{round((high - low) * 100)}% band",
            )
    if "close_q0.5" in forecast:
        ax.plot(
            joined, np.r_[last_close, forecast["close_q0.5"]], color=FORECAST, lw=2, label="median forecast"
        )
    ax.axvline(n - 0.5, color="grey", ls="--", lw=1)
    ax_vol.bar(x_future, forecast["volume_mean"], width=0.7, color=FORECAST, alpha=0.4)


def _label_axes(ax: Any, ax_vol: Any, stamps: list[pd.Timestamp]) -> None:
    """Axis labels, legend, grid, and eight time ticks over the history and forecast `stamps`."""
    from matplotlib.ticker import EngFormatter

    ax.set_ylabel("price")
    ax_vol.set_ylabel("volume")
    ax_vol.yaxis.set_major_formatter(EngFormatter())
    ax.legend(loc="best", framealpha=0.9)
    ax.grid(alpha=0.25)
    ax_vol.grid(alpha=0.25)
    ticks = np.linspace(0, len(stamps) - 1, 8).round().astype(int)
    fmt = "%Y-%m-%d" if all(t.hour == 0 and t.minute == 0 for t in stamps) else "%m-%d %H:%M"
    ax_vol.set_xticks(ticks)
    ax_vol.set_xticklabels([stamps[i].strftime(fmt) for i in ticks], rotation=0)
    ax_vol.set_xlim(-1, len(stamps))
