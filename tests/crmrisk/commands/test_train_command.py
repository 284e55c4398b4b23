"""``crmrisk train``: real (tiny) training runs through the CLI, published to the registry."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from crmrisk.cli import app
from crmrisk.lifecycle import load_checkpoint

DATA = Path(__file__).resolve().parents[3] / "data"


def test_train__publishes_a_registry_version_that_reloads(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_TRAINING__DATA_DIR", str(DATA))
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--domain",
            "telco",
            "--epochs",
            "1",
            "--max-rows",
            "150",
            "--out",
            str(tmp_path),
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "test AUC" in result.output

    (saved,) = list((tmp_path / "versions" / "telco").glob("v*"))
    model, manifest = load_checkpoint(saved)
    assert manifest["domain"] == "telco" and manifest["version"] == saved.name == "v0001"
    assert "published telco v0001" in result.output
    assert manifest["variant"] == "qrcnn-lstm-cross"
    assert manifest["encoder"]["domain"] == "telco"
    test = manifest["metrics"]["test"]
    assert test["threshold"] == manifest["metrics"]["val"]["threshold"]
    assert 0.0 <= test["auc"] <= 1.0
    assert manifest["data_window"]["seed"] == 0
    # The reloaded model scores.
    dims = manifest["hyperparameters"]
    out = model(
        torch.zeros(2, 3, dims["event_dim"]),
        torch.tensor([[True, True, False], [True, False, False]]),
        torch.zeros(2, dims["profile_dim"]),
    )
    assert np.isfinite(out.probability.detach().numpy()).all()
    json.dumps(manifest)  # plain JSON


def test_train__unknown_domain_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_TRAINING__DATA_DIR", str(DATA))
    result = CliRunner().invoke(app, ["train", "--domain", "mortgage", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "mortgage" in str(result.exception) + result.output


def test_train__a_spec_file_gives_a_new_domain_without_code(tmp_path):
    """A CSV of subscription events and a YAML spec beside it: trained, saved, reloadable."""
    rng = np.random.default_rng(0)
    rows = ["user,ts,amount,channel,plan,churned"]
    for c in range(240):
        churn = rng.random() < 0.3
        for k in range(int(rng.integers(2, 8))):
            amount = rng.lognormal(2 if churn else 3, 0.5)
            channel = rng.choice(["web", "app"])
            day = 1 + k * 3
            rows.append(f"u{c},2024-03-{day:02d}T10:00:00Z,{amount:.2f},{channel},p{c % 2},{churn}")
    (tmp_path / "subs.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "subs.yaml").write_text(
        "domain: subscriptions\nsource: subs.csv\ncustomer_id: user\ntime: ts\n"
        "label: churned\npositive: 'True'\nprofile: {plan: categorical}\n"
        "events: {amount: numeric, channel: categorical}\n"
    )
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--spec",
            str(tmp_path / "subs.yaml"),
            "--epochs",
            "40",
            "--out",
            str(tmp_path / "models"),
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    (saved,) = list((tmp_path / "models" / "versions" / "subscriptions").glob("v*"))
    _, manifest = load_checkpoint(saved)
    assert manifest["domain"] == "subscriptions"
    assert manifest["encoder"]["domain"] == "subscriptions"
    assert manifest["metrics"]["test"]["auc"] > 0.6  # spend separates churners: learnable


def test_train__needs_a_domain_or_a_spec(tmp_path):
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--domain or --spec" in result.output


def test_train__promote_makes_the_new_version_live_and_announces_it(
    tmp_path, monkeypatch, settings, redis_client, redis_prefix, new_topic
):
    from kafka import KafkaConsumer, TopicPartition

    from crmrisk.lifecycle import ModelPointer

    updates = new_topic(partitions=1, prefix="it-model-updates")
    monkeypatch.setenv("RISK_TRAINING__DATA_DIR", str(DATA))
    monkeypatch.setenv("RISK_KAFKA__BOOTSTRAP_SERVERS", settings.kafka.bootstrap_servers)
    monkeypatch.setenv("RISK_REDIS__URL", settings.redis.url)
    monkeypatch.setenv("RISK_REDIS__KEY_PREFIX", redis_prefix.rstrip(":"))
    monkeypatch.setenv("RISK_KAFKA__TOPICS__MODEL_UPDATES", updates)
    args = ["train", "--domain", "telco", "--epochs", "1", "--max-rows", "150", "--threads", "1"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path), "--promote"])
    assert result.exit_code == 0, result.output
    pointer = ModelPointer(redis_client, redis_prefix.rstrip(":"), 10, tmp_path / "live")
    assert pointer.current("telco") == "v0001"
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers.split(","))
    consumer.assign([TopicPartition(updates, 0)])
    consumer.seek_to_beginning()
    messages = [m for batch in consumer.poll(timeout_ms=5000).values() for m in batch]
    consumer.close()
    assert [json.loads(m.value)["version"] for m in messages] == ["v0001"]


def test_train__device_cpu_trains_there_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_TRAINING__DATA_DIR", str(DATA))
    args = ["train", "--domain", "telco", "--epochs", "1", "--max-rows", "100"]
    result = CliRunner().invoke(
        app, [*args, "--out", str(tmp_path), "--threads", "1", "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    assert "training on cpu" in result.output
    (saved,) = list((tmp_path / "versions" / "telco").glob("v*"))
    assert load_checkpoint(saved)[1]["training"]["device"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_train__device_cuda_without_a_gpu_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_TRAINING__DATA_DIR", str(DATA))
    result = CliRunner().invoke(
        app, ["train", "--domain", "telco", "--out", str(tmp_path), "--device", "cuda"]
    )
    assert result.exit_code == 2, result.output
    assert "--device cuda" in result.output and "no CUDA device" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "versions").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train__device_cuda_trains_on_the_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_TRAINING__DATA_DIR", str(DATA))
    args = ["train", "--domain", "telco", "--epochs", "1", "--max-rows", "150"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path), "--device", "cuda"])
    assert result.exit_code == 0, result.output
    assert "training on cuda" in result.output


def test_train_compare__prints_ours_beside_the_baselines_on_the_same_split(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_TRAINING__DATA_DIR", str(DATA))
    result = CliRunner().invoke(
        app,
        ["train", "--domain", "telco", "--epochs", "1", "--max-rows", "200", "--out",
         str(tmp_path), "--threads", "1", "--compare", "--compare-trials", "2"],
        terminal_width=120,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    names = ("ours (qrcnn-lstm-cross)", "logistic_regression", "lightgbm_tuned")
    rows = {name: next(line for line in lines if name in line and "│" in line) for name in names}
    (saved,) = list((tmp_path / "versions" / "telco").glob("v*"))
    _, manifest = load_checkpoint(saved)
    ours_auc = float(rows["ours (qrcnn-lstm-cross)"].split("│")[2])
    assert ours_auc == pytest.approx(manifest["metrics"]["test"]["auc"], abs=5e-5)
    for name, line in rows.items():
        auc, pr_auc, ece = (float(cell) for cell in line.split("│")[2:5])
        assert 0.0 <= ece <= 1.0 and 0.0 <= pr_auc <= 1.0 and 0.0 <= auc <= 1.0, name
    assert sum("*" in line for line in rows.values()) >= 1  # the best AUC is marked


def test_train_compare__without_the_bench_extra_is_one_clear_line(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "lightgbm" else real(name, *a)
    )
    result = CliRunner().invoke(
        app, ["train", "--domain", "telco", "--out", str(tmp_path), "--compare"]
    )
    assert result.exit_code == 2
    assert "pip install 'crmrisk[bench]'" in result.output
    assert "nothing was trained" in result.output
    assert not (tmp_path / "versions").exists()


def test_train_tune__tunes_on_validation_and_keeps_the_choice_in_the_manifest(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("RISK_TRAINING__DATA_DIR", str(DATA))
    result = CliRunner().invoke(
        app,
        ["train", "--domain", "telco", "--epochs", "1", "--max-rows", "150", "--out",
         str(tmp_path), "--threads", "1", "--tune", "2", "--compare", "--compare-trials", "1"],
        terminal_width=120,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "tuned (2 trials, best validation AUC" in result.output
    (saved,) = list((tmp_path / "versions" / "telco").glob("v*"))
    _, manifest = load_checkpoint(saved)
    tuning = manifest["tuning"]
    assert len(tuning["trials"]) == 2
    assert tuning["val_auc"] == max(t["val_auc"] for t in tuning["trials"])
    assert manifest["training"]["learning_rate"] == tuning["learning_rate"]
    for name, value in tuning["overrides"].items():  # the final model is the chosen one
        assert manifest["hyperparameters"][name] == value
    assert manifest["hyperparameters"]["members"] == 3  # still cross-fitted
    # --compare counts the tuning in ours' training seconds, as LightGBM's trials count in its.
    row = next(
        line for line in result.output.splitlines() if "ours (qrcnn-lstm-cross, tuned)" in line
    )
    tuning_seconds = sum(t["seconds"] for t in tuning["trials"])
    assert float(row.split("│")[5]) >= tuning_seconds + manifest["metrics"]["fit_seconds"] - 0.1


def test_train__ema_decay_from_the_environment_reaches_the_fit(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_TRAINING__DATA_DIR", str(DATA))
    monkeypatch.setenv("RISK_TRAINING__EMA_DECAY", "0.9")
    result = CliRunner().invoke(
        app,
        ["train", "--domain", "telco", "--epochs", "1", "--max-rows", "150", "--out",
         str(tmp_path), "--threads", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (saved,) = list((tmp_path / "versions" / "telco").glob("v*"))
    _, manifest = load_checkpoint(saved)
    assert manifest["training"]["ema_decay"] == 0.9


def test_train_spec__a_snapshot_table_gets_tuning_and_the_comparison(tmp_path):
    """One labelled row per customer, no history: the path most CRM tables take."""
    rng = np.random.default_rng(0)
    rows = ["account_id,plan,monthly,tenure,churned"]
    for i in range(400):
        plan, monthly, tenure = (
            rng.choice(["basic", "pro"]),
            rng.uniform(5, 60),
            rng.integers(1, 72),
        )
        risk = 0.03 * monthly - 0.04 * tenure + (0.8 if plan == "basic" else 0.0)
        churned = "yes" if risk + rng.normal(0, 0.5) > 0 else "no"
        rows.append(f"a{i},{plan},{monthly:.2f},{tenure},{churned}")
    (tmp_path / "accounts.csv").write_text("\n".join(rows) + "\n")
    runner = CliRunner()
    spec = tmp_path / "accounts.yaml"
    inferred = runner.invoke(
        app, ["spec", "infer", str(tmp_path / "accounts.csv"), "-o", str(spec)]
    )
    assert inferred.exit_code == 0, inferred.output
    result = runner.invoke(
        app,
        ["train", "--spec", str(spec), "--epochs", "2", "--out", str(tmp_path / "models"),
         "--threads", "1", "--tune", "2", "--compare", "--compare-trials", "2"],
        terminal_width=120,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "tuned (2 trials" in result.output
    rows = [line for line in result.output.splitlines() if "│" in line]
    names = ("ours (qrcnn-lstm-cross, tuned)", "logistic_regression", "lightgbm_tuned")
    assert all(any(name in row for row in rows) for name in names), result.output
    # The signal is learnable from the profile alone: every model ranks far above chance.
    aucs = [float(row.split("│")[2]) for row in rows if any(n in row for n in names)]
    assert min(aucs) > 0.7, result.output
