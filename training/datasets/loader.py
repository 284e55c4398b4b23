"""``load_domain``: one entry point for the built-in adapters and spec-driven domains."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from crmrisk.training.datasets import bank, credit, cutoff_records, generic, retail, telco
from crmrisk.training.datasets.errors import DataError
from crmrisk.training.datasets.event_log_spec import EventLogSpec
from crmrisk.training.datasets.records import DomainDataset
from crmrisk.training.datasets.spec_file import parse_spec, read_spec

__all__ = ["DOMAINS", "load_domain"]

DOMAINS: dict[str, Callable[..., DomainDataset]] = {
    "credit": credit.load,
    "telco": telco.load,
    "bank": bank.load,
    "retail": retail.load,
}
_SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def load_domain(name: str, data_dir: Path | str, seed: int = 0, **options: Any) -> DomainDataset:
    """Train/val/test records and the feature spec of one domain.

    ``name`` is a built-in domain (``credit``, ``telco``, ``bank``, ``retail``; ``options`` go
    to its ``load``, e.g. ``split="random"`` or ``include_duration=True`` for bank), or
    ``"generic"`` with ``spec=`` a ``GenericSpec`` or ``EventLogSpec``, a dict or a YAML/JSON
    path, or the name of a spec file ``<data_dir>/<name>.yaml|.yml|.json``. Errors in the spec
    or the data raise ``DataError`` (``SpecError`` for the spec) naming what to fix.
    """
    data_dir = Path(data_dir)
    if name in DOMAINS:
        return DOMAINS[name](data_dir, seed, **options)
    spec = options.pop("spec", None)
    if spec is None and name != "generic":
        found = [data_dir / f"{name}{s}" for s in _SPEC_SUFFIXES]
        spec = next((path for path in found if path.is_file()), None)
    if spec is None:
        known = ", ".join([*DOMAINS, "generic"])
        raise DataError(
            f"unknown domain {name!r}: use one of {known}, or write a spec file "
            f"{data_dir}/{name}.yaml (`crmrisk spec infer DATA.csv`)"
        )
    if options:
        raise TypeError(f"generic domains take no options besides spec, got {sorted(options)}")
    parsed = read_spec(Path(spec)) if isinstance(spec, str | Path) else parse_spec(spec)
    if isinstance(parsed, EventLogSpec):
        return cutoff_records.load(parsed, data_dir, seed)
    return generic.load(parsed, data_dir, seed)
