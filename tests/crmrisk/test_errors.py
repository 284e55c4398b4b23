"""User mistakes at the CLI: one or two clear lines naming the fix, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from crmrisk.cli import app
from crmrisk.training.datasets.synthetic_log import SPEC, order_log


@pytest.fixture
def spec_dir(tmp_path):
    order_log(80, seed=0).to_csv(tmp_path / "orders.csv", index=False)
    return tmp_path


def _spec(directory, **changes):
    path = directory / "orders.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return path


def _check(args, *expected, env=None):
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("Error:") and len(lines[-1]) < 400, result.output
    for text in expected:
        assert text in lines[-1], lines[-1]
    return lines[-1]


def test_spec_check__missing_column_names_it(spec_dir):
    _check(["spec", "check", str(_spec(spec_dir, customer_id="customer"))], "['customer']")


def test_spec_check__bad_spec_names_the_field(spec_dir):
    _check(["spec", "check", str(_spec(spec_dir, horizon=3))], "horizon: unknown field")
    label = {"rule": "inactivity"}
    _check(["spec", "check", str(_spec(spec_dir, label=label))], "horizon_days", "Field required")
    (spec_dir / "broken.yaml").write_text("domain: [unclosed\n")
    _check(["spec", "check", str(spec_dir / "broken.yaml")], "is not valid YAML")


def test_spec_check__unreadable_data_file(spec_dir):
    (spec_dir / "bad.csv.gz").write_bytes(b"not gzip at all")
    _check(
        ["spec", "check", str(_spec(spec_dir, source="bad.csv.gz"))], "cannot read", "bad.csv.gz"
    )


def test_train__unknown_domain_and_one_label_class(spec_dir, monkeypatch):
    monkeypatch.setenv("RISK_TRAINING__DATA_DIR", str(spec_dir))
    _check(["train", "--domain", "mortgage"], "unknown domain 'mortgage'", "spec infer")
    never = {**SPEC["label"], "value": -1e9}
    _check(["train", "--spec", str(_spec(spec_dir, label=never))], "have label 0")


def test_service_not_answering__redis(monkeypatch):
    monkeypatch.setenv("RISK_REDIS__URL", "redis://127.0.0.1:1/0")
    # (the model pointer no longer needs Redis: its journal is on disk; a score does)
    _check(["score", "c-1", "--domain", "credit"], "Redis did not answer", "crmrisk up")


def test_verbose__keeps_the_traceback(spec_dir):
    """Through the real entry point: plain is one line, --verbose shows the traceback."""
    spec = str(_spec(spec_dir, customer_id="customer"))
    plain = subprocess.run(
        [sys.executable, "-m", "crmrisk", "spec", "check", spec], capture_output=True, text=True
    )
    assert plain.returncode == 2 and "Traceback" not in plain.stderr + plain.stdout
    assert plain.stderr.strip().startswith("Error:") and len(plain.stderr.splitlines()) <= 2
    loud = subprocess.run(
        [sys.executable, "-m", "crmrisk", "--verbose", "spec", "check", spec],
        capture_output=True,
        text=True,
    )
    assert loud.returncode != 0 and "Traceback" in loud.stderr


_NO_KAFKA = {"RISK_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # nothing listens on port 1
_NO_REDIS = {"RISK_REDIS__URL": "redis://127.0.0.1:1/0"}


def _timed_check(args, *expected, env):
    started = time.monotonic()
    line = _check(args, *expected, env=env)
    # the clients alone would retry for ever; the start-up probe answers in seconds
    assert time.monotonic() - started < 30, line
    return line


@pytest.mark.parametrize(
    "args",
    [["worker", "ingest", "--domain", "credit"], ["worker", "infer"], ["worker", "train"]],
    ids=lambda a: " ".join(a[:2]),
)
def test_workers__no_broker_or_no_redis_is_one_line_not_a_hang(args, kafka_bootstrap):
    _timed_check(args, "Kafka did not answer", "crmrisk up", env=_NO_KAFKA)
    env = {**_NO_REDIS, "RISK_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap}  # the real broker
    _timed_check(args, "Redis did not answer", "RISK_REDIS__URL", env=env)


def test_train_promote__services_are_asked_before_training(tmp_path, kafka_bootstrap):
    env = {**_NO_KAFKA, "RISK_MODEL__DIR": str(tmp_path / "models")}
    line = _timed_check(
        ["train", "--domain", "telco", "--promote"], "Kafka did not answer", env=env
    )
    assert "nothing was trained" in line
    env = {**env, **_NO_REDIS, "RISK_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap}
    _timed_check(["train", "--domain", "telco", "--promote"], "Redis did not answer", env=env)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("*"))


def test_invalid_settings__name_the_variable_never_the_value(monkeypatch):
    monkeypatch.setenv("RISK_DASHBOARD__TOKEN", "s3cret-short")
    line = _check(["topics", "list"], "RISK_DASHBOARD__TOKEN", "at least 16")
    assert "s3cret-short" not in line


def test_dashboard__beyond_loopback_without_a_token_is_refused_at_once():
    line = _check(["dashboard", "--host", "0.0.0.0", "--port", "1"], "beyond loopback")
    assert "RISK_DASHBOARD__TOKEN" in line
