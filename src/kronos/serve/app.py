"""The forecasting service: a FastAPI app around one KronosPredictor.

Routes: the page at `/`, `/healthz`, `/readyz`, `/metrics`, `/docs`, and under `/v1` (behind the
API key when one is set) the model, forecasts of JSON bars, of many series, of an uploaded CSV,
and the reading of a CSV into bars. Generation runs in one worker thread behind a
`MicroBatcher`; reading, validating and summarising run in the request's thread.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from kronos.forecasting.calibration import PastOrigins
from kronos.forecasting.core import Forecast, GenerationCancelled, stop_when
from kronos.forecasting.predictor import KronosPredictor
from kronos.forecasting.pretrained import DEFAULT_MODEL
from kronos.forecasting.series import Series
from kronos.forecasting.tables import series_name
from kronos.serve.batching import MicroBatcher, Overloaded
from kronos.serve.guard import READ_TIMEOUT_S, HostRules
from kronos.serve.inputs import (
    LIBRARY_ERRORS,
    InputError,
    Job,
    bars_as_json,
    check_options,
    check_past_forecasts,
    plan,
    series_from_bars,
    series_from_csv,
    summarize,
)
from kronos.serve.metrics import Metrics
from kronos.serve.schemas import (
    BarsResponse,
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    ForecastOptions,
    ForecastRequest,
    ForecastResponse,
    Limits,
)
from kronos.version import __version__

STATIC = Path(__file__).resolve().parent / "static"
EXAMPLES = {path.stem: path for path in sorted((STATIC / "examples").glob("*.csv"))}
# The page's default paths: its 20-step bands drawn from 100 paths have edges about 35% less jagged
# than from the library's 20 and half as far from a 2000-path reference, for about 0.6 s a forecast
# of the shipped model on one thread (benchmarks/bench_page_paths.py; docs/serve.md, "The page").
PAGE_PATHS = 100
API_KEY_HEADERS = "send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
ERROR_TYPES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    408: "request_timeout", 413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_input", 499: "client_closed",
    500: "internal_error", 503: "unavailable",
}  # fmt: skip
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 413, 415, 422, 503)
}
log = logging.getLogger("kronos.serve")


@dataclass(frozen=True)
class ServeConfig:
    """How the service runs: the model's name (for answers), the API key, the caps, batching, the
    host names it answers to besides loopback (`guard.HostRules`), and how long a body may take."""

    model_name: str = DEFAULT_MODEL
    api_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_batch: int = 32  # series per generation call; 1 turns micro-batching off
    batch_wait_ms: float = 5.0
    max_queue: int = 1024  # series waiting before requests are turned away (503)
    allowed_hosts: tuple[str, ...] = ()
    read_timeout_s: float = READ_TIMEOUT_S


class ClientGone(Exception):
    """The client disconnected before its forecast was ready."""


class Forecaster:
    """Runs the jobs of one micro-batch through one `KronosPredictor.sample` call (worker thread).

    The call is not cut into smaller ones: a job of a batch request alone is as large as that
    request, so it gets the numbers that `sample` gives its series in one call. Each series is
    forecast from its last `lookback` bars. A job that asks for calibration first has each of its
    series calibrated on all its bars (`KronosPredictor.fit_calibration`, as `kronos forecast
    --calibrate` does), here in the same worker. The batcher sets `cancel` once every client of
    the call has gone: generation then stops at its next step.
    """

    def __init__(self, predictor: KronosPredictor, on_stopped: Callable[[], object]):
        self.predictor, self.on_stopped = predictor, on_stopped

    def __call__(self, jobs: list[Job], cancel: threading.Event) -> list[Generated]:
        try:
            return self._generate(jobs, cancel)
        except GenerationCancelled:
            self.on_stopped()
            raise

    def _generate(self, jobs: list[Job], cancel: threading.Event) -> list[Generated]:
        predictor, lookback = self.predictor, self.predictor.lookback
        sampling = jobs[0].sampling(predictor)  # a batch shares its key, so its sampling settings
        on_step = stop_when(cancel)
        calibrations = [
            predictor.fit_calibration(
                one, job.options.steps, sampling, PastOrigins(lookback), on_step=on_step
            )
            if job.options.calibrate
            else None
            for job in jobs
            for one in job.series
        ]
        histories = [history(one, lookback) for job in jobs for one in job.series]
        futures = [future.timestamps for job in jobs for future in job.futures]
        forecast = predictor.sample(
            histories, jobs[0].options.steps, sampling, calibrations, future=futures, on_step=on_step
        )
        bounds = np.cumsum([0] + [len(job.series) for job in jobs])
        return [Generated(forecast.subset(a, b), len(histories)) for a, b in zip(bounds[:-1], bounds[1:])]


def history(series: Series, lookback: int) -> Series:
    """The bars a forecast is given: the last `lookback`."""
    return series.window(max(0, len(series) - lookback), len(series))


@dataclass
class Generated:
    """A job's forecast, and the number of series in the generation call that made it."""

    forecast: Forecast
    batch_series: int


