"""The metrics endpoint and the health check, over real HTTP."""

import json
import urllib.error
import urllib.request

import pytest

from stream.metrics import WorkerMetrics, serve


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
    from stream.model_updates import RELOADS

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
