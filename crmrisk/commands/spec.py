"""``crmrisk spec infer DATA`` (a starting spec from a data file) and ``crmrisk spec check SPEC``
(what a spec gives on its data: rows, customers, label balance, dropped rows, ignored columns).

The guessing lives in ``training/datasets/spec_infer.py``; this module only reads, prints and
writes. ``spec_for_command`` is shared with ``train --spec`` and ``replay --spec``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from crmrisk.errors import UserError

__all__ = ["register", "spec_for_command"]

_console = Console()
app = typer.Typer(help="Write and check dataset specs (bring your own CRM data).")


def spec_for_command(path: Path) -> tuple[str, dict[str, Any]]:
    """(domain, spec document) from a spec file; a relative source is looked up next to the
    spec first (then, at load time, in the data dir)."""
    from crmrisk.training.datasets import read_spec

    parsed = read_spec(path)
    beside = path.parent / parsed.source
    if not Path(parsed.source).is_absolute() and beside.is_file():
        parsed = parsed.model_copy(update={"source": str(beside.resolve())})
    return parsed.domain, parsed.model_dump(mode="json")


@app.command("infer")
def infer(
    data: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet file.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Spec to write (default: DATA's name .yaml).")
    ] = None,
    domain: Annotated[
        str | None, typer.Option(help="Domain name (default: from the file name).")
    ] = None,
    horizon_days: Annotated[
        int, typer.Option(min=1, help="Label horizon after each cutoff, in days.")
    ] = 90,
    force: Annotated[bool, typer.Option(help="Overwrite an existing spec.")] = False,
) -> None:
    """Guess column roles in DATA and write a starting spec (with comments) to edit."""
    from crmrisk.training.datasets.spec_infer import infer_spec

    target = out or data.with_name(data.name.split(".")[0] + ".yaml")
    if target.exists() and not force:
        raise UserError(f"{target} exists: pass --force to overwrite, or --out another path")
    text, guess = infer_spec(data, domain=domain, horizon_days=horizon_days)
    target.write_text(text)
    _console.print(f"wrote {target}: {guess}")
    _console.print(f"next: edit it, then `crmrisk spec check {target}`")


@app.command("check")
def check(
    spec: Annotated[Path, typer.Argument(help="A spec file (YAML or JSON).")],
) -> None:
    """Validate SPEC against its data and report what training would get (no training)."""
    from crmrisk.commands.context import current_settings
    from crmrisk.training.datasets.spec_report import spec_report

    _, document = spec_for_command(spec)
    report = spec_report(document, current_settings().training.data_dir)
    _console.print(f"[bold]{report.domain}[/bold] ({report.kind}): {report.source}")
    _console.print(f"rows: {report.rows:,}; events: {report.events:,}; dropped: {report.dropped}")
    table = Table("records at", "customers", "positive", "rate", "mean events", "mean target")
    for row in report.groups:
        target = "-" if row["mean_target"] is None else f"{row['mean_target']:.2f}"
        table.add_row(
            row["name"],
            f"{row['customers']:,}",
            f"{row['positives']:,}",
            f"{row['rate']:.3f}",
            f"{row['mean_events']:.1f}",
            target,
        )
    _console.print(table)
    _console.print(f"columns ignored: {', '.join(report.ignored) or 'none'}")
    if report.problems:
        raise UserError("; ".join(report.problems))
    _console.print("ok: ready for `crmrisk train --spec " + str(spec) + "`")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="spec")
