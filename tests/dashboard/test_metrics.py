"""Reading a worker's /metrics for the dashboard: the token goes along, a refusal reads as none."""

from dashboard.metrics import from_url, summarise
from stream.metrics import WorkerMetrics, serve

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
