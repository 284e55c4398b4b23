"""The report's section on ideas measured beside the tables (benchmarks/tables/side_studies.py)."""

from __future__ import annotations

import json

from benchmarks.tables.report import render_markdown
from benchmarks.tables.side_studies import side_studies
from tests.benchmarks.test_report import _results


def _ab_file(path, arm, values, val_aucs):
    runs, summary = [], {"credit": {}}
    for value, aucs in zip(values, val_aucs, strict=True):
        runs += [{"protocol": "credit", "seed": s, arm: value, "val_auc": a}
                 for s, a in enumerate(aucs)]  # fmt: skip
        stats = {"mean": sum(aucs) / len(aucs), "std": 0.0}
        summary["credit"][str(value)] = {
            "val_auc": stats, "test_auc": stats, "test_ece": stats, "train_seconds": stats
        }  # fmt: skip
    path.write_text(json.dumps({"summary": summary, "runs": runs}))


def test_side_studies__one_row_per_idea_and_protocol_with_seeds_won(tmp_path):
    _ab_file(tmp_path / "head_ensemble.json", "head_members", [1, 8],
             [[0.70, 0.71, 0.72], [0.71, 0.70, 0.73]])  # fmt: skip
    found = side_studies(tmp_path)
    assert len(found.ab_rows) == 1 and not found.prior_rows
    row = found.ab_rows[0]
    assert row[1] == "credit" and row[2] == "1 -> 8"
    assert "2/3 seeds better" in row[3] and "+0.0033" in row[3]
    assert row[-1] in ("yes", "no")  # read from RiskModelConfig's default, not written down
    text = render_markdown(_results(), plots={}, studies=found)
    assert "## Ideas measured beside the tables" in text and "head_ensemble.json" in text


def test_side_studies__no_files_no_section(tmp_path):
    found = side_studies(tmp_path)
    assert not found.ab_rows and not found.prior_rows
    assert "beside the tables" not in render_markdown(_results(), plots={}, studies=found)