def batch_key(options: ForecastOptions) -> Hashable:
    """What jobs must share to be generated in one call: steps and sampling settings. The seeded
    engine gives a series the same numbers whatever it is batched with, so nothing else matters."""
    return (options.steps, options.paths, options.temperature, options.top_k, options.top_p, options.seed)


class Service:
    """The state behind the routes: predictor, batcher, metrics, readiness."""

    def __init__(self, predictor: KronosPredictor, config: ServeConfig):
        self.predictor, self.config, self.limits = predictor, config, config.limits
        self.hosts = HostRules(config.allowed_hosts)
        self.metrics = Metrics()
        self.batcher = MicroBatcher(
            Forecaster(predictor, self.metrics.stopped_calls.inc),
            config.batch_wait_ms / 1000,
            config.max_queue,
            self.metrics.observe_call,
        )
        self.ready = False
        self.not_ready_reason = "warming up: the model has not answered its first forecast yet"

    @property
    def lookback(self) -> int:
        return self.predictor.lookback

    async def generate(self, request: Request | None, job: Job) -> Generated:
        """The forecast of the job's series, and the series in the call that made it.

        Waits for the batcher, or for the client to disconnect: then the job is withdrawn. A
        calibrated series weighs its past forecasts too in the queue, and leads a call of its own.
        """
        check_past_forecasts(job, self.limits)
        size = len(job.series) + job.past_forecasts
        try:
            future = self.batcher.submit(batch_key(job.options), size, self.config.max_batch, job)
        except Overloaded as err:
            raise HTTPException(
                503, f"the server is busy: {err}; retry shortly", {"Retry-After": "1"}
            ) from err
        watcher = asyncio.ensure_future(_disconnected(request)) if request is not None else None
        try:
            await asyncio.wait([future] + ([watcher] if watcher else []), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            future.cancel()
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
        if not future.done():
            future.cancel()
            self.metrics.cancelled.inc()
            raise ClientGone
        try:
            return future.result()
        except LIBRARY_ERRORS as err:  # input the checks before generation let through
            raise InputError(str(err)) from err

    async def warm_up(self) -> None:
        """One small forecast of a bundled example; the service is ready once it has answered."""
        try:
            options = ForecastOptions.model_validate({"steps": 2, "paths": 2})
            series = series_from_csv(EXAMPLES["sp500_daily"].read_bytes(), "sp500_daily", Limits())
            await self.generate(None, plan([(series, 0, "warm-up")], options, self.lookback))
        except Exception as err:  # the readiness probe reports it
            log.exception("warm-up forecast failed")
            self.not_ready_reason = f"the warm-up forecast failed: {type(err).__name__}: {err}"
            return
        self.ready = True
        self.metrics.ready.set(1)


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone away (the body was read already, so only that can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


# --- errors ------------------------------------------------------------------------------------------


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    row: int | None = None,
    details: list[dict] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {
        "status": status,
        "type": ERROR_TYPES.get(status, "error"),
        "message": message,
        "field": field,
        "row": row,
        "details": details or [],
    }
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _field_and_row(loc: tuple) -> tuple[str | None, int | None]:
    """('body', 'series', 2, 'bars', 5, 'close') -> ('series[2].bars[5].close', 5)."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query") else list(loc)
    if not parts:
        return (loc[0] if loc else None), None
    name, row = "", None
    for prev, part in zip([None, *parts], parts):
        if isinstance(part, int):
            name += f"[{part}]"
            row = part if prev == "bars" else row
        else:
            name += f".{part}" if name else str(part)
    return name or None, row


def validation_error_response(errors: Sequence[Any]) -> JSONResponse:
    if errors and errors[0].get("type") == "json_invalid":
        ctx = errors[0].get("ctx", {})
        return error_response(
            400, f"the body is not valid JSON: {ctx.get('error', errors[0]['msg'])}", "body"
        )
    details: list[dict[str, Any]] = []
    for error in errors:
        name, row = _field_and_row(tuple(error.get("loc", ())))
        details.append(
            {"field": name, "row": row, "message": f"{name}: {error['msg']}" if name else error["msg"]}
        )
    if not details:
        return error_response(422, "invalid request")
    extra = len(details) - 1
    more = f" (and {extra} more problem{'s' if extra > 1 else ''}, in details)" if extra else ""
    first = details[0]
    return error_response(422, first["message"] + more, first["field"], first["row"], details)


def add_error_handlers(app: FastAPI) -> None:
    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, (RequestValidationError, ValidationError))
        return validation_error_response(exc.errors())

    async def on_input(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InputError)
        return error_response(exc.status, exc.message, exc.field, exc.row)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers) if exc.headers else None
        message = str(exc.detail)
        if exc.status_code in (404, 405) and message in ("Not Found", "Method Not Allowed"):
            message = (
                f"{message.lower()}: {request.method} {request.url.path} (the routes are listed at /docs)"
            )
        return error_response(exc.status_code, message, headers=headers)

    async def on_gone(request: Request, exc: Exception) -> Response:
        return Response(status_code=499)  # nobody is listening; the status is for the metrics

    async def on_anything(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal error: the server failed on this request; it has been logged")

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ValidationError, on_validation)
    app.add_exception_handler(InputError, on_input)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(ClientGone, on_gone)
    app.add_exception_handler(Exception, on_anything)


# --- the gate: request ids, metrics, API key, body size ----------------------------------------------


class PayloadTooLarge(HTTPException):
    def __init__(self, cap: int):
        super().__init__(
            413, f"the request body is over this server's cap of {cap} bytes (kronos serve --max-body-mb)"
        )


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float):
        super().__init__(
            408,
            f"the request body did not arrive within {seconds:g} s (kronos serve --read-timeout)",
            {"Connection": "close"},
        )


class Gate:
    """ASGI middleware in front of everything, mounted apps included: refuses a Host this server
    does not answer to and cross-site writes (`guard.HostRules`), answers /v1 without the API key
    with 401 before reading the body, refuses bodies over the cap with 413 (by Content-Length, or
    while streaming) and bodies that take longer than the read timeout with 408, echoes or sets
    X-Request-ID, and records each request in the metrics."""

    def __init__(self, app, service: Service):
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")[:128] or uuid.uuid4().hex
        status = 500

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            refusal = self._refusal(scope, headers)
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", None)
            self.service.metrics.observe_request(
                route, scope["method"], status, time.perf_counter() - started
            )

    def _refusal(self, scope, headers: dict[str, str]) -> Response | None:
        server = scope.get("server")
        unwelcome = self.service.hosts.refusal(scope["method"], headers, server[1] if server else None)
        if unwelcome is not None:
            status, message = unwelcome
            return error_response(status, message)
        path, key = scope["path"], self.service.config.api_key
        if key is not None and (path == "/v1" or path.startswith("/v1/")):
            supplied = headers.get("x-api-key") or _bearer(headers.get("authorization", ""))
            if not supplied or not hmac.compare_digest(supplied.encode(), key.encode()):
                message = f"this server needs an API key: {API_KEY_HEADERS}"
                return error_response(401, message, headers={"WWW-Authenticate": "Bearer"})
        cap = self.service.limits.max_body_bytes
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            return error_response(413, str(PayloadTooLarge(cap).detail), headers={"Connection": "close"})
        return None

    def _limited(self, receive):
        """`receive`, refusing a body over the cap, or one not complete within the read timeout."""
        cap, received, complete = self.service.limits.max_body_bytes, 0, False
        timeout = self.service.config.read_timeout_s
        deadline = time.monotonic() + timeout

        async def limited_receive():
            nonlocal received, complete
            if complete:  # what may come now is the client's disconnect, at any time
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise BodyTimeout(timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > cap:
                    raise PayloadTooLarge(cap)
            return message

        return limited_receive


def _bearer(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


# --- routes --------------------------------------------------------------------------------------------


def build_v1(service: Service) -> APIRouter:
    """The routes under /v1: the model, forecasts of JSON bars and of uploads, and parsing."""
    v1 = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
    add_model_route(v1, service)
    add_forecast_routes(v1, service)
    add_upload_routes(v1, service)
    return v1


def _need_ready(service: Service) -> None:
    if not service.ready:
        raise HTTPException(503, f"not ready: {service.not_ready_reason}", {"Retry-After": "1"})


def add_model_route(v1: APIRouter, service: Service) -> None:
    @v1.get("/models", summary="The model served: name, context, lookback, metadata, and this server's caps")
    async def models() -> dict:
        predictor = service.predictor
        metadata = predictor.metadata
        return {
            "models": [
                {
                    "name": service.config.model_name,
                    "max_context": predictor.max_context,
                    "lookback": predictor.lookback,
                    "history": metadata.history,
                    "frequencies": list(metadata.frequencies),
                    "metadata": metadata.to_dict(),
                    "parameters": sum(p.numel() for p in predictor.model.parameters()),
                    "device": str(predictor.device),
                }
            ],
            "limits": service.limits.as_dict(),
            "batching": {"max_batch": service.config.max_batch, "wait_ms": service.config.batch_wait_ms},
            "page": {"paths": min(PAGE_PATHS, service.limits.max_paths)},
            "examples": sorted(EXAMPLES),
        }


SeriesItems = Callable[[], Iterable[tuple[Series, object, str]]]


async def _forecasts(
    service: Service, request: Request, options: ForecastOptions, read: SeriesItems
) -> tuple[Job, list[dict], int]:
    """Every route's forecast: the options checked and the series that `read` gives as (series,
    key, label) planned, in a worker thread; their forecast sampled with other requests' series;
    each summarised. Also the number of series in the generation call."""

    def read_all() -> tuple[tuple[float, ...], Job]:
        levels = check_options(options, service.limits)
        return levels, plan(read(), options, service.lookback)

    levels, job = await run_in_threadpool(read_all)
    made = await service.generate(request, job)

    def answers() -> list[dict]:
        return [
            summarize(made.forecast.subset(i, i + 1), history(one, service.lookback), future, levels, options)
            for i, (one, future) in enumerate(zip(job.series, job.futures))
        ]

    return job, await run_in_threadpool(answers), made.batch_series


async def _one_forecast(
    service: Service, request: Request, options: ForecastOptions, read: Callable[[], Series], key: object = 0
) -> JSONResponse:
    _need_ready(service)
    _, (answer,), batch_series = await _forecasts(service, request, options, lambda: [(read(), key, "bars")])
    return JSONResponse({**_header(service, options), **answer, "batch_series": batch_series})


def add_forecast_routes(v1: APIRouter, service: Service) -> None:
    limits = service.limits

    @v1.post(
        "/forecast",
        response_model=ForecastResponse,
        summary="Forecast one series of JSON bars: quantiles, median, P(up), expected volatility",
    )
    async def forecast(body: ForecastRequest, request: Request) -> JSONResponse:
        """With a seed, the numbers equal KronosPredictor.predict_quantiles(last lookback bars, ...,
        sampling=Sampling(..., seed=seed)) for series id 0. Requests arriving together share one generation call."""
        return await _one_forecast(
            service, request, body, lambda: series_from_bars(body.bars, "bars", limits)
        )

    @v1.post(
        "/forecast/batch",
        response_model=BatchResponse,
        summary="Forecast many series in one request, with shared options",
    )
    async def forecast_batch(body: BatchRequest, request: Request) -> JSONResponse:
        """Series i draws from (seed, its id), its position when it has no id. Its numbers equal
        predict_quantiles(..., sampling=Sampling(..., seed=seed), series_id=id) series by series."""
        _need_ready(service)
        if len(body.series) > limits.max_series:
            raise InputError(
                f"series has {len(body.series)} entries, over this server's cap of {limits.max_series} "
                "(kronos serve --max-series)",
                "series",
            )
        job, answers, _ = await _forecasts(service, request, body, lambda: _batch_items(body, limits))
        forecasts_by_id = [{"id": one.key, **answer} for one, answer in zip(job.series, answers)]
        return JSONResponse({**_header(service, body), "forecasts": forecasts_by_id})


def _batch_items(body: BatchRequest, limits: Limits) -> Iterator[tuple[Series, object, str]]:
    """A batch request's series as (series, key, label), keyed by id (default: position)."""
    ids = [i if item.id is None else item.id for i, item in enumerate(body.series)]
    if len(set(ids)) != len(ids):
        repeated = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"series ids must be distinct: {repeated!r} appears more than once", "series")
    for i, (item, key) in enumerate(zip(body.series, ids)):
        yield series_from_bars(item.bars, f"series[{i}].bars", limits), key, f"series[{i}].bars"


