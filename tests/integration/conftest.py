"""Fixtures for end-to-end runs: a credit checkpoint, isolated topics and keys, a worker, readers.

Each test gets its own topics, Redis key prefix and consumer group (on the shared broker and
Redis from ``tests/conftest.py``), so tests never see each other's messages or state.
``secured_services`` is a second pair, started once per session by the local launcher on free
ports: Kafka with SASL_SSL (SCRAM-SHA-512) and Redis with TLS and an ACL user.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from kafka import KafkaConsumer, TopicPartition
from pydantic import SecretStr

from crmrisk import deploy, lifecycle, model
from crmrisk.deploy import Launcher
from crmrisk.model.features import FeatureEncoder
from crmrisk.settings import Settings, TopicSettings
from crmrisk.stream.transform import window

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 32


@pytest.fixture(scope="session")
def credit_dataset():
    from crmrisk.training.datasets import load_domain

    return load_domain("credit", ROOT / "data", 0)


@pytest.fixture(scope="session")
def credit_checkpoint(tmp_path_factory, credit_dataset) -> Path:
    """A real checkpoint: the credit encoder fitted on the training split, random weights.

    Score equality between stream and offline does not need a trained model, only the same one.
    """
    from crmrisk.training.datasets import fit_encoder

    encoder = fit_encoder(credit_dataset.spec, credit_dataset.train)
    network = model.build(model.DEFAULT_VARIANT, encoder.event_dim, encoder.profile_dim, (), seed=0)
    path = tmp_path_factory.mktemp("models") / "credit" / "it-random-0"
    manifest = {"domain": "credit", "version": "it-random-0", "encoder": encoder.to_dict()}
    lifecycle.save_checkpoint(path, network, manifest)
    return path


@pytest.fixture
def stream_settings(
    settings: Settings, new_topic: Callable[..., str], redis_prefix: str
) -> Settings:
    """Settings with fresh topics (2 partitions), key prefix and consumer group for one test."""
    tag = uuid.uuid4().hex[:8]
    topics = {name: new_topic(partitions=2, prefix=f"it-{name}") for name in TopicSettings.roles()}
    return Settings(
        kafka={
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "group_id": f"it-{tag}",
            "topics": topics,
        },
        redis={"url": settings.redis.url, "key_prefix": redis_prefix.rstrip(":"), "window": WINDOW},
        scoring={"device": "cpu", "metrics_port": 0, "max_batch_size": 256, "max_delay_ms": 5},
    )


@dataclass(frozen=True)
class SecuredServices:
    """Kafka (SASL_SSL, SCRAM-SHA-512) and Redis (TLS, ACL user) that only ``settings`` reach.

    The passwords are random and distinctive, so a test can look for them in every output.
    """

    launcher: Launcher
    settings: Settings  # the secured endpoints, user, passwords and CA; defaults otherwise
    kafka_password: str
    redis_password: str
    up_output: str  # what `crmrisk up` printed

    @property
    def ca_file(self) -> Path:
        return self.launcher.certificates.ca_pem


@pytest.fixture(scope="session")
def secured_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredServices]:
    """One secured pair per session (a broker start is the expensive part), started by
    `crmrisk up` from the settings a user would write, on free ports; `crmrisk down` after."""
    from typer.testing import CliRunner

    from crmrisk.cli import app
    from crmrisk.commands.services import launcher_for

    home = tmp_path_factory.mktemp("secured") / "var"
    kafka_port, redis_port = deploy.free_port_block(2), deploy.free_port_block(1)
    user = "crmrisk-app"
    kafka_password = f"kafka-pw-{secrets.token_hex(8)}"
    redis_password = f"redis-pw-{secrets.token_hex(8)}"
    ca = home / "tls" / "ca.pem"  # where the launcher makes its CA
    settings = Settings(
        kafka={
            "bootstrap_servers": f"127.0.0.1:{kafka_port}",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": user,
            "sasl_password": kafka_password,
            "ssl_cafile": ca,
        },
        redis={
            "url": f"rediss://127.0.0.1:{redis_port}/0",
            "username": user,
            "password": redis_password,
            "ssl_ca_certs": ca,
        },
        services={
            "home": home,
            "kafka_port": kafka_port,
            "kafka_controller_port": kafka_port + 1,
            "redis_port": redis_port,
            "kafka_heap": "-Xms128m -Xmx384m",
        },
    )
    env = settings_env(settings) | {
        "RISK_SERVICES__HOME": str(home),
        "RISK_SERVICES__KAFKA_PORT": str(kafka_port),
        "RISK_SERVICES__KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
        "RISK_SERVICES__REDIS_PORT": str(redis_port),
        "RISK_SERVICES__KAFKA_HEAP": settings.services.kafka_heap,
    }
    runner = CliRunner()
    try:
        up = runner.invoke(app, ["up"], env=env, terminal_width=200)
        if up.exit_code != 0:
            pytest.fail(f"crmrisk up of the secured services failed:\n{up.output}")
        launcher = launcher_for(settings)
        yield SecuredServices(launcher, settings, kafka_password, redis_password, up.output)
    finally:
        runner.invoke(app, ["down"], env=env)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a ``crmrisk`` subprocess build the same Settings."""
    k, r, s = settings.kafka, settings.redis, settings.scoring
    env = dict(os.environ)
    env.update(
        RISK_KAFKA__BOOTSTRAP_SERVERS=k.bootstrap_servers,
        RISK_KAFKA__GROUP_ID=k.group_id,
        RISK_REDIS__URL=r.url,
        RISK_REDIS__KEY_PREFIX=r.key_prefix,
        RISK_REDIS__WINDOW=str(r.window),
        RISK_SCORING__DEVICE=s.device,
        RISK_SCORING__METRICS_PORT=str(s.metrics_port),
        RISK_SCORING__MAX_BATCH_SIZE=str(s.max_batch_size),
        RISK_SCORING__MAX_DELAY_MS=str(s.max_delay_ms),
    )
    for name, value in k.topics.model_dump().items():
        env[f"RISK_KAFKA__TOPICS__{name.upper()}"] = str(value)
    secured = {
        "RISK_KAFKA__SECURITY_PROTOCOL": k.security_protocol,
        "RISK_KAFKA__SASL_MECHANISM": k.sasl_mechanism,
        "RISK_KAFKA__SASL_USERNAME": k.sasl_username,
        "RISK_KAFKA__SASL_PASSWORD": k.sasl_password,
        "RISK_KAFKA__SSL_CAFILE": k.ssl_cafile,
        "RISK_REDIS__USERNAME": r.username,
        "RISK_REDIS__PASSWORD": r.password,
        "RISK_REDIS__SSL_CA_CERTS": r.ssl_ca_certs,
        "RISK_SCORING__METRICS_TOKEN": s.metrics_token,
        "RISK_DASHBOARD__TOKEN": settings.dashboard.token,
    }
    for name, value in secured.items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is not None and value != "PLAINTEXT":
            env[name] = str(value)
    return env


