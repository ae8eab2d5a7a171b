"""kronos.mcpserver.server through the MCP SDK's own client: `kronos mcp` over stdio (a process of
its own) and `kronos serve`'s /v1/mcp over streamable HTTP. Seeded forecasts are compared with
`predict_quantiles`, evaluations with `kronos evaluate`'s summary.csv; bad arguments must come
back as tool errors while the server keeps answering."""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import httpx2
import numpy as np
import pandas as pd
import pytest
from kronos_server import API_KEY, TEST_ARGS, start_server
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from kronos.forecasting.predictor import KronosPredictor

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sp500_daily.csv"
LEVELS = [0.1, 0.5, 0.9]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """The folder the servers may read: the example, and a link inside it to a file outside."""
    folder = tmp_path_factory.mktemp("root")
    shutil.copy(EXAMPLE, folder / "sp500_daily.csv")
    outside = folder.parent / "secret.csv"
    shutil.copy(EXAMPLE, outside)
    (folder / "link.csv").symlink_to(outside)
    return folder


@pytest.fixture(scope="module")
def predictor() -> KronosPredictor:
    return KronosPredictor.from_pretrained()


@asynccontextmanager
async def stdio_session(root: Path):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "kronos", "mcp", "--root", str(root), "--max-steps", "64"],
        # this process's environment: BLAS settings (OPENBLAS_CORETYPE...) pick kernels whose rounding
        # the GARCH fits see, and the server's numbers are compared with the command's, run from here
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)},
        cwd=str(root),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(url: str, key: str = API_KEY):
    async with (
        httpx2.AsyncClient(headers={"X-API-Key": key}, timeout=120) as client,
        streamable_http_client(f"{url}/v1/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def last_bars(count: int) -> list[dict]:
    frame = pd.read_csv(EXAMPLE).tail(count)
    return [
        {"timestamp": row.timestamps, "open": row.open, "high": row.high, "low": row.low,
         "close": row.close, "volume": row.volume}
        for row in frame.itertuples()
    ]  # fmt: skip


def expected_quantiles(predictor, answer: dict, series_id: object, paths: int, seed: int) -> pd.DataFrame:
    """predict_quantiles of the last lookback bars of the example, at the answer's future timestamps."""
    frame = pd.read_csv(EXAMPLE, parse_dates=["timestamps"]).tail(predictor.lookback)
    return predictor.predict_quantiles(
        frame,
        frame["timestamps"],
        pd.DatetimeIndex(pd.to_datetime(answer["timestamps"])),
        pred_len=len(answer["timestamps"]),
        quantile_levels=LEVELS,
        sampling=predictor.sampling_with(sample_count=paths, seed=seed),
        series_id=series_id,
    )


def assert_same_forecast(answer: dict, expected: pd.DataFrame) -> None:
    for field in ("open", "close", "volume"):
        for level in LEVELS:
            got = answer["quantiles"][field][f"{level:g}"]
            np.testing.assert_array_equal(got, expected[f"{field}_q{level}"].to_numpy(), err_msg=field)
        np.testing.assert_array_equal(answer["mean"][field], expected[f"{field}_mean"].to_numpy())
    np.testing.assert_array_equal(answer["prob_up"], expected["prob_close_above_last"].to_numpy())
    np.testing.assert_array_equal(answer["expected_volatility"], expected["realized_vol"].to_numpy())


async def forecast(session: ClientSession, progress: list | None = None, **arguments):
    async def record(done: float, total: float | None, message: str | None) -> None:
        if progress is not None:
            progress.append((done, total, message))

    return await session.call_tool("forecast", arguments, progress_callback=record)


async def refusals(session: ClientSession, root: Path) -> dict[str, str]:
    """Each bad call's error text (each must be a tool error)."""
    calls = {
        "parent": {"file": "../secret.csv", "steps": 3},
        "absolute": {"file": str(root.parent / "secret.csv"), "steps": 3},
        "symlink": {"file": "link.csv", "steps": 3},
        "missing": {"file": "nothing.csv", "steps": 3},
        "zero steps": {"file": "sp500_daily.csv", "steps": 0},
        "steps over cap": {"file": "sp500_daily.csv", "steps": 65},
        "bad levels": {"file": "sp500_daily.csv", "steps": 3, "quantile_levels": [0.5, 1.5]},
        "both": {"file": "sp500_daily.csv", "bars": last_bars(10), "steps": 3},
        "wrong type": {"file": "sp500_daily.csv", "steps": "three"},
        "unknown model": {"file": "sp500_daily.csv", "steps": 3, "model": "NeoQuasar/Kronos-huge"},
        "bad bar": {"bars": last_bars(10)[:-1] + [{"timestamp": "2019-01-01", "open": 1}], "steps": 3},
    }
    texts = {}
    for name, arguments in calls.items():
        result = await session.call_tool("forecast", arguments)
        assert result.is_error, name
        texts[name] = result.content[0].text
    evaluate = await session.call_tool("evaluate", {"file": "../secret.csv", "steps": 3})
    assert evaluate.is_error
    texts["evaluate outside"] = evaluate.content[0].text
    return texts


def check_refusals(texts: dict[str, str], root: Path) -> None:
    for name in ("parent", "absolute", "symlink", "evaluate outside"):
        assert "is outside the folder this server may read" in texts[name], texts[name]
        assert str(root) in texts[name]
    assert "data file 'nothing.csv' does not exist" in texts["missing"]
    assert "steps must be a positive number, got 0" in texts["zero steps"]
    assert "steps is 65, over this server's cap of 64" in texts["steps over cap"]
    assert "quantile_levels must lie strictly between 0 and 1" in texts["bad levels"]
    assert "either as bars" in texts["both"]
    assert "steps" in texts["wrong type"] and "valid integer" in texts["wrong type"]
    assert "model 'NeoQuasar/Kronos-huge' is not available here" in texts["unknown model"]
    assert "bars" in texts["bad bar"] and "close" in texts["bad bar"]


def test_stdio_forecast_is_predict_quantiles_and_refusals_are_tool_errors(root, predictor):
    async def scenario():
        async with stdio_session(root) as session:
            progress: list = []
            inline = await forecast(
                session, progress, bars=last_bars(predictor.lookback), steps=6, paths=8, seed=3,
                quantile_levels=LEVELS,
            )  # fmt: skip
            from_file = await forecast(
                session, file="sp500_daily.csv", steps=6, paths=8, seed=3, quantile_levels=LEVELS
            )
            texts = await refusals(session, root)
            listed = await session.call_tool("models", {})
            again = await forecast(session, file="sp500_daily.csv", steps=2, paths=2)
        return inline, from_file, progress, texts, listed, again

    inline, from_file, progress, texts, listed, again = anyio.run(scenario)
    assert not inline.is_error and not from_file.is_error, (inline.content, from_file.content)
    assert_same_forecast(
        inline.structured_content, expected_quantiles(predictor, inline.structured_content, 0, 8, 3)
    )
    # a file is keyed by its name, as `kronos forecast FILE` keys it
    answer = from_file.structured_content
    assert_same_forecast(answer, expected_quantiles(predictor, answer, "sp500_daily", 8, 3))
    assert f"last close {answer['last_close']:.6g}" in from_file.content[0].text
    assert f"= {answer['prob_up'][-1]:.2f}" in from_file.content[0].text
    # one notification per generation step, never decreasing
    assert [p[0] for p in progress] == [float(i) for i in range(1, 7)] and progress[-1][1] == 6
    check_refusals(texts, root)
    # the server kept answering
    assert not listed.is_error and listed.structured_content["models"][0]["name"] == "kronos-default"
    assert listed.structured_content["models"][0]["lookback"] == predictor.lookback
    assert not again.is_error and len(again.structured_content["timestamps"]) == 2


def test_stdio_evaluate_gives_the_commands_summary(root, kronos_command, tmp_path):
    arguments = {"file": "sp500_daily.csv", "steps": 4, "origins": 6, "paths": 6, "calibrate": False}

    async def scenario():
        async with stdio_session(root) as session:
            progress: list = []

            async def record(done, total, message) -> None:
                progress.append(done)

            result = await session.call_tool("evaluate", arguments, progress_callback=record)
        return result, progress

    result, progress = anyio.run(scenario)
    assert not result.is_error, result.content
    status, _, _ = kronos_command(
        "evaluate", str(root / "sp500_daily.csv"), "--steps", "4", "--origins", "6", "--paths", "6",
        "--out", str(tmp_path / "report"), "--no-plots", "--quiet",
    )  # fmt: skip
    assert status == 0
    expected = pd.read_csv(tmp_path / "report" / "summary.csv", index_col=0)
    summary = result.structured_content["summary"]
    assert sorted(summary) == sorted(expected.index)
    for method, row in expected.iterrows():
        for column, value in row.items():
            got = summary[method][column]
            if isinstance(value, str):
                assert got == value, (method, column)
            elif np.isnan(value):
                assert got is None, (method, column)
            else:
                assert got == pytest.approx(value, rel=1e-12, abs=1e-15), (method, column)
    report = (tmp_path / "report" / "report.md").read_text()
    for sentence in result.structured_content["verdict"]:
        assert f"- {sentence}" in report
    assert result.structured_content["verdict"][0] in result.content[0].text
    assert progress == [6.0]  # one batch of 6 origins


@pytest.fixture(scope="module")
def served(tmp_path_factory, root):
    server = start_server(tmp_path_factory.mktemp("serve-mcp"), TEST_ARGS + ["--root", str(root)], API_KEY)
    yield server
    server.stop()


def test_http_forecast_under_the_api_key(served, root, predictor):
    async def scenario():
        async with http_session(served.url) as session:
            progress: list = []
            result = await forecast(
                session, progress, file="sp500_daily.csv", steps=5, paths=8, seed=11, quantile_levels=LEVELS
            )
            outside = await forecast(session, file="link.csv", steps=5)
            over = await forecast(session, file="sp500_daily.csv", steps=5, paths=65)
            listed = await session.call_tool("models", {})
        return result, progress, outside, over, listed

    result, progress, outside, over, listed = anyio.run(scenario)
    assert not result.is_error, result.content
    answer = result.structured_content
    assert_same_forecast(answer, expected_quantiles(predictor, answer, "sp500_daily", 8, 11))
    assert len(progress) == 5
    assert outside.is_error and "is outside the folder this server may read" in outside.content[0].text
    assert over.is_error and "paths is 65, over this server's cap of 64" in over.content[0].text
    assert not listed.is_error and listed.structured_content["limits"]["max_steps"] == 64
    # the service's API key guards the endpoint
    refused = httpx.post(f"{served.url}/v1/mcp", json={}, headers={"Accept": "application/json"})
    assert refused.status_code == 401
