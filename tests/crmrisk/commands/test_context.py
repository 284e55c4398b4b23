"""One ``Settings`` per ``crmrisk`` invocation, read from the environment once."""

from __future__ import annotations

import ast
from pathlib import Path

import click

from crmrisk.commands import context
from crmrisk.commands.context import current_settings

APP = Path(__file__).resolve().parents[3] / "crmrisk"


def test_one_invocation_reads_the_environment_once(monkeypatch):
    reads = []

    class Counting(context.Settings):
        def __init__(self, **values):
            reads.append(1)
            super().__init__(**values)

    monkeypatch.setattr(context, "Settings", Counting)
    monkeypatch.setenv("RISK_REDIS__URL", "redis://first:6379/0")
    with (
        click.Context(click.Command("crmrisk")) as root,
        click.Context(click.Command("x"), parent=root),
    ):
        first = current_settings()
        monkeypatch.setenv("RISK_REDIS__URL", "redis://second:6379/0")
        assert current_settings() is first  # the helpers of one command share it
    assert first.redis.url == "redis://first:6379/0"
    assert len(reads) == 1
    assert current_settings().redis.url == "redis://second:6379/0"  # a new invocation reads anew


def test_no_command_reads_the_environment_itself():
    """Every command asks ``current_settings``; a bare ``Settings()`` would be a second read."""
    bare = []
    for path in sorted(APP.glob("*.py")) + sorted((APP / "commands").glob("*.py")):
        if path.name == "context.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            called = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            if called and node.func.id == "Settings" and not node.args and not node.keywords:
                bare.append(f"{path.name}:{node.lineno}")
    assert bare == []
