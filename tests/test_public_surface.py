"""Each package's public surface: what one package imports from another is in that module's
``__all__`` (a private helper used across packages is a boundary nobody meant to open)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The folders installed under crmrisk (crmrisk/stream -> ../stream, ...); the rest of crmrisk
# (the CLI, commands, wiring, settings) is the application package itself.
SUBPACKAGES = ("dashboard", "training", "stream", "lifecycle", "state", "model", "deploy")


def _package_of(module: str) -> str | None:
    """``crmrisk.stream.pipeline`` -> ``stream``; ``crmrisk.wiring.worker`` -> ``crmrisk``."""
    parts = module.split(".")
    if parts[0] != "crmrisk":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else "crmrisk"


def _files(package: str) -> list[Path]:
    if package != "crmrisk":
        return sorted((ROOT / package).rglob("*.py"))
    app = ROOT / "crmrisk"
    return sorted(p for p in app.rglob("*.py") if p.relative_to(app).parts[0] not in SUBPACKAGES)


def _cross_package_imports() -> list[tuple[str, str, str]]:
    """(importing file, module, name) for every ``from crmrisk... import name`` in one of the
    packages whose module lies in another of them."""
    found = []
    for package in ("crmrisk", *SUBPACKAGES):
        for path in _files(package):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                imported = _package_of(node.module)
                if imported and imported != package:
                    where = str(path.relative_to(ROOT))
                    found += [(where, node.module, alias.name) for alias in node.names]
    return found


IMPORTS = _cross_package_imports()


def test_the_walk_finds_the_imports_it_checks():
    assert len(IMPORTS) > 100


@pytest.mark.parametrize("where,module,name", IMPORTS, ids=[f"{w}:{m}.{n}" for w, m, n in IMPORTS])
def test_a_name_imported_across_packages_is_public(where, module, name):
    imported = importlib.import_module(module)
    if hasattr(imported, "__path__") and not hasattr(imported, name):
        importlib.import_module(f"{module}.{name}")  # a submodule
        return
    if isinstance(getattr(imported, name, None), type(importlib)):
        return  # ``from package import submodule``
    assert name in getattr(imported, "__all__", ()), f"{where}: {module}.{name} is not in __all__"
