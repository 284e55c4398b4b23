"""Spec files: YAML or JSON, read as a ``GenericSpec`` (rows carry their label) or an
``EventLogSpec`` (labels derived at cutoffs: the document has ``cutoffs``), with errors that name
the field to fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from crmrisk.training.datasets.errors import SpecError
from crmrisk.training.datasets.event_log_spec import EventLogSpec
from crmrisk.training.datasets.generic_spec import GenericSpec

__all__ = ["AnySpec", "parse_spec", "read_spec", "validation_message"]

AnySpec = GenericSpec | EventLogSpec


def validation_message(exc: ValidationError, limit: int = 3) -> str:
    """Pydantic's errors as ``field.path: message`` (the first few), one line."""
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (misspelt?)"
        parts.append(f"{where}: {message}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_spec(document: Any, origin: str = "spec") -> AnySpec:
    """A spec from a parsed document; ``SpecError`` names what is wrong."""
    if isinstance(document, GenericSpec | EventLogSpec):
        return document
    if not isinstance(document, dict):
        raise SpecError(f"{origin}: expected a mapping of fields, got {type(document).__name__}")
    kind = (
        EventLogSpec
        if "cutoffs" in document or isinstance(document.get("label"), dict)
        else (GenericSpec)
    )
    try:
        return kind.model_validate(document)
    except ValidationError as exc:
        what = "event-log spec" if kind is EventLogSpec else "spec"
        raise SpecError(f"{origin}: invalid {what}: {validation_message(exc)}") from None


def read_spec(path: Path) -> AnySpec:
    """A spec from a YAML (.yaml/.yml) or JSON file."""
    path = Path(path)
    try:
        content = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc.strerror or exc}") from None
    try:
        document = json.loads(content) if path.suffix == ".json" else yaml.safe_load(content)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()
        raise SpecError(
            f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
            f"{' '.join(first[:3])}"
        ) from None
    return parse_spec(document, str(path))
