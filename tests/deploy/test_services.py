"""``crmrisk up | status | down`` against real processes, on ports of their own."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from typer.testing import CliRunner

from crmrisk.cli import app
from crmrisk.deploy import Launcher, kafka_broker_count, redis_answers
from crmrisk.deploy.process import port_in_use

pytestmark = pytest.mark.integration


def _states(launcher: Launcher) -> dict:
    return {state.name: state for state in launcher.status()}


def test_cli__up_status_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free_port_block):
    kafka_port, redis_port = free_port_block(2), free_port_block(1)
    for name, value in {
        "RISK_SERVICES__HOME": str(tmp_path / "var"),
        "RISK_SERVICES__KAFKA_PORT": str(kafka_port),
        "RISK_SERVICES__KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
        "RISK_SERVICES__REDIS_PORT": str(redis_port),
        "RISK_SERVICES__KAFKA_HEAP": "-Xms128m -Xmx384m",
    }.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    try:
        first = runner.invoke(app, ["up"])
        assert first.exit_code == 0, first.output
        assert kafka_broker_count(f"127.0.0.1:{kafka_port}") == 1
        assert redis_answers(f"redis://127.0.0.1:{redis_port}/0")
        pids = sorted((tmp_path / "var").rglob("*.pid"))
        assert [p.name for p in pids] == ["kafka.pid", "redis.pid"]
        before = [p.read_text() for p in pids]

        again = runner.invoke(app, ["up"])  # idempotent: reuses both processes
        assert again.exit_code == 0, again.output
        assert [p.read_text() for p in pids] == before

        status = runner.invoke(app, ["status"])
        assert status.exit_code == 0, status.output
        assert f"127.0.0.1:{kafka_port}" in status.output
        assert status.output.count("launcher") == 2
    finally:
        down = runner.invoke(app, ["down"])
    assert down.exit_code == 0, down.output
    assert "kafka" in down.output and "redis" in down.output
    assert not port_in_use(kafka_port) and not port_in_use(redis_port)
    assert not list((tmp_path / "var").rglob("*.pid"))
    after = runner.invoke(app, ["status"])
    assert after.exit_code == 1  # nothing answers any more
    assert runner.invoke(app, ["down"]).output.strip() == "nothing of ours was running"


def test_up__restarts_a_killed_broker_on_its_data(launcher: Launcher):
    launcher.up(kafka=True, redis=False)
    servers = launcher.kafka.bootstrap_servers
    producer = KafkaProducer(bootstrap_servers=servers, acks="all")
    producer.send("survivor", key=b"k", value=b"before the crash").get(timeout=30)
    producer.close()
    old_pid = _states(launcher)["kafka"].pid

    assert launcher.kafka.members[0].process.kill()  # SIGKILL: no clean shutdown
    crashed = _states(launcher)["kafka"]
    assert crashed.pid is None and not crashed.answering

    states = {s.name: s for s in launcher.up(kafka=True, redis=False)}
    assert states["kafka"].answering
    assert states["kafka"].pid not in (None, old_pid)
    assert states["kafka"].started_s is not None
    consumer = KafkaConsumer(bootstrap_servers=servers, group_id=None)
    partition = TopicPartition("survivor", 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    values = []
    deadline = time.monotonic() + 30
    while not values and time.monotonic() < deadline:
        values += [r.value for batch in consumer.poll(timeout_ms=500).values() for r in batch]
    consumer.close()
    assert values == [b"before the crash"]


def test_up__a_killed_redis_comes_back_with_its_data(launcher: Launcher):
    """The launcher's Redis keeps an append-only file (fsync every second): a SIGKILL loses at
    most the last second, and windows written before it survive the restart."""
    import redis

    launcher.up(kafka=False, redis=True)
    client = redis.Redis.from_url(launcher.redis.url)
    client.set("survivor", b"before the crash")
    assert client.config_get("appendonly")["appendonly"] == "yes"
    time.sleep(1.5)  # past the everysec fsync
    client.close()
    assert launcher.redis.process.kill()  # SIGKILL: no clean shutdown
    launcher.up(kafka=False, redis=True)
    assert redis.Redis.from_url(launcher.redis.url).get("survivor") == b"before the crash"


def test_down__leaves_services_it_did_not_start_alone(launcher: Launcher):
    launcher.up(kafka=False, redis=True)
    stranger = Launcher(
        home=launcher.home.parent / "other",
        cache_dir=launcher.cache_dir,
        kafka_version=launcher.kafka_version,
        kafka_heap="-Xmx128m",
        kafka_port=launcher.kafka.port,
        kafka_controller_port=launcher.kafka.controller_port,
        redis_port=launcher.redis.port,
        cluster_port=launcher.cluster.port,
        cluster_controller_port=launcher.cluster.controller_port,
        cluster_heap="-Xmx128m",
    )
    # Another home sees the same Redis as external: it reuses it and will not stop it.
    states = {s.name: s for s in stranger.up(kafka=False, redis=True)}
    assert states["redis"].owner == "external"
    assert stranger.down() == []
    assert redis_answers(launcher.redis.url)


def test_down__transient_only_stops_what_tests_started(launcher: Launcher):
    launcher.up(kafka=False, redis=True, transient=True)
    assert _states(launcher)["redis"].owner == "launcher (tests)"
    assert launcher.down(transient_only=True) == ["redis"]

    launcher.up(kafka=False, redis=True, transient=True)
    launcher.up(kafka=False, redis=True)  # a person's `crmrisk up` claims the running server
    assert _states(launcher)["redis"].owner == "launcher"
    assert launcher.down(transient_only=True) == []
    assert redis_answers(launcher.redis.url)
