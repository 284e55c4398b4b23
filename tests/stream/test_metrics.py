"""The metrics endpoint and the health check, over real HTTP."""

import base64
import json
import urllib.error
import urllib.request

import pytest

from crmrisk.stream.access import InsecureListenError
from crmrisk.stream.metrics import WorkerMetrics, serve


@pytest.fixture
def served():
    metrics = WorkerMetrics()
    server = serve(metrics, port=0, stale_after_s=60)
    yield metrics, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_metrics__exposes_the_worker_series(served):
    metrics, url = served
    metrics.events_in.inc(5)
    metrics.dead_letters.labels("invalid_json").inc()
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    assert "crmrisk_events_in_total 5.0" in text
    assert 'crmrisk_dead_letters_total{reason="invalid_json"} 1.0' in text
    assert "crmrisk_event_to_score_ms_bucket" in text


def test_metrics__include_model_reloads(served):
    from crmrisk.lifecycle.watcher import RELOADS

    _, url = served
    RELOADS.labels("credit", "loaded").inc()
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    assert 'crmrisk_model_reloads_total{domain="credit",result="loaded"}' in text


def test_health__unhealthy_until_the_loop_has_stepped(served):
    metrics, url = served
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{url}/health", timeout=5)
    assert info.value.code == 503
    metrics.mark_step()
    report = json.loads(urllib.request.urlopen(f"{url}/health", timeout=5).read())
    assert report["ok"] is True and report["last_step_age_s"] < 60


TOKEN = "metrics-token-for-tests"


def _status(url: str, authorization: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": authorization or ""})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        assert exc.code != 401 or exc.headers["WWW-Authenticate"].startswith("Basic ")
        return exc.code


def test_serve__with_a_token_every_path_needs_it():
    metrics = WorkerMetrics()
    metrics.mark_step()
    server = serve(metrics, port=0, token=TOKEN)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for path in ("/metrics", "/health", "/elsewhere"):
            assert _status(url + path) == 401
            assert _status(url + path, f"Bearer {TOKEN}-not") == 401
        assert _status(f"{url}/metrics", f"Bearer {TOKEN}") == 200
        assert _status(f"{url}/health", f"Bearer {TOKEN}") == 200
        basic = base64.b64encode(f"prometheus:{TOKEN}".encode()).decode()
        assert _status(f"{url}/metrics", f"Basic {basic}") == 200
    finally:
        server.shutdown()


def test_serve__refuses_to_listen_beyond_loopback_without_a_token():
    with pytest.raises(InsecureListenError, match=r"0\.0\.0\.0"):
        serve(WorkerMetrics(), port=0, host="0.0.0.0")
    server = serve(WorkerMetrics(), port=0, host="0.0.0.0", token=TOKEN)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        assert _status(url) == 401 and _status(url, f"Bearer {TOKEN}") == 200
    finally:
        server.shutdown()


def test_count_names__bounds_the_names_per_domain_and_series():
    from crmrisk.stream.metrics import MAX_NAMES, OTHER, WorkerMetrics

    m = WorkerMetrics()
    m.count_names(m.unknown_fields, {("credit", f"f{i}"): 1 for i in range(MAX_NAMES + 5)})
    m.count_names(m.unknown_fields, {("credit", "f0"): 2, ("credit", "late"): 3})
    m.count_names(m.unknown_fields, {("telco", "late"): 1})  # another domain: its own names
    m.count_names(m.unknown_kinds, {("credit", "late"): 1})  # another series: its own names
    sample = m.registry.get_sample_value
    assert sample("crmrisk_unknown_fields_total", {"domain": "credit", "field": "f0"}) == 3
    assert sample("crmrisk_unknown_fields_total", {"domain": "credit", "field": OTHER}) == 8
    assert sample("crmrisk_unknown_fields_total", {"domain": "credit", "field": "late"}) is None
    assert sample("crmrisk_unknown_fields_total", {"domain": "telco", "field": "late"}) == 1
    assert sample("crmrisk_unknown_kinds_total", {"domain": "credit", "kind": "late"}) == 1
