"""The service's metrics: every label has a bounded set of values, whatever clients send."""

from __future__ import annotations

from kronos.serve.metrics import Metrics


def test_labels_of_invented_methods_and_paths_stay_bounded():
    metrics = Metrics()
    for i in range(500):
        metrics.observe_request(None, f"M{i}", 405, 0.01)
        metrics.observe_request("/v1/forecast", "POST", 200, 0.5)
        metrics.observe_request("/v1/forecast", "get", 405, 0.01)  # methods are case-sensitive
    samples = {
        tuple(sorted(sample.labels.items())): sample.value
        for family in metrics.registry.collect()
        if family.name == "kronos_requests"
        for sample in family.samples
        if sample.name == "kronos_requests_total"
    }
    assert samples == {
        (("method", "other"), ("route", "unmatched"), ("status", "405")): 500,
        (("method", "POST"), ("route", "/v1/forecast"), ("status", "200")): 500,
        (("method", "other"), ("route", "/v1/forecast"), ("status", "405")): 500,
    }
    assert len(metrics.render()) < 20_000
