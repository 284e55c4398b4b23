"""Every docstring example in the project runs, so the examples stay true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crmrisk", "benchmarks")  # crmrisk holds the design card's folders (links)


def _modules_with_examples() -> list[str]:
    names = []
    for package in PACKAGES:
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            path = ROOT / Path(*info.name.split(".")).with_suffix(".py")
            if not path.exists():
                path = ROOT / Path(*info.name.split(".")) / "__init__.py"
            if path.exists() and ">>>" in path.read_text():
                names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_the_examples_are_found():
    assert len(MODULES) >= 9  # the modules that had examples before this test existed


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
