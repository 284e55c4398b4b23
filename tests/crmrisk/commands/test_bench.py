"""``crmrisk bench``: hands its arguments to the checkout's benchmarks in a child process."""

from __future__ import annotations

from typer.testing import CliRunner

from crmrisk.cli import app
from crmrisk.commands import bench

runner = CliRunner()


def test_tables_forwards_help_to_the_benchmark_module() -> None:
    result = runner.invoke(app, ["bench", "tables", "--help"])
    # The child's own help is printed to the real stdout; its exit status comes back.
    assert result.exit_code == 0


def test_tables_forwards_a_bad_option_as_the_benchmarks_usage_error() -> None:
    result = runner.invoke(app, ["bench", "tables", "--no-such-option"])
    assert result.exit_code == 2


def test_outside_a_checkout_it_says_where_the_benchmarks_are(monkeypatch) -> None:
    monkeypatch.setattr(bench, "_checkout", lambda: None)
    result = runner.invoke(app, ["bench", "tables", "--quick"])
    assert result.exit_code == 2
    assert "source checkout" in result.output
