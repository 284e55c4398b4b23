from benchmarks.tables.report import bar_verdicts, render_markdown, write_report


def _stat(mean, std=0.01, n=5):
    return {"mean": mean, "std": std, "n": n}


def _results():
    quality = {m: _stat(v) for m, v in (("auc", 0.775), ("accuracy", 0.80), ("f1", 0.5))}
    return {
        "config": {
            "mode": "full",
            "model": "ours",
            "seeds": [0, 1, 2, 3, 4],
            "epochs": 15,
            "ablation_epochs": 15,
            "learning_rate": 0.003,
            "batch_size": 512,
            "patience": 3,
            "window": 32,
            "ablation_domains": ["telco"],
        },
        "summary": {
            "1": {
                "credit": {"ours": quality, "lightgbm": quality},
                "telco": {"ours": {"auc": _stat(0.86), "accuracy": _stat(0.90)}},
            },
            "quantiles": {
                "retail": {
                    "ours": {
                        "coverage": _stat(0.70),
                        "pinball": _stat(150.0),
                        "crossing_rate": _stat(0.0),
                    }
                }
            },
        },
        "efficiency": [
            {
                "model": "ours",
                "table": "2",
                "protocol": "credit",
                "parameters": 88_000,
                "flops_per_customer": 600_000,
                "latency_p50_ms": 1.0,
                "latency_p99_ms": 7.5,
                "throughput_per_s": 30_000.0,
                "train_seconds": 50.0,
                "train_protocol": "credit",
                "train_runs": 5,
            }
        ],
        "curves": {
            "credit": {
                "ours": {
                    "roc": {"fpr": [0, 0.5, 1], "tpr": [0, 0.8, 1], "auc": 0.65},
                    "calibration": {
                        "mean_probability": [0.1, 0.5],
                        "observed_rate": [0.12, 0.4],
                        "count": [10, 5],
                        "ece": 0.05,
                    },
                }
            }
        },
    }


def test_bar_verdicts__says_which_bar_is_missed_and_by_how_much():
    verdicts = {v["bar"]: v for v in bar_verdicts(_results(), "ours")}
    credit = verdicts["credit test AUC >= 0.79"]
    assert not credit["met"] and abs(credit["gap"] + 0.015) < 1e-9
    assert verdicts["telco test AUC >= 0.85"]["met"]
    coverage = verdicts["retail q10-q90 coverage 80% ± 3 pts"]
    assert not coverage["met"] and abs(coverage["gap"] + 0.07) < 1e-9
    assert verdicts["retail mean pinball < 200"]["met"]
    assert not verdicts["single-customer p99 < 5 ms (CPU)"]["met"]
    assert verdicts["batched >= 20k customers/s (CPU)"]["met"]
    assert verdicts["credit training < 120 s (mean over seeds)"]["met"]


def test_render_markdown__flags_leakage_and_quotes_the_paper():
    text = render_markdown(_results(), plots={})
    assert "**missed** by 0.015" in text
    assert "flagged: telco/ours accuracy 0.900" in text  # above telco's 0.82 leakage line
    assert "*paper: QRCNN-LSTM-cross (claimed)*" in text
    assert "0.775 ± 0.010" in text


def test_write_report__writes_markdown_and_plots(tmp_path):
    path = write_report(_results(), tmp_path, stem="r")
    assert path == tmp_path / "r.md"
    assert "![ROC credit](r_credit_roc.png)" in path.read_text()
    assert (tmp_path / "r_credit_roc.png").stat().st_size > 1000
    assert (tmp_path / "r_credit_calibration.png").stat().st_size > 1000
