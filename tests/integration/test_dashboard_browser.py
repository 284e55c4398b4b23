"""The dashboard in a real browser (headless Chromium from Debian, driven by Selenium) against
the real pipeline: Kafka, Redis, an ingest worker scoring a replay, the dashboard reading it.
The dashboard has an access token: without it the browser gets a 401 and no data; with it (the
Authorization header a browser sends once its user typed the token at the login prompt) the
page, its API calls and its event stream all work."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pydantic import SecretStr

from crmrisk.commands.dashboard import serve_in_thread
from dashboard.metrics import from_registry
from stream.events import RiskAlert
from stream.metrics import WorkerMetrics
from stream.replay import replay
from training.datasets.feed import dataset_events, dataset_outcomes

from .conftest import WorkerThread, read_topic

pytestmark = pytest.mark.integration

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
CUSTOMERS = 40
TOKEN = "dashboard-token-of-the-browser-test"


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


def test_dashboard__shows_live_alerts_with_reasons_and_a_customer_drill_down(
    stream_settings, credit_dataset, credit_checkpoint, models_for, browser, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # Threshold 0: every customer alerts once (random weights), each alert with its reasons.
    scoring = stream_settings.scoring.model_copy(update={"alert_threshold": 0.0, "reasons": 3})
    access = stream_settings.dashboard.model_copy(update={"token": SecretStr(TOKEN)})
    settings = stream_settings.model_copy(update={"scoring": scoring, "dashboard": access})
    metrics = WorkerMetrics()
    records = credit_dataset.test[:CUSTOMERS]
    events = dataset_events(records, "credit")
    with WorkerThread(settings, models_for(settings), metrics=metrics):
        page = serve_in_thread(
            settings, ["credit"], "127.0.0.1", _free_port(), from_registry(metrics.registry),
            {"credit": credit_checkpoint},
        )  # fmt: skip
        try:
            for path in ("", "api/summary", "stream"):
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
            wait = WebDriverWait(browser, 20, poll_frequency=0.2)
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
            screenshot = Path(os.environ.get("CRMRISK_SCREENSHOT_DIR") or tmp_path)
            browser.save_screenshot(str(screenshot / "dashboard_test.png"))
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
