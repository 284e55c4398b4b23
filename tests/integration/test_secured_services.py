"""The pipeline against Kafka with SASL_SSL (SCRAM-SHA-512) and Redis with TLS and an ACL user.

One run (``secured_run``, once for the module) goes through the real command lines: the ingest
worker, the trainer and ``crmrisk replay`` as subprocesses (the worker with ``--verbose``), the
dashboard, ``topics``, ``models``, ``score``, ``alerts`` and ``status`` in process. The tests
then check what came out, that /metrics and the dashboard wanted their tokens, and that no
password or token shows in any log, output, ``--help`` page, dead letter or file of the
services. Last, wrong credentials and untrusted certificates: one clear line, exit code 2.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import certifi
import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from crmrisk import deploy
from crmrisk.cli import app
from crmrisk.commands.dashboard import serve_in_thread
from crmrisk.commands.topics import create_topics
from crmrisk.dashboard.metrics import from_url
from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.settings import Settings
from crmrisk.stream.events import RiskScore
from crmrisk.training.datasets.feed import dataset_events, load_records

from .conftest import (
    ROOT,
    WINDOW,
    SecuredServices,
    crmrisk_command,
    read_topic,
    security_options,
    settings_env,
)

pytestmark = pytest.mark.integration

CUSTOMERS = 20
METRICS_TOKEN = f"metrics-token-{secrets.token_hex(8)}"
DASHBOARD_TOKEN = f"dashboard-token-{secrets.token_hex(8)}"
HELP_PAGES = (
    [],
    ["up"],
    ["status"],
    ["worker", "ingest"],
    ["worker", "train"],
    ["replay"],
    ["dashboard"],
    ["topics", "list"],
    ["alerts"],
    ["score"],
    ["models", "list"],
)


@dataclass
class SecuredRun:
    """What the run produced, for the tests to check."""

    settings: Settings
    statements: list[str]  # event ids of the replayed statements
    customer: str
    scores: list = field(default_factory=list)
    alerts: list = field(default_factory=list)
    dead_letters: list = field(default_factory=list)
    versions: list[str] = field(default_factory=list)  # credit versions after the trainer ran
    metrics: dict[str, tuple[int, str]] = field(default_factory=dict)  # auth -> status, body
    dashboard: dict[str, tuple[int, str]] = field(default_factory=dict)  # request -> status, body
    commands: dict[str, tuple[int, str]] = field(default_factory=dict)  # argv -> exit, output
    outputs: dict[str, str] = field(default_factory=dict)  # every text a person could see


def _get(url: str, authorization: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": authorization} if authorization else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def _basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"ops:{password}".encode()).decode()


def _wait(condition, timeout_s: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process exited with {process.returncode}")
        time.sleep(0.5)
    pytest.fail(f"{what} within {timeout_s:.0f} s")


def _run_settings(secured: SecuredServices, home: Path) -> Settings:
    base, tag = secured.settings, uuid.uuid4().hex[:8]
    names = ("events", "dead_letters", "outcomes", "scores", "alerts", "model_updates")
    topics = {name: f"sec-{name}-{tag}" for name in (*names, "score_requests")}
    return Settings(
        kafka={**base.kafka.model_dump(), "group_id": f"sec-{tag}", "topics": topics},
        redis={**base.redis.model_dump(), "key_prefix": f"sec-{tag}", "window": WINDOW},
        scoring={
            "device": "cpu",
            "metrics_port": deploy.free_port_block(1),
            "metrics_token": METRICS_TOKEN,
            "alert_threshold": 0.0,  # random weights: every customer alerts once
            "reasons": 0,
        },
        model={"dir": home / "models"},
        training={
            "metrics_port": deploy.free_port_block(1),
            "min_new_labels": 1,
            "retrain_every_labels": 1,
            "fine_tune_epochs": 1,
        },
        dashboard={"token": DASHBOARD_TOKEN},
    )


def _env(settings: Settings) -> dict[str, str]:
    s, t = settings.scoring, settings.training
    return settings_env(settings) | {
        "PYTHONUNBUFFERED": "1",
        "RISK_MODEL__DIR": str(settings.model.dir),
        "RISK_SCORING__ALERT_THRESHOLD": str(s.alert_threshold),
        "RISK_SCORING__REASONS": str(s.reasons),
        "RISK_TRAINING__METRICS_PORT": str(t.metrics_port),
        "RISK_TRAINING__MIN_NEW_LABELS": str(t.min_new_labels),
        "RISK_TRAINING__RETRAIN_EVERY_LABELS": str(t.retrain_every_labels),
        "RISK_TRAINING__FINE_TUNE_EPOCHS": str(t.fine_tune_epochs),
    }


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            crmrisk_command(*args), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def secured_run(secured_services, credit_checkpoint, tmp_path_factory) -> SecuredRun:
    home = tmp_path_factory.mktemp("secured-run")
    settings = _run_settings(secured_services, home)
    env = _env(settings)
    k, s = settings.kafka, settings.scoring
    security = security_options(settings)
    records = load_records("credit", ROOT / "data", settings.training.seed, ["test"])[:CUSTOMERS]
    statements = [e.event_id for e in dataset_events(records, "credit") if e.kind != "profile"]
    run = SecuredRun(settings, statements, records[0].customer_id)
    runner = CliRunner()

    def command(*args: str) -> None:
        result = runner.invoke(app, list(args), env=env, terminal_width=200)
        run.commands[" ".join(args)] = (result.exit_code, result.output)
        run.outputs[f"crmrisk {' '.join(args)}"] = result.output

    # kafka-python's admin over SASL_SSL; then the model goes live (Redis over TLS, producer).
    create_topics(k, partitions=2)
    command("models", "import", str(credit_checkpoint), "--promote")
    assert run.commands[f"models import {credit_checkpoint} --promote"][0] == 0, run.outputs

    worker_metrics = f"http://127.0.0.1:{s.metrics_port}"
    dashboard_port = deploy.free_port_block(1)
    page = serve_in_thread(
        settings, ["credit"], "127.0.0.1", dashboard_port,
        from_url(f"{worker_metrics}/metrics", METRICS_TOKEN), {"credit": credit_checkpoint},
    )  # fmt: skip
    logs = {
        "worker": home / "worker.log",
        "trainer": home / "trainer.log",
        "replay": home / "replay.log",
    }
    worker = _start(["--verbose", "worker", "ingest", "--follow-pointer"], env, logs["worker"])
    trainer = _start(["--verbose", "worker", "train"], env, logs["trainer"])
    try:
        bearer = f"Bearer {METRICS_TOKEN}"
        _wait(
            lambda: _get(f"{worker_metrics}/health", bearer)[0] == 200,
            180, "the ingest worker's /health", worker,
        )  # fmt: skip
        replay = _start(
            ["replay", "--domain", "credit", "--split", "test", "--limit", str(CUSTOMERS),
             "--rate", "0"],
            env, logs["replay"],
        )  # fmt: skip
        assert replay.wait(180) == 0, logs["replay"].read_text()
        producer = KafkaProducer(**k.client_config(), acks="all")
        producer.send(k.topics.events, key=b"c-bad", value=b"{not json").get(timeout=30)
        producer.close()

        run.scores = read_topic(
            k.bootstrap_servers, k.topics.scores,
            until=lambda got: len(got) >= len(statements), timeout_s=120, security=security,
        )  # fmt: skip
        run.dead_letters = read_topic(
            k.bootstrap_servers, k.topics.dead_letters,
            until=lambda got: len(got) >= 1, timeout_s=60, security=security,
        )  # fmt: skip
        for name, authorization in {
            "none": None,
            "bearer": bearer,
            "basic": _basic(METRICS_TOKEN),
            "wrong": f"Bearer {METRICS_TOKEN}x",
        }.items():
            run.metrics[name] = _get(f"{worker_metrics}/metrics", authorization)
        run.metrics["health without token"] = _get(f"{worker_metrics}/health")

        api = f"http://127.0.0.1:{dashboard_port}/api"
        view = f"{api}/customer/credit/{run.customer}"
        run.dashboard["customer, no token"] = _get(view)
        run.dashboard["customer"] = _wait(
            lambda: (got := _get(view, f"Bearer {DASHBOARD_TOKEN}"))[0] == 200
            and json.loads(got[1])["history"]
            and got,
            30, "the customer in the dashboard",
        )  # fmt: skip
        run.dashboard["summary"] = _get(f"{api}/summary", _basic(DASHBOARD_TOKEN))

        registry = ModelRegistry(settings.model.dir)
        trainer_health = f"http://127.0.0.1:{settings.training.metrics_port}/health"
        _wait(lambda: _get(trainer_health, bearer)[0] == 200, 60, "the trainer's /health", trainer)
        _wait(lambda: len(registry.list("credit")) >= 2, 240, "a refresh by the trainer", trainer)
        run.versions = [v.version for v in registry.list("credit")]
        run.alerts = read_topic(
            k.bootstrap_servers, k.topics.alerts,
            until=lambda got: len(got) >= CUSTOMERS, timeout_s=30, security=security,
        )  # fmt: skip
    finally:
        page.stop()
        _stop(worker)
        _stop(trainer)
    run.outputs.update({f"{name} log": path.read_text() for name, path in logs.items()})

    command("topics", "list")
    command("models", "list")
    command("score", run.customer)
    command("alerts", "--from-beginning", "--limit", "3")
    launcher = secured_services.launcher
    env |= {
        "RISK_SERVICES__HOME": str(launcher.home),
        "RISK_SERVICES__KAFKA_PORT": str(launcher.kafka.port),
        "RISK_SERVICES__KAFKA_CONTROLLER_PORT": str(launcher.kafka.controller_port),
        "RISK_SERVICES__REDIS_PORT": str(launcher.redis.port),
    }
    command("status")
    for args in HELP_PAGES:
        command(*args, "--help")
    return run


def test_secured__crmrisk_up_starts_what_the_settings_describe(secured_services):
    shown = secured_services.up_output
    assert "SASL_SSL://127.0.0.1:" in shown and "rediss://127.0.0.1:" in shown
    assert shown.count("yes") == 2  # both answer the settings' users, over TLS
    assert "must trust" not in shown  # the settings already trust the launcher's CA
    assert secured_services.ca_file.is_file()


def test_secured__ingest_worker_scores_every_replayed_event_and_dead_letters_bad_input(
    secured_run,
):
    scored = [RiskScore.model_validate_json(r.value) for r in secured_run.scores]
    assert sorted(s.event_id for s in scored) == sorted(secured_run.statements)
    assert len({json.loads(r.value)["customer_id"] for r in secured_run.alerts}) == CUSTOMERS
    (dead,) = secured_run.dead_letters
    assert json.loads(dead.value)["reason"] == "invalid_json"


def test_secured__trainer_reads_the_topics_and_publishes_a_refresh(secured_run):
    assert secured_run.versions[:2] == ["v0001", "v0002"]


def test_secured__metrics_answer_only_with_the_token(secured_run):
    m = secured_run.metrics
    assert m["none"][0] == 401 and m["wrong"][0] == 401 and m["health without token"][0] == 401
    assert "crmrisk_events_in" not in m["none"][1]
    for authorized in ("bearer", "basic"):
        status, body = m[authorized]
        assert status == 200 and "crmrisk_events_in_total" in body


def test_secured__dashboard_reads_kafka_redis_and_the_worker_metrics_with_tokens(secured_run):
    d = secured_run.dashboard
    assert d["customer, no token"][0] == 401
    status, body = d["customer"]
    customer = json.loads(body)
    assert status == 200 and customer["latest"]["customer_id"] == secured_run.customer
    assert customer["history"]  # scores read from Kafka
    status, body = d["summary"]
    # The worker's counters, read from its /metrics with the metrics token.
    assert status == 200 and json.loads(body)["worker"]["crmrisk_events_in"] > 0


def test_secured__read_only_commands(secured_run):
    c = secured_run.commands
    assert all(code == 0 for code, _ in c.values()), {a: o for a, (code, o) in c.items() if code}
    topics = secured_run.settings.kafka.topics
    listing = c["topics list"][1]
    for name in (topics.events, topics.dead_letters, topics.score_requests):
        assert f"{name:24s}   2 partitions" in listing
    rows = c["models list"][1].splitlines()
    listed = [found[0] for line in rows if (found := re.findall(r"\bv\d{4}\b", line))]
    assert listed[:2] == ["v0001", "v0002"]  # each row's first version is its own
    assert secured_run.customer in c["score " + secured_run.customer][1]
    assert c["alerts --from-beginning --limit 3"][1].count("ALERT") == 3
    status = c["status"][1]
    assert "SASL_SSL://127.0.0.1:" in status and "rediss://127.0.0.1:" in status
    assert status.count("yes") == 2


def test_secured__no_password_or_token_in_any_output_dead_letter_or_service_file(
    secured_run, secured_services
):
    used = {
        "kafka password": secured_services.kafka_password,
        "redis password": secured_services.redis_password,
        "metrics token": METRICS_TOKEN,
        "dashboard token": DASHBOARD_TOKEN,
    }
    texts = dict(secured_run.outputs) | {"crmrisk up": secured_services.up_output}
    texts |= {f"dead letter {i}": r.value.decode() for i, r in enumerate(secured_run.dead_letters)}
    files = [p for p in secured_services.launcher.home.rglob("*") if p.is_file()]
    texts |= {str(p): p.read_bytes().decode(errors="replace") for p in files}
    assert " DEBUG " in texts["worker log"]  # --verbose: everything the worker logs is here
    assert len(texts) > len(HELP_PAGES) + 10  # the logs, outputs and files were all read
    leaks = [(what, name) for name, t in texts.items() for what, v in used.items() if v in t]
    assert leaks == []


# -- refused at start: one clear line, exit code 2, never a retry loop ------------------------


def _refused(secured: SecuredServices, **changes: dict) -> dict[str, str]:
    k = secured.settings.kafka.model_copy(update=changes.get("kafka", {}))
    r = secured.settings.redis.model_copy(update=changes.get("redis", {}))
    return settings_env(secured.settings.model_copy(update={"kafka": k, "redis": r}))


def test_secured__refused_login_or_untrusted_certificate_is_one_line_and_exit_2(
    secured_services, tmp_path
):
    wrong = f"wrong-pw-{secrets.token_hex(8)}"
    cases = {
        "kafka password": (
            ["worker", "ingest"],
            _refused(secured_services, kafka={"sasl_password": wrong}),
            "Kafka refused the login of user 'crmrisk-app'",
        ),
        "kafka certificate": (
            ["replay", "--limit", "1"],
            _refused(secured_services, kafka={"ssl_cafile": None}),  # the system's CAs only
            "certificate verify failed",
        ),
        "redis password": (
            ["worker", "train"],
            _refused(secured_services, redis={"password": wrong}),
            "Redis refused the login",
        ),
        "redis certificate": (
            ["worker", "ingest"],
            _refused(secured_services, redis={"ssl_ca_certs": Path(certifi.where())}),
            "Redis's TLS certificate is not trusted",
        ),
    }
    started = time.monotonic()
    # Together: each pays a Python start-up of seconds; none may wait for a service for long.
    running = {
        name: subprocess.Popen(
            crmrisk_command(*args), cwd=ROOT, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for name, (args, env, _) in cases.items()
    }  # fmt: skip
    finished = {name: process.communicate(timeout=90) for name, process in running.items()}
    assert time.monotonic() - started < 90
    for name, (out, err) in finished.items():
        lines = [line for line in (out + err).splitlines() if line.strip()]
        assert running[name].returncode == 2, (name, out, err)
        assert len(lines) == 1 and lines[0].startswith("Error:"), (name, lines)
        assert cases[name][2] in lines[0], (name, lines[0])
        for secret in (wrong, secured_services.kafka_password, secured_services.redis_password):
            assert secret not in out + err, name