def add_upload_routes(v1: APIRouter, service: Service) -> None:
    """The routes that take a multipart form with a CSV file (and the forecast options, if they have any)."""
    limits = service.limits

    async def forecast_csv(request: Request) -> JSONResponse:
        content, name, timestamp_column, fields = await _read_upload(request)
        options = _form_options(fields)
        # keyed by the file's series name, as `kronos forecast FILE` keys it: the same seed, the same numbers
        return await _one_forecast(
            service,
            request,
            options,
            lambda: series_from_csv(content, name, limits, timestamp_column),
            series_name(Path(name)),
        )

    async def parse(request: Request) -> JSONResponse:
        content, name, timestamp_column, fields = await _read_upload(request)
        if fields:
            raise InputError(
                f"unknown form field(s) {sorted(fields)}; only file and timestamp_column", sorted(fields)[0]
            )
        series = await run_in_threadpool(series_from_csv, content, name, limits, timestamp_column)
        return JSONResponse({"name": name, "columns": list(series.columns), "bars": bars_as_json(series)})

    for path, route, response_model, with_options, summary in (
        ("/forecast/csv", forecast_csv, ForecastResponse, True,
         "Forecast an uploaded CSV file (multipart form: file, and any forecast option as a field)"),
        ("/parse", parse, BarsResponse, False,
         "Read and check an uploaded CSV file; answers its bars as /v1/forecast takes them"),
    ):  # fmt: skip
        v1.add_api_route(
            path,
            route,
            methods=["POST"],
            response_model=response_model,
            summary=summary,
            openapi_extra=_multipart_body(with_options),
        )


