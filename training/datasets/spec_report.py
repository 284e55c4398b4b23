"""What a spec gives on its data, without training: ``crmrisk spec check``'s report.

Rows read, events built, rows dropped by reason, columns the spec ignores, and per group of
records (each cutoff of an event-log spec; all customers of a row-label spec) the customers,
positives, positive rate, mean events and mean target. ``problems`` lists what would stop
training (a horizon past the data, one label class); a broken spec or file raises ``DataError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmrisk.training.datasets import cutoff_records, event_log, generic, generic_rows
from crmrisk.training.datasets.errors import DataError
from crmrisk.training.datasets.event_log_spec import EventLogSpec
from crmrisk.training.datasets.records import CustomerRecord
from crmrisk.training.datasets.spec_file import parse_spec

__all__ = ["SpecReport", "spec_report"]


@dataclass
class SpecReport:
    domain: str
    kind: str  # "event log" or "rows with labels"
    source: str
    rows: int
    events: int
    dropped: dict[str, int]
    ignored: list[str]
    groups: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _group(name: str, records: list[CustomerRecord]) -> dict[str, Any]:
    n = len(records)
    positives = sum(r.label for r in records)
    targets = [r.target for r in records if r.target is not None]
    return {
        "name": name,
        "customers": n,
        "positives": positives,
        "rate": positives / max(n, 1),
        "mean_events": sum(len(r.events) for r in records) / max(n, 1),
        "mean_target": sum(targets) / len(targets) if targets else None,
    }


def _one_class(group: dict[str, Any]) -> str | None:
    if group["customers"] and group["positives"] in (0, group["customers"]):
        label = "1" if group["positives"] else "0"
        return f"every customer at {group['name']} has label {label}: nothing to learn"
    if not group["customers"]:
        return f"no customers at {group['name']}"
    return None


def spec_report(document: Any, data_dir: Path) -> SpecReport:
    """The report for a spec (document, dict or parsed) on its data file."""
    spec = parse_spec(document)
    path = Path(spec.source)
    path = path if path.is_absolute() else Path(data_dir) / path
    if isinstance(spec, EventLogSpec):
        data = event_log.event_log(spec, event_log.read_log(spec, path))
        report = SpecReport(
            spec.domain,
            "event log",
            str(path),
            data.rows,
            len(data.table),
            data.dropped,
            list(data.ignored_columns),
        )
        if data.table.empty:
            report.problems.append("no usable rows")
            return report
        try:
            cutoff_records.check_cutoffs(spec, data.table["time"].max())
        except DataError as exc:
            report.problems.append(str(exc))
        train: list[CustomerRecord] = []
        for cutoff in spec.cutoffs.train:
            records = cutoff_records.build_records(spec, data, str(cutoff))
            report.groups.append(_group(f"train {cutoff}", records))
            train += records
        test = cutoff_records.build_records(spec, data, str(spec.cutoffs.test))
        report.groups.append(_group(f"test {spec.cutoffs.test}", test))
        checks = [_group("the training cutoffs", train), _group("the test cutoff", test)]
        report.problems += [p for p in map(_one_class, checks) if p]
        return report
    else:
        frame = generic_rows.read_rows(spec, path)
        records, dropped = generic.build_records(spec, frame)
        expressions = [*spec.columns.values(), *(e.when or "" for e in spec.row_events)]
        used = spec.source_columns()  # and (loosely) the columns an expression names:
        used |= {c for c in frame.columns if any(str(c) in e for e in expressions)}
        ignored = sorted(map(str, set(frame.columns) - used))
        events = sum(len(r.events) for r in records)
        report = SpecReport(
            spec.domain, "rows with labels", str(path), len(frame), events, dropped, ignored
        )
        report.groups.append(_group("all customers", records))
        report.problems += [p for p in map(_one_class, report.groups) if p]
    return report