def security_options(settings: Settings) -> dict:
    """kafka-python options, besides the servers, that reach ``settings``' broker."""
    config = settings.kafka.client_config()
    config.pop("bootstrap_servers")
    return config


def crmrisk_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "crmrisk", *args]


class WorkerThread:
    """``run_worker`` on a background thread with its own event loop; re-raises its failure."""

    def __init__(self, settings: Settings, models: dict, role: str = "ingest", **kwargs) -> None:
        from crmrisk.stream.metrics import WorkerMetrics

        self._args = (settings, role, models)
        self.metrics = kwargs.setdefault("metrics", WorkerMetrics())
        self._kwargs = kwargs
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        from crmrisk.wiring.worker import run_worker

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await run_worker(*self._args, self._stop, **self._kwargs)

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced in stop()
            self._error = exc
            self._ready.set()

    def __enter__(self) -> WorkerThread:
        self._thread.start()
        self._ready.wait(30)
        return self

    def owning(self, timeout_s: float = 60.0) -> WorkerThread:
        """Wait until the worker owns partitions: it has started (its alert process loaded)
        and joined the group, so what is published next is consumed as it arrives."""
        deadline = time.monotonic() + timeout_s
        while self.metrics.partitions_owned == 0:
            if self._error is not None or not self._thread.is_alive():
                raise AssertionError(f"the worker stopped before owning a partition: {self._error}")
            assert time.monotonic() < deadline, f"no partition owned after {timeout_s:.0f} s"
            time.sleep(0.1)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread.is_alive() and self._error is None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        if self._error is not None:
            raise self._error


def read_topic(
    bootstrap: str,
    topic: str,
    until: Callable[[list], bool],
    timeout_s: float,
    settle_s: float = 1.0,
    security: dict | None = None,
) -> list:
    """Every record of ``topic`` from the start, read until ``until(records)`` holds (then
    ``settle_s`` more, to catch extras) or ``timeout_s`` passes. ``security``: kafka-python
    options for a secured broker (``security_options``)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), enable_auto_commit=False, **(security or {})
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        consumer.seek_to_beginning()
        records: list = []
        deadline = time.monotonic() + timeout_s
        settle_at = None
        while time.monotonic() < (settle_at or deadline):
            for batch in consumer.poll(timeout_ms=200, max_records=5000).values():
                records.extend(batch)
            if settle_at is None and until(records):
                settle_at = time.monotonic() + settle_s
        return records
    finally:
        consumer.close()


@pytest.fixture
def models_for(credit_checkpoint) -> Iterator[Callable[[Settings], dict]]:
    from crmrisk.wiring.models import load_models

    yield lambda s: load_models(s, ["credit"], {"credit": credit_checkpoint})


def offline_scores(checkpoint, events):
    """Probability per statement event, from the checkpoint alone: for each event the window
    of that customer's statements up to it (replay order) and the customer's profile."""
    network, manifest = lifecycle.load_checkpoint(checkpoint)
    encoder = FeatureEncoder.from_dict(manifest["encoder"])
    history, profiles, rows = {}, {}, []
    for event in events:
        if event.kind == "profile":
            profiles[event.customer_id] = encoder.encode_profile(event.fields)
            continue
        seen = history.setdefault(event.customer_id, [])
        seen.append(event)
        rows.append((event.event_id, window(seen, WINDOW), profiles[event.customer_id]))
    longest = max(len(w) for _, w, _ in rows)
    x = np.zeros((len(rows), longest, encoder.event_dim), np.float32)
    mask = np.zeros((len(rows), longest), bool)
    for i, (_, w, _) in enumerate(rows):
        x[i, : len(w)] = [encoder.encode_event(e.kind, e.fields) for e in w]
        mask[i, : len(w)] = True
    profile = np.stack([p for _, _, p in rows])
    with torch.inference_mode():
        out = network(torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(profile))
    return dict(zip([r[0] for r in rows], out.probability.numpy().tolist(), strict=True))
