"""The dashboard in a real browser (headless Chromium from Debian, driven by Selenium) against
the real pipeline: Kafka, Redis, an ingest worker scoring a replay, the dashboard reading it.
The dashboard has an access token: without it the browser gets a 401 and no data; with it (the
Authorization header a browser sends once its user typed the token at the login prompt) the
page, its API calls and its event stream all work. With the replay's outcomes and a challenger's
shadow scores published too, the page draws the performance plots from them."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from crmrisk.commands.dashboard import serve_in_thread
from crmrisk.dashboard.metrics import from_registry
from crmrisk.stream.events import Outcome, RiskAlert, RiskScore, ShadowScore
from crmrisk.stream.metrics import WorkerMetrics
from crmrisk.training.datasets.feed import dataset_events, dataset_outcomes
from crmrisk.training.performance import ASSUMPTIONS, performance_by_chunk
from crmrisk.wiring.replay import replay

from .conftest import WorkerThread, read_topic

pytestmark = pytest.mark.integration

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
CUSTOMERS = 40
TOKEN = "dashboard-token-of-the-browser-test"
CHUNK_S = 86400.0  # the dashboard's default chunk (24 h)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM and DRIVER):
        pytest.fail("needs Debian's chromium and chromium-driver: `make system-packages`")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _challenger(score: RiskScore, threshold: float) -> ShadowScore:
    """A made-up challenger's score of the same event: a flatter probability."""
    p = round(0.5 * score.probability + 0.25, 6)
    return ShadowScore(
        customer_id=score.customer_id, domain=score.domain, event_id=score.event_id,
        event_time=score.event_time, probability=p, model_version="it-challenger",
        champion_version=score.model_version, champion_probability=score.probability,
        would_alert=p >= threshold, scored_at=score.scored_at, shadow_us=40.0, champion_us=30.0,
    )  # fmt: skip


def _get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def test_dashboard__shows_live_alerts_with_reasons_and_a_customer_drill_down(
    stream_settings, credit_dataset, credit_checkpoint, models_for, browser, tmp_path, new_topic
):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # Threshold 0: every customer alerts once (random weights), each alert with its reasons.
    scoring = stream_settings.scoring.model_copy(update={"alert_threshold": 0.0, "reasons": 3})
    access = stream_settings.dashboard.model_copy(
        update={"token": SecretStr(TOKEN), "performance_every_s": 1.0}
    )
    shadow_topic = new_topic(partitions=2, prefix="it-shadow_scores")
    topics = stream_settings.kafka.topics.model_copy(update={"shadow_scores": shadow_topic})
    kafka = stream_settings.kafka.model_copy(update={"topics": topics})
    settings = stream_settings.model_copy(
        update={"scoring": scoring, "dashboard": access, "kafka": kafka}
    )
    metrics = WorkerMetrics()
    records = credit_dataset.test[:CUSTOMERS]
    events = dataset_events(records, "credit")
    with WorkerThread(settings, models_for(settings), metrics=metrics):
        page = serve_in_thread(
            settings, ["credit"], "127.0.0.1", _free_port(), from_registry(metrics.registry),
            {"credit": credit_checkpoint},
        )  # fmt: skip
        try:
            for path in ("", "api/summary", "stream", "metrics", "static/plots.js"):
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(page.url + path, timeout=10)
                assert refused.value.code == 401
            browser.get(page.url)  # no token: a login prompt (cancelled headless), no page
            assert not browser.title.startswith("crmrisk")
            assert not browser.find_elements(By.ID, "conn")
            login = base64.b64encode(f"ops:{TOKEN}".encode()).decode()
            browser.execute_cdp_cmd("Network.enable", {})
            browser.execute_cdp_cmd(
                "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {login}"}}
            )
            browser.get(page.url)
            assert browser.title.startswith("crmrisk")
            # The panels re-render every second: an element found just before a re-render is
            # stale by the time it is read; the wait polls again instead of failing.
            stale = (StaleElementReferenceException,)
            wait = WebDriverWait(browser, 20, poll_frequency=0.2, ignored_exceptions=stale)
            wait.until(lambda b: b.find_element(By.ID, "conn").text == "live")
            assert not browser.find_elements(By.CSS_SELECTOR, "#alerts li")

            published = time.monotonic()
            asyncio.run(replay(settings, events, dataset_outcomes(records, "credit"), None, False))
            wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#alerts li")) >= CUSTOMERS)
            seen_after_s = time.monotonic() - published
            assert seen_after_s < 20

            items = browser.find_elements(By.CSS_SELECTOR, "#alerts li")
            ids = {li.get_attribute("data-customer") for li in items}
            assert ids == {r.customer_id for r in records}
            first = items[0]
            assert first.find_elements(By.CSS_SELECTOR, ".why span"), "an alert without reasons"
            # The model panel comes with the summary, every second: it names the served version
            # once an alert or score of it has arrived (before, the registry's newest, if any).
            wait.until(
                lambda b: b.find_element(By.CSS_SELECTOR, ".model .version").text == "it-random-0"
            )
            wait.until(lambda b: b.find_element(By.ID, "eps").text not in ("–", "0"))
            # The field contract's counters (coerced / unknown fields / kinds): clean data.
            assert browser.find_element(By.ID, "quality").text == "0 / 0 / 0"

            customer = first.get_attribute("data-customer")
            first.click()
            wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#reasons tr.reason"))
            assert customer in browser.find_element(By.ID, "customer-name").text
            shown = [
                [td.text for td in row.find_elements(By.TAG_NAME, "td")[:2]]
                for row in browser.find_elements(By.CSS_SELECTOR, "#reasons tr.reason")
            ]
            events_shown = browser.find_elements(By.CSS_SELECTOR, "#events tr")
            assert len(events_shown) == 6  # the customer's six statements, newest first
            scored = sum(e.kind != "profile" for e in events)  # one score per statement
            _check_performance(settings, browser, page.url, wait, scored)
            screenshot = Path(os.environ.get("CRMRISK_SCREENSHOT_DIR") or tmp_path)
            browser.save_screenshot(str(screenshot / "dashboard_test.png"))
            performance = browser.find_element(By.ID, "performance")
            browser.execute_script("arguments[0].scrollIntoView()", performance)
            performance.screenshot(str(screenshot / "dashboard_performance_test.png"))
        finally:
            page.stop()

    alerts = read_topic(
        settings.kafka.bootstrap_servers, settings.kafka.topics.alerts,
        until=lambda got: len(got) >= CUSTOMERS, timeout_s=30,
    )  # fmt: skip
    by_customer = {
        a.customer_id: a for a in (RiskAlert.model_validate_json(r.value) for r in alerts)
    }
    want = [[c.field, c.value] for c in by_customer[customer].reasons]
    assert shown == want and len(want) == 3


