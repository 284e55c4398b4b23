"""The quick benchmark path, end to end on real data (telco, subsampled), plus its pieces."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.tables.experiments import PROTOCOLS, bench_config, run_benchmark, summarise
from crmrisk.cli import app

DATA = Path(__file__).resolve().parents[2] / "data"


def _config(**kw):
    base = dict(
        quick=True,
        model="qrcnn-lstm-cross",
        batch_size=128,
        learning_rate=3e-3,
        patience=2,
        window=32,
        threads=1,
    )
    return bench_config(**{**base, **kw})


def test_bench_config__quick_is_one_seed_few_epochs_subsampled():
    config = _config()
    assert config.seeds == (0,)
    assert config.epochs <= 2 and config.max_train_rows
    assert config.protocols == tuple(PROTOCOLS)


def test_bench_config__bank_expands_and_unknown_protocol_is_refused():
    expanded = ("bank_time", "bank_random", "bank_duration")
    assert _config(protocols=["bank"]).protocols == expanded
    with pytest.raises(ValueError, match="unknown protocol"):
        _config(protocols=["mortgage"])


def test_summarise__mean_and_std_over_seeds():
    records = [
        {"table": "1", "protocol": "x", "model": "m", "test": {"auc": a}, "train_seconds": 1.0}
        for a in (0.7, 0.8, 0.9)
    ]
    auc = summarise(records)["1"]["x"]["m"]["auc"]
    assert auc["mean"] == pytest.approx(0.8)
    assert auc["std"] == pytest.approx(np.std([0.7, 0.8, 0.9], ddof=1))
    assert auc["n"] == 3


def test_run_benchmark__quick_end_to_end(tmp_path, monkeypatch):
    config = _config(protocols=["telco"], max_train_rows=150)
    report = run_benchmark(config, DATA, tmp_path)

    results = json.loads((tmp_path / "tables_quick.json").read_text())
    keys = {(r["table"], r["model"]) for r in results["records"]}
    for model in ("qrcnn-lstm-cross", "cnn", "lstm", "logistic_regression", "lightgbm"):
        assert ("1", model) in keys
    assert ("3", "tcn-lstm-cross") in keys and ("4", "qrcnn-lstm-dynamic") in keys
    for r in results["records"]:
        # Thresholds come from validation and are carried to test unchanged.
        assert r["test"]["threshold"] == r["val"]["threshold"]
        assert 0.0 <= r["test"]["auc"] <= 1.0
    ours = next(e for e in results["efficiency"] if e["table"] == "2")
    assert ours["parameters"] > 0 and ours["flops_per_customer"] > 0
    assert ours["throughput_per_s"] > 0
    # Ours tuned with the tuned LightGBM's budget: its own run (not ours reused), the trials'
    # seconds counted, the chosen setting kept; no efficiency row (its widths vary by seed).
    tuned = next(r for r in results["records"] if r["model"] == "qrcnn-lstm-cross_tuned")
    assert tuned["tuning"]["trials"] == config.tuning_trials
    assert tuned["train_seconds"] >= tuned["tuning"]["seconds"] > 0
    assert {"width", "dropout", "head_members"} <= set(tuned["tuning"]["params"])
    assert tuned["hyperparameters"]["head_members"] == tuned["tuning"]["params"]["head_members"]
    assert [t["protocol"] for t in results["tuned_configurations"]] == ["telco"]
    assert all("tuned" not in e["model"] for e in results["efficiency"])

    text = report.read_text()
    assert report.name == "report_quick.md"
    for heading in ("Table 1", "Table 2", "Table 3", "Table 4", "Bars from ANCHORS.md",
                    "Tuned configurations", "Training seconds per dataset"):  # fmt: skip
        assert heading in text
    assert "telco test AUC >= 0.85 (tuned)" in text
    assert (tmp_path / "report_quick_telco_roc.png").stat().st_size > 1000
    assert (tmp_path / "report_quick_telco_calibration.png").stat().st_size > 1000

    # Through the CLI: --report-only trains nothing new and rewrites the report.
    before = (tmp_path / "runs_quick.jsonl").read_text()
    report.unlink()
    monkeypatch.setenv("RISK_TRAINING__DATA_DIR", str(DATA))
    args = ["bench", "tables", "--quick", "--domains", "telco", "--report-only"]
    result = CliRunner().invoke(app, [*args, "--results-dir", str(tmp_path), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs_quick.jsonl").read_text() == before
    assert report.exists()


def test_read_runs__later_files_win_and_redo_patterns_are_left_out(tmp_path):
    from benchmarks.tables.experiments import _read_runs

    first, second = tmp_path / "runs_a.jsonl", tmp_path / "runs_b.jsonl"
    first.write_text(
        json.dumps({"key": "1|retail|0|ours", "v": 1})
        + "\n"
        + json.dumps({"key": "1|credit|0|ours", "v": 1})
        + "\n"
    )
    second.write_text(json.dumps({"key": "1|credit|0|ours", "v": 2}) + "\n")
    done = _read_runs([first, second])
    assert done["1|credit|0|ours"]["v"] == 2
    assert set(_read_runs([first, second], redo=["1|retail|*|ours"])) == {"1|credit|0|ours"}


def test_runs_files__the_main_file_of_resumed_and_redone_runs_wins_over_shards(tmp_path):
    from benchmarks.tables.experiments import _read_runs, runs_files

    (tmp_path / "runs_full_a.jsonl").write_text(json.dumps({"key": "k", "v": "shard"}) + "\n")
    (tmp_path / "runs_full.jsonl").write_text(json.dumps({"key": "k", "v": "redone"}) + "\n")
    (tmp_path / "runs_quick.jsonl").write_text(json.dumps({"key": "k", "v": "quick"}) + "\n")
    files = runs_files(tmp_path, "full")
    assert [p.name for p in files] == ["runs_full_a.jsonl", "runs_full.jsonl"]
    assert _read_runs(files)["k"]["v"] == "redone"
