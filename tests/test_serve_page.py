"""The page at / in a real browser: Debian's chromium driven by Playwright against `kronos serve`.

Runs in CI (.ci/run installs chromium); skipped only on a machine without chromium outside CI.
The screenshot is saved to tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from kronos_server import API_KEY, CAPS

from kronos.forecasting.pretrained import shipped_dir
from kronos.serve.app import PAGE_PATHS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SP500 = shipped_dir().parents[3] / "examples" / "sp500_daily.csv"
# Without the background-networking flags chromium's own connections are refused on a closed network.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install -y chromium); CI installs it and never skips",
)


@pytest.fixture(scope="module")
def page(kronos_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
        page.goto(kronos_server.url + "/")
        yield page
        browser.close()
        assert not errors, errors  # no script error, and nothing fetched from anywhere but the server


def drawn(page) -> dict:
    """What Plotly drew: traces by type and the SVG elements of candles and filled bands."""
    return page.evaluate(
        """() => ({
            traces: document.getElementById('chart').data.map(t => [t.type, t.name || '']),
            candles: document.querySelectorAll('#chart g.trace.boxes path.box').length,
            fills: [...document.querySelectorAll('#chart path.js-fill')].filter(p => (p.getAttribute('d') || '').length > 20).length,
            stats: document.getElementById('chart-stats').data.map(t => t.name),
        })"""
    )


def slot_widths(page) -> list[float]:
    """The horizontal distance in pixels between each two consecutive bars drawn, history and forecast."""
    return page.evaluate(
        """() => {
            const chart = document.getElementById('chart');
            const axis = chart._fullLayout.xaxis;
            const slots = axis.categoryarray.map((x) => axis.l2p(axis.d2l(x)));
            return slots.slice(1).map((p, i) => p - slots[i]);
        }"""
    )


def test_page_reads_a_csv_forecasts_and_draws_candles_fans_and_statistics(page, tmp_path):
    # the server wants a key: the page asks for it
    page.wait_for_selector("#key-box:not([hidden])", timeout=30_000)
    page.fill("#api-key", API_KEY)
    page.click("#save-key")
    page.wait_for_selector("body[data-status=idle]", timeout=30_000)
    assert "kronos-default" in page.inner_text("#model")
    # the page's default paths (from /v1/models), within this server's cap
    assert page.input_value("#paths") == str(min(PAGE_PATHS, CAPS["max_paths"]))

    broken = tmp_path / "broken.csv"
    frame = pd.read_csv(SP500)
    frame.astype({"close": object}).assign(close=lambda f: f["close"].where(f.index != 7, "oops")).to_csv(
        broken, index=False
    )
    page.set_input_files("#file", str(broken))
    page.wait_for_selector("body[data-status=error]", timeout=30_000)
    message = page.inner_text("#error")
    assert (
        "column 'close' must be numeric" in message and "'oops' at line 9" in message
    )  # as kronos forecast names it

    page.set_input_files("#file", str(SP500))
    page.wait_for_selector("body[data-status=data]", timeout=30_000)
    assert page.inner_text("#data-info").startswith("sp500_daily: 400 bars")
    page.fill("#steps", "12")
    page.fill("#paths", "30")
    page.click("#run")
    page.wait_for_selector("body[data-status=drawn]", timeout=60_000)
    chart = drawn(page)
    assert ["candlestick", "history"] in chart["traces"]
    assert ["scatter", "median"] in chart["traces"]
    assert {"95% band", "80% band", "50% band"} <= {name for _, name in chart["traces"]}
    assert chart["candles"] == 60  # the last max(4 x steps, 60) bars of the history, one path each
    assert chart["fills"] >= 3
    assert chart["stats"] == ["predicted volatility", "historical (√h × per bar)", "P(close above last)"]
    assert page.inner_text("#c-pup").endswith("%")
    assert " / " in page.inner_text("#c-vol")
    widths = slot_widths(page)  # weekends and holidays take no width: every bar one slot
    assert len(widths) == 60 + 12 - 1 and max(widths) - min(widths) < 0.1
    first_shown = str(frame["timestamps"].iloc[-60])[:10]  # daily bars: ticks are dates
    assert page.evaluate("document.getElementById('chart').layout.xaxis.ticktext[0]") == first_shown
    assert "calibrated" not in page.evaluate("document.getElementById('chart').layout.title.text")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve_page.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#download")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("timestamps,open_mean,open_q0.025,")
    assert lines[0].endswith(",prob_close_above_last,realized_vol")
    assert len(lines) == 13 and lines[1].startswith("2019-01-01")


def test_a_calibrated_forecast_draws_and_downloads_its_calibrated_bands(page):
    before = page.evaluate("document.getElementById('chart').data.map(t => t.y)")
    page.check("#calibrate")
    page.click("#run")
    page.wait_for_function(
        "document.body.dataset.status === 'drawn' && document.getElementById('footnote').textContent.includes('Calibrated')"
    )
    chart = drawn(page)
    assert {"95% band", "80% band", "50% band", "median"} <= {name for _, name in chart["traces"]}
    assert chart["fills"] >= 3
    assert "12-step forecast, calibrated" in page.evaluate(
        "document.getElementById('chart').layout.title.text"
    )
    # 400 bars, 12 steps: a past forecast every 6 bars from bar 108, the last ending at bar 400
    assert "Calibrated on 47 past forecasts" in page.inner_text("#footnote")
    after = page.evaluate("document.getElementById('chart').data.map(t => t.y)")
    assert after != before  # the bands moved
    page.screenshot(path=str(ARTIFACTS / "serve_page_calibrated.png"), full_page=True)
    bands = page.evaluate("document.getElementById('chart').data.find(t => t.name === '80% band').y")
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "sp500_daily_forecast_calibrated.csv"
    table = pd.read_csv(download.value.path())
    assert len(table) == 12
    assert table["close_q0.9"].tolist() == bands[1:]  # the band drawn is the one downloaded
    page.uncheck("#calibrate")


def test_replay_overlays_what_happened_after_an_earlier_bar(page):
    page.check("#replay")
    page.eval_on_selector("#origin", "el => { el.value = 300; el.dispatchEvent(new Event('input')); }")
    assert page.inner_text("#origin-info").startswith("from bar 301 of 400 (2018-08-08)")
    page.click("#run")
    page.wait_for_function(
        "document.body.dataset.status === 'drawn' && !document.getElementById('card-replay').hidden"
    )
    chart = drawn(page)
    assert ["candlestick", "actual"] in chart["traces"]
    assert chart["candles"] == 60 + 12  # the history's, then the 12 bars that followed the origin
    assert page.inner_text("#c-replay").endswith("of 12 steps")
    page.screenshot(path=str(ARTIFACTS / "serve_page_replay.png"), full_page=True)


def test_intraday_bars_are_drawn_without_their_night_and_weekend_gaps(page):
    page.uncheck("#replay")
    page.select_option("#example", "eurusd_hourly")
    page.wait_for_function(
        "document.getElementById('data-info').textContent.startsWith('eurusd_hourly: 400 bars')"
    )
    page.fill("#paths", str(min(PAGE_PATHS, CAPS["max_paths"])))
    page.fill("#steps", "30")
    page.click("#run")
    page.wait_for_function(
        "document.body.dataset.status === 'drawn' && document.getElementById('chart').layout.title.text.includes('eurusd')"
    )
    # the 120 hourly bars shown span a weekend (Fri 21:00 to Sun 23:00) and Christmas (15 hours):
    # on a time axis the weekend alone would take 49 slots' width; here every bar takes one
    shown = page.evaluate("document.getElementById('chart').data[0].x")
    gaps = pd.Series(pd.to_datetime(shown)).diff().max()
    assert gaps >= pd.Timedelta("2 days")
    widths = slot_widths(page)
    assert len(widths) == 120 + 30 - 1 and max(widths) - min(widths) < 0.1
    ticks = page.evaluate("document.getElementById('chart').layout.xaxis.ticktext")
    assert 6 <= len(ticks) <= 10 and all(len(tick) == 11 for tick in ticks)  # "12-22 14:00"
    assert (
        page.evaluate("document.getElementById('chart').layout.title.text")
        == "eurusd_hourly: 30-step forecast"
    )
    page.screenshot(path=str(ARTIFACTS / "serve_page_intraday.png"), full_page=True)