def _check_performance(settings, browser, url: str, wait, scored: int) -> None:
    """Shadow scores published for every score: the page plots estimated vs realized AUC per
    chunk, calibration and champion vs shadow from exactly what the topics hold, and /metrics
    carries the same figures."""
    from selenium.webdriver.common.by import By

    k, threshold = settings.kafka, settings.scoring.alert_threshold
    bootstrap = k.bootstrap_servers
    raw = read_topic(bootstrap, k.topics.scores, until=lambda got: len(got) >= scored, timeout_s=30)
    scores = [RiskScore.model_validate_json(r.value) for r in raw]
    outcomes = [
        Outcome.model_validate_json(r.value)
        for r in read_topic(bootstrap, k.topics.outcomes, until=lambda got: got, timeout_s=30)
    ]
    assert scores and outcomes
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","))
    for score in scores:
        shadow = _challenger(score, threshold)
        producer.send(k.topics.shadow_scores, shadow.model_dump_json().encode(), key=shadow.key)
    producer.flush()
    producer.close()

    want = performance_by_chunk(scores, outcomes, threshold, CHUNK_S)
    chunks = len(want)
    labelled = [r for r in want if r.realized is not None and r.realized.auc is not None]
    assert chunks >= 2 and labelled, "the replay should give several chunks, one labelled"

    def drawn(kind: str, what: str):
        return browser.find_elements(By.CSS_SELECTOR, f'svg[data-plot="{kind}"] {what}')

    # The shadow plots appear once the page has read every shadow score: the scatter's dots.
    wait.until(lambda b: len(drawn("shadow-scatter", "circle.point")) == len(scores))
    estimated = drawn("auc", 'path.series[data-series$="estimated ±1 std"]')
    assert [e.get_attribute("data-n") for e in estimated] == [str(chunks)]
    assert [b.get_attribute("data-n") for b in drawn("auc", "path.band")] == [str(chunks)]
    realized = drawn("auc", 'circle.point[data-series$="realized"]')
    assert len(realized) == len(labelled)
    assert drawn("calibration", "circle.point") and drawn("calibration", "line.diagonal")
    assert drawn("expected-positives", "path.series")[0].get_attribute("data-n") == str(chunks)
    agreement = drawn("shadow-agreement", 'path.series[data-series$="same alert decision"]')
    assert [a.get_attribute("data-n") for a in agreement] == [str(chunks)]
    assert browser.find_element(By.CSS_SELECTOR, ".assumption-text").text == ASSUMPTIONS

    # The numbers behind the plots are training.performance's on the topics' records.
    report = json.loads(_get(url + "api/summary"))["performance"]["credit"]
    shown = report["versions"]["it-random-0"]["chunks"]
    assert len(shown) == chunks
    for row, got in zip(want, shown, strict=True):
        assert got["n"] == row.estimate.n
        assert got["estimated_auc"] == pytest.approx(row.estimate.auc, abs=1e-6)
        real = row.realized.auc if row.realized is not None else None
        assert got["realized_auc"] == (None if real is None else pytest.approx(real, abs=1e-6))
    (pair,) = report["shadow"]
    assert (pair["champion"], pair["challenger"]) == ("it-random-0", "it-challenger")
    assert sum(c["n"] for c in pair["chunks"]) == len(scores)
    mean_diff = sum(abs(0.25 - 0.5 * s.probability) for s in scores) / len(scores)
    weighted = sum(c["mean_abs_diff"] * c["n"] for c in pair["chunks"]) / len(scores)
    assert weighted == pytest.approx(mean_diff, abs=1e-4)

    # /metrics: the newest chunk's estimate, and the shadow counters, behind the same token.
    families = {f.name: f for f in text_string_to_metric_families(_get(url + "metrics").decode())}
    (sample,) = families["crmrisk_estimated_auc"].samples
    assert sample.labels == {"domain": "credit", "version": "it-random-0"}
    assert sample.value == pytest.approx(want[-1].estimate.auc, abs=1e-6)
    counted = {s.name: s.value for s in families["crmrisk_shadow_scores"].samples}
    assert counted["crmrisk_shadow_scores_total"] == len(scores)
