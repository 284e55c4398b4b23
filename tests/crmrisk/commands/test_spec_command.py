"""``crmrisk spec infer`` writes a spec that ``spec check`` accepts; check reports the data."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from crmrisk.cli import app
from crmrisk.training.datasets import EventLogSpec, GenericSpec, read_spec
from crmrisk.training.datasets.synthetic_log import SPEC, order_log


def test_infer__guesses_the_roles_of_an_order_log_and_check_accepts_it(tmp_path):
    lines = order_log(150, seed=0)
    lines["note"] = [f"free text {i}" for i in range(len(lines))]
    lines.to_csv(tmp_path / "orders.csv", index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["spec", "infer", str(tmp_path / "orders.csv")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "orders.yaml").read_text()
    assert text.startswith("# Starting spec guessed from orders.csv")
    assert "#   note: ignored: text with" in text
    spec = read_spec(tmp_path / "orders.yaml")
    assert isinstance(spec, EventLogSpec)
    assert (spec.customer_id, spec.time, spec.events.group_by) == (
        "client_ref",
        "placed_at",
        "order_ref",
    )
    assert spec.events.kind.column == "state"
    assert spec.columns == {"line_value": "abs(`units`) * `unit_cost`"}
    assert spec.label.rule == "inactivity" and spec.target is not None
    again = runner.invoke(app, ["spec", "infer", str(tmp_path / "orders.csv")])
    assert again.exit_code == 2 and "--force" in again.output

    checked = runner.invoke(app, ["spec", "check", str(tmp_path / "orders.yaml")])
    assert checked.exit_code == 0, checked.output
    assert "ready for `crmrisk train --spec" in checked.output
    assert "columns ignored: note, sku" in checked.output


def test_infer__one_labelled_row_per_customer_gives_a_row_spec(tmp_path):
    rows = ["account_id,plan,monthly,churned"] + [
        f"a{i},{'pro' if i % 3 else 'basic'},{10 + i % 7},{'yes' if i % 4 == 0 else 'no'}"
        for i in range(60)
    ]
    (tmp_path / "accounts.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "spec.yaml"
    result = CliRunner().invoke(
        app, ["spec", "infer", str(tmp_path / "accounts.csv"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    spec = read_spec(out)
    assert isinstance(spec, GenericSpec)
    assert (spec.customer_id, spec.label, spec.positive) == ("account_id", "churned", "yes")
    assert spec.profile == {"plan": "categorical", "monthly": "numeric"}


def test_check__reports_rows_customers_balance_and_dropped_rows(tmp_path):
    lines = order_log(100, seed=2)
    lines.loc[lines.index[:7], "client_ref"] = None
    lines.to_csv(tmp_path / "orders.csv", index=False)
    (tmp_path / "orders.yaml").write_text(yaml.safe_dump(SPEC))
    result = CliRunner().invoke(app, ["spec", "check", str(tmp_path / "orders.yaml")])
    assert result.exit_code == 0, result.output
    assert f"rows: {len(lines):,}" in result.output
    assert "'rows_without_customer_id': 7" in result.output
    for cutoff in ("train 2023-05-01", "train 2023-07-01", "test 2023-09-15"):
        assert cutoff in result.output


def test_check__a_horizon_past_the_data_is_a_problem(tmp_path):
    order_log(100, seed=2).to_csv(tmp_path / "orders.csv", index=False)
    late = {**SPEC, "cutoffs": {**SPEC["cutoffs"], "test": "2023-12-01"}}
    (tmp_path / "orders.yaml").write_text(yaml.safe_dump(late))
    result = CliRunner().invoke(app, ["spec", "check", str(tmp_path / "orders.yaml")])
    assert result.exit_code == 2
    assert "runs past the data" in result.output and "Traceback" not in result.output
