"""The model watcher outlives a Redis restart: degraded while the pointer is unreadable, then
back, and a version promoted afterwards is served within the reload interval.

A dedicated ``redis-server`` on a free port holds this test's pointer, so killing it (SIGKILL,
as a crash would) touches no other test. The worker is idle while Redis is down.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import redis
import torch
from kafka import KafkaProducer

import model
from crmrisk.settings import Settings
from model.registry import ModelRegistry
from state.model_pointer import ModelPointer
from stream.app import follow_pointer
from stream.events import RiskScore
from stream.metrics import WorkerMetrics, serve
from stream.model_updates import POINTER_ERRORS, ModelPromoter
from training.datasets.feed import dataset_events

from .conftest import WorkerThread, read_topic

pytestmark = pytest.mark.integration

RELOAD_S = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis(port: int, workdir: Path) -> subprocess.Popen:
    process = subprocess.Popen(  # `make test` installs redis-server (the launcher needs it too)
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as error:  # 503 carries the report too
        return json.loads(error.read())


def _wait(condition, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} within {timeout_s} s")
        time.sleep(0.1)
    return time.monotonic() - started


def test_watcher__degraded_while_redis_is_down_then_serves_the_next_promotion(
    tmp_path, stream_settings, new_topic, credit_dataset, credit_checkpoint
):
    torch.set_num_threads(1)
    port = _free_port()
    server = _redis(port, tmp_path)
    updates = new_topic(prefix="it-model-updates")
    settings = Settings(
        kafka={
            **stream_settings.kafka.model_dump(),
            "topics": {**stream_settings.kafka.topics.model_dump(), "model_updates": updates},
        },
        redis={**stream_settings.redis.model_dump(), "url": f"redis://127.0.0.1:{port}/0"},
        scoring=stream_settings.scoring.model_dump(),
        model={"dir": str(tmp_path / "models")},
        training={"reload_check_every_s": RELOAD_S},
    )
    registry = ModelRegistry(settings.model.dir)
    v1 = registry.import_checkpoint("credit", credit_checkpoint)
    network, manifest = model.load_checkpoint(credit_checkpoint)
    other = model.build(
        manifest["variant"], network.config.event_dim, network.config.profile_dim, (), seed=1
    )
    v2 = registry.publish("credit", other, {"encoder": manifest["encoder"]}, parent=v1.version)
    producer = KafkaProducer(**settings.kafka.client_config(), acks="all")

    def promoter() -> ModelPromoter:
        pointer = ModelPointer(redis.Redis(port=port), settings.redis.key_prefix, 20)
        return ModelPromoter(registry, pointer, producer, updates)

    promoter().promote("credit", v1.version, "initial", expected=None)
    watcher, models = follow_pointer(settings, ["credit"])
    metrics = WorkerMetrics()
    health_port = _free_port()
    http = serve(metrics, health_port, checks=[watcher.health])
    errors_before = POINTER_ERRORS._value.get()
    events = dataset_events(credit_dataset.test[:3], "credit")
    try:
        with WorkerThread(settings, models, watcher=watcher, metrics=metrics):
            _wait(lambda: _health(health_port)["status"] == "ok", 30, "healthy at start")
            server.kill()  # SIGKILL: a crash, no shutdown
            server.wait(10)
            took = _wait(
                lambda: _health(health_port)["status"] == "degraded", 20, "/health degraded"
            )
            report = _health(health_port)
            assert "model pointer unreadable" in " ".join(report["reasons"]), report
            assert report["ok"] is False
            time.sleep(2 * RELOAD_S)  # retrying meanwhile, and still running
            assert watcher.health() is not None
            server = _redis(port, tmp_path)  # back, empty: the pointer was lost with it
            promoter().promote("credit", v2.version, "after the restart", expected=None)
            promoted = time.monotonic()
            _wait(lambda: watcher.live("credit") == v2.version, 4 * RELOAD_S + 5, "v0002 loaded")
            reload_s = time.monotonic() - promoted
            _wait(lambda: _health(health_port)["status"] == "ok", 10, "/health ok again")
            for event in events:
                producer.send(settings.kafka.topics.events, key=event.key, value=event.to_bytes())
            producer.flush()
            scored = [e for e in events if e.kind != "profile"]
            out = read_topic(
                settings.kafka.bootstrap_servers,
                settings.kafka.topics.scores,
                until=lambda got: len(got) >= len(scored),
                timeout_s=60,
            )
    finally:
        http.shutdown()
        watcher.close()
        producer.close()
        server.kill()
    got = [RiskScore.model_validate_json(r.value) for r in out]
    versions = {s.model_version for s in got}
    assert versions == {v2.version}
    assert POINTER_ERRORS._value.get() > errors_before
    assert took < 20 and reload_s < 4 * RELOAD_S + 5