def _header(service: Service, options: ForecastOptions) -> dict:
    return {
        "model": service.config.model_name,
        "steps": options.steps,
        "paths_sampled": options.paths,
        "seed": options.seed,
    }


async def _read_upload(request: Request) -> tuple[bytes, str, str | None, dict[str, str]]:
    """The uploaded file's bytes and name, its timestamp column if named, and the other form fields."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InputError(
            "send the file as multipart/form-data in a field named 'file' (curl -F file=@prices.csv)",
            "file",
            status=415,
        )
    form = await request.form(max_files=1, max_fields=64)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InputError("the form needs a CSV file in the field 'file' (curl -F file=@prices.csv)", "file")
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if key == "file":
            continue
        if not isinstance(value, str) or key in fields:
            raise InputError(f"form field {key!r} must be given once, as text", key)
        fields[key] = value
    name = Path(upload.filename or "file").name[:100] or "file"
    return await upload.read(), name, fields.pop("timestamp_column", None), fields


def _form_options(fields: dict[str, str]) -> ForecastOptions:
    """Form fields as forecast options: each value read as JSON where it is JSON ('12', 'true',
    'null'), else as text ('5min', '0.1,0.5,0.9'). JSON nested deeper than Python's recursion
    limit is refused (400)."""
    values: dict[str, Any] = {}
    for key, text in fields.items():
        try:
            values[key] = json.loads(text)
        except ValueError:
            values[key] = text
        except RecursionError:
            raise InputError(
                f"form field {key!r} is JSON nested too deeply to read", key, status=400
            ) from None
    return ForecastOptions.model_validate(values)


def _multipart_body(with_options: bool) -> dict:
    properties: dict[str, Any] = {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "CSV: timestamps, open, high, low, close[, volume, amount]",
        },
        "timestamp_column": {
            "type": "string",
            "description": "the timestamp column (default: timestamps/date/datetime/time)",
        },
    }
    if with_options:
        properties.update(ForecastOptions.model_json_schema()["properties"])
    schema = {"type": "object", "properties": properties, "required": ["file"]}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def create_app(predictor: KronosPredictor, config: ServeConfig | None = None) -> FastAPI:
    """The service for a loaded predictor."""
    config = config or ServeConfig()
    service = Service(predictor, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.batcher.start()
        service.metrics.queued.set_function(lambda: service.batcher.queued)
        warm_up = asyncio.create_task(service.warm_up())
        yield
        warm_up.cancel()
        await service.batcher.stop()

    app = FastAPI(
        title="kronos",
        version=__version__,
        summary="Probabilistic forecasts of OHLCV bars with Kronos",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    add_error_handlers(app)
    app.include_router(build_v1(service))

    @app.get("/healthz", summary="The process answers")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="The model is loaded and has answered a first forecast",
        responses={503: {"model": ErrorResponse}},
    )
    async def readyz() -> Response:
        if not service.ready:
            return error_response(503, f"not ready: {service.not_ready_reason}")
        return JSONResponse({"status": "ready", "model": config.model_name})

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/static/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> Response:
        path = _package_file("plotly", "package_data/plotly.min.js")
        if path is None:
            raise HTTPException(
                404, "plotly.min.js comes from the plotly package: pip install 'kronos-forecasting[serve]'"
            )
        return FileResponse(
            path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
        )

    swagger = _package_file("swagger_ui_bundle", "")
    if swagger is not None:
        app.mount("/static/swagger", StaticFiles(directory=_swagger_dir(swagger)), name="swagger")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if swagger is None:
            return HTMLResponse('<p>The API is described in <a href="/openapi.json">/openapi.json</a>; '
                                "pip install 'kronos-forecasting[serve]' for the interactive page.</p>")  # fmt: skip
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="kronos API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Gate, service=service)
    return app


def _package_file(package: str, relative: str) -> Path | None:
    """A file inside an installed package, or None when the package is not installed."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), relative)
    return path if path.exists() else None


def _swagger_dir(package_dir: Path) -> Path:
    return next((package_dir / "vendor").glob("swagger-ui-*"))
