"""`kronos serve` as a client sees it: a real uvicorn process on 127.0.0.1 (tests/kronos_server.py).

The numbers must be those of `predict_quantiles` with the same seed, alone or micro-batched with
other requests; every bad input must get a 4xx JSON error naming the field (and row).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kronos_server import API_KEY, CAPS

from kronos import KronosPredictor
from kronos.commands.main import main
from kronos.engine.sampling import Sampling
from kronos.forecasting.pretrained import shipped_dir
from kronos.forecasting.schedules import future_timestamps
from kronos.forecasting.series import FEATURE_COLUMNS

torch.set_num_threads(1)  # as the server runs the small model
EXAMPLES = shipped_dir().parents[3] / "examples"
SP500 = EXAMPLES / "sp500_daily.csv"
FIELDS = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def predictor() -> KronosPredictor:
    return KronosPredictor.from_pretrained("kronos-default", device="cpu")


@pytest.fixture(scope="module")
def sp500() -> pd.DataFrame:
    return pd.read_csv(SP500, parse_dates=["timestamps"])


def as_bars(frame: pd.DataFrame) -> list[dict]:
    return [
        {"timestamp": str(stamp), **{f: float(row[f]) for f in FIELDS}}
        for stamp, row in zip(frame["timestamps"], frame.to_dict("records"))
    ]


def expected(
    predictor, frame: pd.DataFrame, steps: int, paths: int, levels, seed=0, series_id=0, calibration=None
) -> pd.DataFrame:
    """What the library gives for the bars a request sends: predict_quantiles on the last lookback bars,
    the future inferred from all of them."""
    future = future_timestamps(pd.DatetimeIndex(frame["timestamps"]), steps, "bars").timestamps
    history = frame.iloc[-predictor.lookback :]
    return predictor.predict_quantiles(
        history[FIELDS], history["timestamps"], future, steps,
        quantile_levels=levels, sampling=predictor.sampling_with(sample_count=paths, seed=seed), series_id=series_id, calibration=calibration,
    )  # fmt: skip


def calibrated(predictor, frame: pd.DataFrame, steps: int, paths: int, seed=0, series_id=0):
    """The calibration `kronos forecast --calibrate` fits: on every bar sent."""
    return predictor.calibrate(
        frame[FIELDS],
        frame["timestamps"],
        steps,
        sampling=predictor.sampling_with(sample_count=paths, seed=seed),
        series_id=series_id,
    )


def assert_same(answer: dict, table: pd.DataFrame, levels) -> None:
    assert answer["timestamps"] == [t.isoformat() for t in table.index]
    for field in FEATURE_COLUMNS:
        for level in levels:
            assert answer["quantiles"][field][f"{level:g}"] == table[f"{field}_q{level:g}"].tolist(), (
                field,
                level,
            )
        assert answer["mean"][field] == table[f"{field}_mean"].tolist()
    assert answer["prob_up"] == table["prob_close_above_last"].tolist()
    assert answer["expected_volatility"] == table["realized_vol"].tolist()
    assert answer["ohlc_violation_rate"] == table.attrs["ohlc_violation_rate"]


def _bars(n: int = 12) -> list[dict]:
    stamps = pd.date_range("2024-06-18 09:30", periods=n, freq="15min")
    return [
        {
            "timestamp": str(t),
            "open": 10.0 + i,
            "high": 11.0 + i,
            "low": 9.0 + i,
            "close": 10.5 + i,
            "volume": 100.0,
        }
        for i, t in enumerate(stamps)
    ]


def _with(index: int, **changes) -> list[dict]:
    bars = _bars()
    bars[index] = {k: v for k, v in {**bars[index], **changes}.items() if v is not ...}
    return bars


BAD_JSON = [
    ({"bars": _with(3, close="abc")}, 422, "bars[3].close", 3, "valid number"),
    ({"bars": _with(2, close=None)}, 422, "bars[2].close", 2, "valid number"),
    ({"bars": _with(0, close=...)}, 422, "bars[0].close", 0, "Field required"),
    ({"bars": _with(5, high=True)}, 422, "bars[5].high", 5, "valid number"),
    ({"bars": _with(4, volume=None)}, 422, "bars[4].volume", 4, "valid number"),
    ({"bars": [{**bar, "volume": None} for bar in _bars()]}, 422, "bars[0].volume", 0, "valid number"),
    ({"bars": [{**bar, "amount": None} for bar in _bars()]}, 422, "bars[0].amount", 0, "valid number"),
    (
        {"bars": _with(4, volume=...)},
        422,
        "bars",
        None,
        "column 'volume' has NaN values (1 in all), first at row 4",
    ),
    ({"bars": _with(6, timestamp="yesterday-ish")}, 422, "bars", None, "'yesterday-ish' at row 6"),
    ({"bars": _with(7, timestamp=_bars()[2]["timestamp"])}, 422, "bars", None, "not sorted by time"),
    ({"bars": _with(7, timestamp=_bars()[6]["timestamp"])}, 422, "bars", None, "duplicate rows"),
    ({"bars": _with(1, colour="red")}, 422, "bars[1].colour", 1, "Extra inputs"),
    ({"bars": []}, 422, "bars", None, "has 0 bars; a forecast needs at least 10"),
    ({"bars": _bars(9)}, 422, "bars", None, "at least 10"),
    ({"bars": _bars(2001)}, 422, "bars", None, "cap of 2000 (kronos serve --max-bars)"),
    ({}, 422, "bars", None, "Field required"),
    ({"bars": _bars(), "steps": 0}, 422, "steps", None, "greater than or equal to 1"),
    ({"bars": _bars(), "steps": 65}, 422, "steps", None, "cap of 64 (kronos serve --max-steps)"),
    ({"bars": _bars(), "steps": "12"}, 422, "steps", None, "valid integer"),
    ({"bars": _bars(), "paths": 65}, 422, "paths", None, "cap of 64 (kronos serve --max-paths)"),
    ({"bars": _bars(), "paths": -1}, 422, "paths", None, "greater than or equal to 1"),
    (
        {"bars": _bars(), "quantile_levels": [0.5, 1.5]},
        422,
        "quantile_levels",
        None,
        "strictly between 0 and 1",
    ),
    ({"bars": _bars(), "quantile_levels": []}, 422, "quantile_levels", None, "at least one level"),
    ({"bars": _bars(), "temperature": 0}, 422, "temperature", None, "greater than or equal to 0.001"),
    ({"bars": _bars(), "top_p": 2}, 422, "top_p", None, "less than or equal to 1"),
    ({"bars": _bars(), "freq": "fortnightly"}, 422, "freq", None, "fortnightly"),
    ({"bars": _bars(), "stpes": 5}, 422, "stpes", None, "Extra inputs"),
    ({"bars": _bars(), "steps": None}, 422, "steps", None, "valid integer"),
    ({"bars": _bars(), "quantile_levels": None}, 422, "quantile_levels", None, "valid list"),
    ({"bars": _bars(), "seed": 2**53}, 422, "seed", None, "less than or equal to 9007199254740991"),
    ({"bars": _bars(), "seed": -(2**53)}, 422, "seed", None, "greater than or equal to -9007199254740991"),
    ({"series": [{"bars": _bars()}]}, 422, "bars", None, "Field required"),
]


def bar_values() -> st.SearchStrategy:
    junk = st.one_of(
        st.none(), st.booleans(), st.text(max_size=8), st.integers(-(10**30), 10**30),
        st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )  # fmt: skip
    return junk


@st.composite
def bad_payloads(draw) -> dict:
    """A valid request with one to three things broken: a bar value, a key, an option, the order."""
    body: dict = {"bars": _bars(draw(st.integers(10, 14))), "steps": 2, "paths": 2}
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["value", "drop", "extra", "option", "swap", "stamp", "top"]))
        bars = (
            [bar for bar in body.get("bars", []) if isinstance(bar, dict)]
            if isinstance(body.get("bars"), list)
            else []
        )
        if kind == "value" and bars:
            bar = draw(st.sampled_from(bars))
            bar[draw(st.sampled_from(["open", "high", "low", "close", "volume", "amount"]))] = draw(
                bar_values()
            )
        elif kind == "drop" and bars:
            draw(st.sampled_from(bars)).pop(draw(st.sampled_from(["timestamp", "open", "close"])), None)
        elif kind == "extra":
            target = draw(st.sampled_from(bars)) if bars and draw(st.booleans()) else body
            target[draw(st.sampled_from(["id", "Close", "symbol", "x"]))] = draw(bar_values())
        elif kind == "option":
            body[draw(st.sampled_from(["steps", "paths", "quantile_levels", "seed", "temperature", "top_p",
                                       "top_k", "freq", "repair_ohlc"]))] = draw(bar_values())  # fmt: skip
        elif kind == "swap" and len(bars) > 2:
            i = draw(st.integers(0, len(bars) - 2))
            if (
                "timestamp" in bars[i] and "timestamp" in bars[i + 1]
            ):  # an earlier change may have dropped one
                bars[i]["timestamp"], bars[i + 1]["timestamp"] = (
                    bars[i + 1]["timestamp"],
                    bars[i]["timestamp"],
                )
        elif kind == "stamp" and bars:
            draw(st.sampled_from(bars))["timestamp"] = draw(
                st.one_of(st.text(max_size=30), st.integers(), st.none())
            )
        elif kind == "top":
            body["bars"] = draw(bar_values())
    return body


@pytest.fixture(scope="module")
def client(kronos_server):
    with kronos_server.client() as client:
        yield client


def test_health_readiness_models_metrics_docs_and_page(kronos_server):
    with kronos_server.client(key=None) as anonymous, kronos_server.client() as client:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").json() == {"status": "ready", "model": "kronos-default"}
        models = client.get("/v1/models").json()
        model = models["models"][0]
        assert (model["name"], model["max_context"], model["lookback"], model["history"]) == (
            "kronos-default", 128, 108, 108,
        )  # fmt: skip
        assert models["limits"]["max_bars"] == CAPS["max_bars"]
        assert models["examples"] == ["eurusd_hourly", "sp500_daily"]
        metrics = anonymous.get("/metrics").text
        for name in ("kronos_requests_total", "kronos_request_duration_seconds_bucket", "kronos_batch_series_bucket",
                     "kronos_request_errors_total", "kronos_ready 1.0"):  # fmt: skip
            assert name in metrics
        docs = anonymous.get("/docs").text
        assert "/static/swagger/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
        assert anonymous.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
        assert "/v1/forecast/batch" in anonymous.get("/openapi.json").json()["paths"]
        page = anonymous.get("/").text
        assert '<script src="/static/plotly.min.js">' in page and "http" not in page.split("<body")[0]
        plotly = anonymous.get("/static/plotly.min.js")
        assert (
            plotly.status_code == 200
            and plotly.text.lstrip().startswith("/**")
            and "plotly.js" in plotly.text[:200]
        )
        assert anonymous.get("/static/examples/sp500_daily.csv").content == SP500.read_bytes()


def test_every_v1_route_needs_the_key(kronos_server):
    with kronos_server.client(key=None) as client:
        for method, path in (("GET", "/v1/models"), ("POST", "/v1/forecast"), ("POST", "/v1/parse")):
            response = client.request(method, path, content=b"not even json")
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer KEY" in response.json()["error"]["message"]
        assert client.get("/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
        assert client.get("/v1/models", headers={"X-API-Key": API_KEY}).status_code == 200


def test_forecast_equals_predict_quantiles_with_the_same_seed(kronos_server, predictor, sp500):
    frame = sp500.iloc[100:250]
    levels = (0.1, 0.9)
    body = {"bars": as_bars(frame), "steps": 6, "paths": 12, "quantile_levels": list(levels), "seed": 3,
            "return_paths": True}  # fmt: skip
    with kronos_server.client() as client:
        response = client.post("/v1/forecast", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert_same(answer, expected(predictor, frame, 6, 12, levels, seed=3), levels)
    # the median is there although 0.5 was not asked for
    median = expected(predictor, frame, 6, 12, (0.5,), seed=3)
    assert answer["median"]["close"] == median["close_q0.5"].tolist()
    assert (answer["history_bars"], answer["spacing"]) == (108, "every 1 day, weekdays only")
    assert answer["last_close"] == float(np.float32(frame["close"].iloc[-1]))
    history = frame.iloc[-108:]
    paths = predictor.predict_paths(
        history[FIELDS],
        history["timestamps"],
        pd.DatetimeIndex(answer["timestamps"]),
        6,
        sampling=predictor.sampling_with(sample_count=12, seed=3),
    )
    for j, field in enumerate(FEATURE_COLUMNS):
        assert answer["paths"][field] == paths[:, :, j].astype(np.float64).tolist()
    # the history's volatility per bar, scaled by sqrt(h)
    returns = np.diff(np.log(history["close"].to_numpy(np.float64)))
    per_bar = np.sqrt(np.mean(returns**2))
    np.testing.assert_allclose(
        answer["historical_volatility"], per_bar * np.sqrt(np.arange(1, 7)), rtol=1e-12
    )


def test_concurrent_requests_share_generation_calls_and_get_their_own_numbers(
    kronos_server, predictor, sp500
):
    frames = [sp500.iloc[start : start + 120] for start in range(0, 280, 35)]
    levels = (0.25, 0.5, 0.75)
    calls_before = kronos_server.metric("kronos_batch_series_count")
    requests_before = kronos_server.metric("kronos_batch_requests_sum")

    def post(frame):
        body = {"bars": as_bars(frame), "steps": 5, "paths": 17, "quantile_levels": list(levels)}
        with kronos_server.client() as client:
            return client.post("/v1/forecast", json=body)

    with ThreadPoolExecutor(len(frames)) as pool:
        responses = list(pool.map(post, frames))
    assert [r.status_code for r in responses] == [200] * len(frames)
    for frame, response in zip(frames, responses):
        assert_same(response.json(), expected(predictor, frame, 5, 17, levels), levels)
    calls = kronos_server.metric("kronos_batch_series_count") - calls_before
    assert kronos_server.metric("kronos_batch_requests_sum") - requests_before == len(frames)
    assert calls < len(frames)  # some requests shared a call
    assert max(r.json()["batch_series"] for r in responses) > 1


def test_batch_route_keys_each_series_by_its_id(kronos_server, predictor, sp500):
    frames = {"spx": sp500.iloc[:150], 7: sp500.iloc[200:330]}
    body = {
        "series": [{"id": key, "bars": as_bars(frame)} for key, frame in frames.items()]
        + [{"bars": as_bars(sp500.iloc[50:90])}],
        "steps": 4,
        "paths": 17,
        "quantile_levels": [0.2, 0.8],
    }
    with kronos_server.client() as client:
        response = client.post("/v1/forecast/batch", json=body)
    assert response.status_code == 200, response.text
    forecasts = response.json()["forecasts"]
    assert [f["id"] for f in forecasts] == ["spx", 7, 2]  # no id: its position
    for answer, (key, frame) in zip(forecasts, [*frames.items(), (2, sp500.iloc[50:90])]):
        assert_same(answer, expected(predictor, frame, 4, 17, (0.2, 0.8), series_id=key), (0.2, 0.8))


@pytest.mark.parametrize("calibrate", [False, True])
def test_csv_upload_gives_what_kronos_forecast_writes(kronos_server, tmp_path, capsys, calibrate):
    out = tmp_path / "cli.csv"
    flags = ["--calibrate"] if calibrate else []
    command = ["forecast", str(SP500), "--steps", "5", "--paths", "10", "--device", "cpu", "--out", str(out)]
    assert main(command + flags) == 0
    cli = pd.read_csv(out)
    with kronos_server.client() as client:
        with SP500.open("rb") as file:
            response = client.post(
                "/v1/forecast/csv",
                files={"file": ("sp500_daily.csv", file)},
                data={"steps": "5", "paths": "10", "calibrate": json.dumps(calibrate)},
            )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["calibrated"] is calibrate
    if calibrate:  # on all 400 bars: origins 108, 110, ..., 394 (every 2 bars for 5 steps)
        assert answer["calibration"]["past_forecasts"] == 144
        assert "calibrated on 144 past forecasts" in capsys.readouterr().err
    assert [t[:10] for t in answer["timestamps"]] == cli["timestamps"].tolist()
    for level in (0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975):
        np.testing.assert_array_equal(answer["quantiles"]["close"][f"{level:g}"], cli[f"close_q{level:g}"])
    np.testing.assert_array_equal(answer["prob_up"], cli["prob_close_above_last"])


def test_calibrated_forecast_equals_predict_quantiles_with_its_calibration(kronos_server, predictor, sp500):
    frame = sp500.iloc[100:300]  # 200 bars: the calibration uses them all, the forecast the last 108
    levels = (0.1, 0.5, 0.9)
    body = {"bars": as_bars(frame), "steps": 6, "paths": 12, "quantile_levels": list(levels), "seed": 3,
            "return_paths": True, "calibrate": True}  # fmt: skip
    with kronos_server.client() as client:
        response = client.post("/v1/forecast", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    calibration = calibrated(predictor, frame, 6, 12, seed=3)
    table = expected(predictor, frame, 6, 12, levels, seed=3, calibration=calibration)
    assert_same(answer, table, levels)
    assert answer["median"]["close"] == table["close_q0.5"].tolist()
    assert answer["calibrated"] is True
    assert answer["calibration"] == {
        "past_forecasts": calibration.origins,
        "lookback": 108,
        "move_kept": float(calibration.shrink.mean()),
        "spread_weight": float(calibration.weight.mean()),
    }
    assert calibration.origins == 29  # origins 108, 111, ..., 192: the last ends at bar 198 of 200
    # and the bands differ from the uncalibrated ones
    assert (
        answer["quantiles"]["close"]["0.9"]
        != expected(predictor, frame, 6, 12, levels, seed=3)["close_q0.9"].tolist()
    )
    history = frame.iloc[-108:]
    paths = predictor.predict_paths(
        history[FIELDS], history["timestamps"], pd.DatetimeIndex(answer["timestamps"]), 6,
        sampling=predictor.sampling_with(sample_count=12, seed=3), calibration=calibration,
    )  # fmt: skip
    for j, field in enumerate(FEATURE_COLUMNS):  # predict_paths returns them in float32
        np.testing.assert_array_equal(np.asarray(answer["paths"][field], dtype=np.float32), paths[:, :, j])


def test_calibrated_batch_keys_each_series_and_counts_past_forecasts_against_a_cap(
    kronos_server, predictor, sp500
):
    frames = {"spx": sp500.iloc[:200], 7: sp500.iloc[150:400]}
    body = {
        "series": [{"id": key, "bars": as_bars(frame)} for key, frame in frames.items()],
        "steps": 4, "paths": 10, "quantile_levels": [0.2, 0.8], "calibrate": True,
    }  # fmt: skip
    with kronos_server.client() as client:
        response = client.post("/v1/forecast/batch", json=body)
        assert response.status_code == 200, response.text
        for answer, (key, frame) in zip(response.json()["forecasts"], frames.items()):
            calibration = calibrated(predictor, frame, 4, 10, series_id=key)
            table = expected(predictor, frame, 4, 10, (0.2, 0.8), series_id=key, calibration=calibration)
            assert_same(answer, table, (0.2, 0.8))
            assert answer["calibration"]["past_forecasts"] == calibration.origins
        # two series of 400 bars: 145 past forecasts each, over the test server's cap of 200
        body["series"] = [{"id": i, "bars": as_bars(sp500)} for i in range(2)]
        refused = client.post("/v1/forecast/batch", json=body)
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["field"] == "calibrate"
        assert (
            "calibrate needs 290 past forecasts for this request, over this server's cap of 200"
            in error["message"]
        )
        assert "--max-past-forecasts" in error["message"]


def test_the_service_answers_while_a_calibration_runs(kronos_server, sp500):
    """Calibration runs in the generation worker, not on the event loop: the service keeps answering."""
    body = {"bars": as_bars(sp500), "steps": 5, "paths": 64, "calibrate": True}  # 144 past forecasts
    answers = []
    with kronos_server.client() as client:
        calibrating = threading.Thread(target=lambda: answers.append(client.post("/v1/forecast", json=body)))
        calibrating.start()
        time.sleep(0.5)  # read, checked and queued by then: its 144 x 64 paths take seconds more
        health = httpx.get(f"{kronos_server.url}/healthz", timeout=30)
        refused = client.post("/v1/forecast", json={**body, "bars": as_bars(sp500.iloc[:100])})
        assert calibrating.is_alive()  # both answered before the calibrated forecast
        calibrating.join()
    assert health.status_code == 200 and refused.status_code == 422
    assert answers[0].status_code == 200 and answers[0].json()["calibration"]["past_forecasts"] == 144


def test_calibrating_too_short_a_series_gets_a_422_naming_it_and_the_bars_needed(kronos_server, sp500):
    with kronos_server.client() as client:
        single = client.post(
            "/v1/forecast", json={"bars": as_bars(sp500.iloc[:150]), "steps": 6, "calibrate": True}
        )
        batch = client.post(
            "/v1/forecast/batch",
            json={"series": [{"bars": as_bars(sp500)}, {"bars": as_bars(sp500.iloc[:150])}], "steps": 6,
                  "calibrate": True},
        )  # fmt: skip
    assert single.status_code == 422
    error = single.json()["error"]
    assert error["field"] == "bars"
    assert error["message"] == (
        "bars has 150 bars; calibrate needs at least 171 (lookback 108, 6 steps, 20 past forecasts)"
    )
    assert batch.status_code == 422
    assert batch.json()["error"]["field"] == "series[1].bars"
    assert "series[1].bars has 150 bars; calibrate needs at least 171" in batch.json()["error"]["message"]


def test_parse_reads_a_csv_as_the_library_does(kronos_server, sp500):
    shuffled = (
        sp500.iloc[:30]
        .sample(frac=1, random_state=0)
        .rename(columns={"timestamps": "Date", "close": "Close"})
    )
    with kronos_server.client() as client:
        response = client.post(
            "/v1/parse", files={"file": ("prices.csv", shuffled.to_csv(index=False).encode())}
        )
        assert response.status_code == 200, response.text
        parsed = response.json()
        assert parsed["name"] == "prices.csv"
        assert parsed["columns"] == FIELDS
        assert parsed["bars"][0] == {
            "timestamp": "2017-05-31T00:00:00",
            **{f: float(sp500[f].iloc[0]) for f in FIELDS},
        }
        assert [b["close"] for b in parsed["bars"]] == sp500["close"].iloc[:30].tolist()  # sorted by time
        broken = sp500.iloc[:30].astype({"close": object})
        broken.loc[4, "close"] = "abc"
        response = client.post(
            "/v1/parse", files={"file": ("prices.csv", broken.to_csv(index=False).encode())}
        )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "file"
    # named as `kronos forecast` names it: the file's line (the header is line 1)
    assert "column 'close' must be numeric" in error["message"] and "'abc' at line 6" in error["message"]


def test_a_semicolon_csv_with_decimal_commas_forecasts_as_kronos_forecast_reads_it(kronos_server, tmp_path):
    """European spreadsheets write ';' between fields and ',' in numbers: the page reads such a file
    as the CLI does (kronos.forecasting.tables.read_table), to the same numbers as the plain CSV."""
    plain = SP500.read_bytes()
    frame = pd.read_csv(SP500)
    european = frame.to_csv(index=False, sep=";", decimal=",").encode()
    assert b";" in european and b"," in european
    options = {"steps": "4", "paths": "8", "seed": "5"}
    with kronos_server.client() as client:
        answers = [
            client.post("/v1/forecast/csv", files={"file": ("sp500_daily.csv", content)}, data=options)
            for content in (plain, european)
        ]
        parsed = client.post("/v1/parse", files={"file": ("sp500_daily.csv", european)})
    assert [answer.status_code for answer in answers] == [200, 200], answers[1].text
    assert answers[1].json()["quantiles"] == answers[0].json()["quantiles"]
    assert answers[1].json()["last_close"] == answers[0].json()["last_close"]
    assert parsed.status_code == 200
    assert [bar["close"] for bar in parsed.json()["bars"]] == frame["close"].tolist()


@pytest.mark.parametrize(("body", "status", "field", "row", "message"), BAD_JSON)
def test_bad_json_gets_a_4xx_naming_the_field(kronos_server, body, status, field, row, message):
    with kronos_server.client() as client:
        response = client.post("/v1/forecast", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["status"], error["field"], error["row"]) == (status, field, row)
    assert message in error["message"]


def test_irregular_timestamps_are_refused_unless_a_freq_is_given(kronos_server):
    bars = _bars(20)
    for i, bar in enumerate(bars):
        bar["timestamp"] = str(pd.Timestamp("2024-06-18") + pd.Timedelta(minutes=int(i**1.7)))
    with kronos_server.client() as client:
        refused = client.post("/v1/forecast", json={"bars": bars, "steps": 2, "paths": 2})
        accepted = client.post("/v1/forecast", json={"bars": bars, "steps": 2, "paths": 2, "freq": "5min"})
    assert (
        refused.status_code == 422 and "cannot infer the bar frequency" in refused.json()["error"]["message"]
    )
    assert accepted.status_code == 200
    assert (
        accepted.json()["timestamps"][1]
        == (pd.Timestamp(bars[-1]["timestamp"]) + pd.Timedelta("10min")).isoformat()
    )


def test_malformed_bodies_uploads_and_batches_get_4xx(kronos_server):
    with kronos_server.client() as client:
        cases = [
            (client.post("/v1/forecast", content=b'{"bars": [', headers={"Content-Type": "application/json"}), 400, "body"),
            (client.post("/v1/forecast", content=b'{"bars": NaN}', headers={"Content-Type": "application/json"}), 422, "bars"),
            (client.post("/v1/forecast", content=b"steps=3", headers={"Content-Type": "text/plain"}), 422, "body"),
            (client.post("/v1/forecast", content=b"x" * (2**20 + 1), headers={"Content-Type": "application/json"}), 413, None),
            (client.post("/v1/forecast/csv", json={"steps": 3}), 415, "file"),
            (client.post("/v1/forecast/csv", files={"other": ("a.csv", b"x")}), 422, "file"),
            (client.post("/v1/forecast/csv", files={"file": ("a.csv", SP500.read_bytes())}, data={"stesp": "3"}), 422, "stesp"),
            (client.post("/v1/forecast/csv", files={"file": ("a.csv", SP500.read_bytes())}, data={"steps": "many"}), 422, "steps"),
            (client.post("/v1/forecast/csv", files={"file": ("a.csv", b"")}), 422, "file"),
            (client.post("/v1/forecast/csv", files={"file": ("a.csv", b"\xff\xfe\x00garbage\x00")}), 422, "file"),
            (client.post("/v1/forecast/csv", files={"file": ("a.csv", b"date,open\n2024-01-01,1\n" * 12)}), 422, "file"),
            (client.post("/v1/forecast/batch", json={"series": []}), 422, "series"),
            (client.post("/v1/forecast/batch", json={"series": [{"id": "a", "bars": _bars()}] * 2}), 422, "series"),
            (client.post("/v1/forecast/batch", json={"series": [{"bars": _bars()}] * 9}), 422, "series"),
            (client.post("/v1/forecast/batch", json={"series": [{"bars": _bars()}, {"bars": _with(2, low="x")}]}), 422,
             "series[1].bars[2].low"),
            (client.get("/v1/nowhere"), 404, None),
            (client.get("/v1/forecast"), 405, None),
        ]  # fmt: skip
    for response, status, field in cases:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["field"] == field, error
    assert "cap of 1048576 bytes (kronos serve --max-body-mb)" in cases[3][0].json()["error"]["message"]
    assert "cap of 8 (kronos serve --max-series)" in cases[13][0].json()["error"]["message"]
    assert "'a' appears more than once" in cases[12][0].json()["error"]["message"]


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bad_payloads())
def test_fuzzed_payloads_never_get_a_5xx(client, body):
    response = client.post("/v1/forecast", content=json.dumps(body, allow_nan=True).encode(),
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code < 500, response.text
    if response.status_code != 200:  # a change that left the request valid is answered
        assert 400 <= response.status_code < 500
        assert response.json()["error"]["message"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    raw=st.binary(max_size=300),
    route=st.sampled_from(["/v1/forecast", "/v1/forecast/batch", "/v1/forecast/csv"]),
)
def test_fuzzed_bytes_never_get_a_5xx(client, raw, route):
    if route.endswith("csv"):
        response = client.post(route, files={"file": ("f.csv", raw)})
    else:
        response = client.post(route, content=raw, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text


def test_clients_that_go_away_do_not_disturb_the_others(kronos_server, predictor, sp500):
    frames = [sp500.iloc[start : start + 110] for start in range(0, 240, 40)]
    cancelled_before = kronos_server.metric("kronos_cancelled_requests_total")

    def post(args):
        frame, impatient = args
        body = {"bars": as_bars(frame), "steps": 8, "paths": 16, "quantile_levels": [0.5]}
        with kronos_server.client(timeout=0.02 if impatient else 120) as client:
            try:
                return client.post("/v1/forecast", json=body)
            except httpx.TimeoutException:
                return None

    jobs = [(frame, i % 2 == 1) for i, frame in enumerate(frames)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        responses = list(pool.map(post, jobs))
    for (frame, impatient), response in zip(jobs, responses):
        if impatient:
            assert response is None
        else:
            assert response.status_code == 200
            assert_same(response.json(), expected(predictor, frame, 8, 16, (0.5,)), (0.5,))
    with kronos_server.client() as client:  # the server is still well
        assert client.get("/readyz").status_code == 200
    assert kronos_server.metric("kronos_cancelled_requests_total") > cancelled_before


def test_load_300_requests_from_16_clients_all_answered_once(kronos_server, predictor, sp500):
    variants = [sp500.iloc[start : start + 40] for start in (0, 60, 120, 180)]
    bodies = [{"bars": as_bars(f), "steps": 3, "paths": 17, "quantile_levels": [0.1, 0.9]} for f in variants]
    ids = [uuid.uuid4().hex for _ in range(300)]
    ok_before = kronos_server.metric("kronos_requests_total", route="/v1/forecast", status="200")
    biggest_before = kronos_server.metric("kronos_batch_series_bucket", le="1.0")

    local, clients = threading.local(), []  # one connection per client, kept open as a real client would

    def post(i: int):
        if not hasattr(local, "client"):
            local.client = kronos_server.client()
            clients.append(local.client)
        return local.client.post("/v1/forecast", json=bodies[i % 4], headers={"X-Request-ID": ids[i]})

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(post, range(300)))
    for client in clients:
        client.close()
    assert [r.status_code for r in responses] == [200] * 300
    assert [r.headers["x-request-id"] for r in responses] == ids
    ok = kronos_server.metric("kronos_requests_total", route="/v1/forecast", status="200") - ok_before
    assert ok == 300  # answered once each
    for k in range(4):  # the same request always gets the same numbers, whatever it was batched with
        answers = {json.dumps(r.json()["quantiles"]) for r in responses[k::4]}
        assert len(answers) == 1
        assert_same(responses[k].json(), expected(predictor, variants[k], 3, 17, (0.1, 0.9)), (0.1, 0.9))
    single_calls = kronos_server.metric("kronos_batch_series_bucket", le="1.0") - biggest_before
    calls = max(r.json()["batch_series"] for r in responses)
    assert calls > 1 and single_calls < 300


def test_a_forecast_whose_client_left_stops_and_frees_the_worker(kronos_server, sp500):
    # the largest request the test caps allow, 8 series x 64 paths x 64 steps: well over 10 s of
    # generation here, where a step takes a fraction of a second
    series = [{"id": i, "bars": as_bars(sp500.iloc[20 * i : 20 * i + 108])} for i in range(8)]
    body = {"series": series, "steps": 64, "paths": 64, "quantile_levels": [0.5]}
    stopped = kronos_server.metric("kronos_cancelled_generations_total")
    with kronos_server.client(timeout=2) as impatient, pytest.raises(httpx.TimeoutException):
        impatient.post("/v1/forecast/batch", json=body)
    left = time.monotonic()
    with kronos_server.client() as client:
        answer = client.post("/v1/forecast", json={"bars": as_bars(sp500.iloc[:120]), "steps": 2, "paths": 2})
    waited = time.monotonic() - left
    assert answer.status_code == 200
    assert kronos_server.metric("kronos_cancelled_generations_total") == stopped + 1
    assert waited < 8, f"the next request waited {waited:.1f} s"


def test_series_ids_and_seeds_stay_within_javascripts_safe_integers(kronos_server):
    largest = 2**53 - 1
    with kronos_server.client() as client:
        refused = client.post("/v1/forecast/batch", json={"series": [{"id": largest + 1, "bars": _bars()}]})
        answered = client.post(
            "/v1/forecast/batch",
            json={"series": [{"id": largest, "bars": _bars()}, {"id": -largest, "bars": _bars()}], "steps": 2,
                  "paths": 2, "seed": largest},
        )  # fmt: skip
    error = refused.json()["error"]
    assert refused.status_code == 422 and error["field"] == "series[0].id"
    assert "within ±9007199254740991 (2**53 - 1)" in error["message"] and "as a string" in error["message"]
    assert answered.status_code == 200, answered.text
    assert [one["id"] for one in answered.json()["forecasts"]] == [largest, -largest]
    assert answered.json()["seed"] == largest


def test_form_fields_and_bodies_nested_too_deeply_get_a_400(kronos_server):
    with kronos_server.client() as client:
        form = client.post(
            "/v1/forecast/csv",
            files={"file": ("a.csv", SP500.read_bytes())},
            data={"quantile_levels": "[" * 100_000},
        )
        body = client.post(
            "/v1/forecast",
            content=b'{"bars": ' + b"[" * 100_000,
            headers={"Content-Type": "application/json"},
        )
    assert form.status_code == 400 and form.json()["error"]["field"] == "quantile_levels"
    assert "nested too deeply" in form.json()["error"]["message"]
    assert body.status_code == 400, body.text


def test_invented_methods_and_paths_do_not_grow_the_metrics(kronos_server):
    with kronos_server.client() as client:
        for i in range(30):
            client.request(f"BREW{i}", f"/v1/pot/{i}")
            client.get(f"/no/such/{i}")
        metrics = client.get("/metrics").text
    assert "BREW" not in metrics and "/no/such" not in metrics and "/v1/pot" not in metrics
    assert kronos_server.metric("kronos_requests_total", route="unmatched", method="other") >= 30


def test_a_request_without_temperature_or_top_p_samples_with_the_models(tmp_path, tiny_dir):
    from helpers import checkpoint_with_metadata

    from kronos.serve.inputs import Job
    from kronos.serve.schemas import ForecastOptions

    model = checkpoint_with_metadata(tmp_path, tiny_dir, {"sampling": {"temperature": 0.7, "top_p": 1.0}})
    own = KronosPredictor.from_pretrained(str(model), device="cpu")
    options = ForecastOptions(paths=5, seed=3)
    assert Job([], [], options).sampling(own) == Sampling(T=0.7, top_p=1.0, sample_count=5, seed=3)
    chosen = ForecastOptions(paths=5, seed=None, temperature=1.5, top_p=0.8)
    assert Job([], [], chosen).sampling(own) == Sampling(T=1.5, top_p=0.8, sample_count=5, seed=None)
