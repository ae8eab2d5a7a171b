"""Prometheus metrics of the service (GET /metrics), in a registry of its own per app.

Every label takes a bounded set of values, whatever clients send: routes by their template (a
mounted app by its mount path; no route: "unmatched"), methods among the standard ones (any other:
"other"), statuses among those the service answers.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED, OTHER_METHOD = "unmatched", "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "kronos_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.errors = Counter(
            "kronos_request_errors",
            "HTTP requests answered with status 400 or above",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "kronos_request_duration_seconds", "time from request to response", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_series = Histogram(
            "kronos_batch_series", "series per generation call", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "kronos_batch_requests", "requests sharing one generation call", buckets=BATCH_BUCKETS, registry=r
        )
        self.generation = Histogram(
            "kronos_generation_seconds", "time of one generation call", buckets=LATENCY_BUCKETS, registry=r
        )
        self.cancelled = Counter(
            "kronos_cancelled_requests", "forecasts dropped because the client went away", registry=r
        )
        self.stopped_calls = Counter(
            "kronos_cancelled_generations",
            "generation calls stopped part way because every client of the call went away",
            registry=r,
        )
        self.queued = Gauge("kronos_queued_series", "series waiting for a generation call", registry=r)
        self.ready = Gauge(
            "kronos_ready", "1 once the model is loaded and has answered a first forecast", registry=r
        )

    def observe_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """A request answered: `route` is the template of the route that took it (None: none)."""
        route = route or UNMATCHED
        method = method if method in METHODS else OTHER_METHOD
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if status >= 400:
            self.errors.labels(route, str(status)).inc()

    def observe_call(self, series: int, requests: int, seconds: float) -> None:
        self.batch_series.observe(series)
        self.batch_requests.observe(requests)
        self.generation.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
