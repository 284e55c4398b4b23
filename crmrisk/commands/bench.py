"""``crmrisk bench ...``: runs the benchmarks of a source checkout (``python -m benchmarks.X``).

The benchmarks are reproduction code, not the runtime: they live in the repository's
``benchmarks/`` folder, outside the installed package, and need the ``bench`` extra (LightGBM,
Optuna, matplotlib). This command hands its arguments to them in a child process, so the
runtime never imports benchmark code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

__all__ = ["register"]

# What ``crmrisk bench NAME`` runs, as ``python -m MODULE``.
_BENCHMARKS = {"tables": "benchmarks.tables"}
_FORWARD = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _checkout() -> Path | None:
    """The source checkout above the installed ``crmrisk`` package, if this is one."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "benchmarks" / "tables" / "__main__.py").is_file() else None


def _forward(name: str, ctx: typer.Context) -> None:
    root = _checkout()
    if root is None:
        typer.echo(
            f"error: `crmrisk bench {name}` runs the repository's benchmarks/ folder, which an "
            "installed crmrisk does not have: run it from a source checkout.",
            err=True,
        )
        raise typer.Exit(2)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run([sys.executable, "-m", _BENCHMARKS[name], *ctx.args], cwd=root, env=env)
    raise typer.Exit(done.returncode)


bench_app = typer.Typer(help="Benchmarks of a source checkout (python -m benchmarks.<name>).")


@bench_app.command("tables", context_settings=_FORWARD, add_help_option=False)
def tables(ctx: typer.Context) -> None:
    """The paper's Tables 1-4 (python -m benchmarks.tables; --help lists its options)."""
    _forward("tables", ctx)


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command group to the ``crmrisk`` CLI."""
    app.add_typer(bench_app, name="bench")
