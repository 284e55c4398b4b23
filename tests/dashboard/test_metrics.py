"""Reading a worker's /metrics for the dashboard: the token goes along, a refusal reads as none."""

from crmrisk.dashboard.metrics import from_url, summarise
from crmrisk.stream.metrics import WorkerMetrics, serve

TOKEN = "metrics-token-for-tests"


def test_from_url__sends_the_token_a_protected_worker_wants():
    metrics = WorkerMetrics()
    metrics.events_in.inc(3)
    server = serve(metrics, port=0, token=TOKEN)
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        assert summarise(from_url(url, TOKEN)())["counts"]["crmrisk_events_in"] == 3
        assert from_url(url, None)() is None  # 401: nothing to show, no crash
        assert from_url(url, TOKEN + "x")() is None
    finally:
        server.shutdown()


def test_summarise__reports_the_field_contract_counts_per_domain_and_name():
    from prometheus_client import generate_latest

    metrics = WorkerMetrics()
    metrics.count_names(metrics.coerced_fields, {("credit", "bill_amt", "missing"): 2})
    metrics.count_names(metrics.unknown_kinds, {("credit", "martian"): 1})
    quality = summarise(generate_latest(metrics.registry).decode())["data_quality"]
    assert sorted(quality, key=lambda q: q["series"]) == [
        {"series": "coerced", "domain": "credit", "field": "bill_amt", "to": "missing",
         "count": 2.0},
        {"series": "unknown_kind", "domain": "credit", "kind": "martian", "count": 1.0},
    ]  # fmt: skip
