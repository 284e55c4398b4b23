"""The wheel installs one top-level name, ``crmrisk``: the design card's folders travel inside it
(crmrisk.stream, crmrisk.state, ...), so nothing lands in site-packages as a bare ``model`` or
``state`` that could collide with another distribution; benchmarks and tests stay out of it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("stream", "state", "model", "training", "lifecycle", "dashboard", "deploy")
BARE = (*FOLDERS, "benchmarks")


def _tracked(*paths: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", *paths], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.split()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build outside the checkout: setuptools never prunes its build/ folder, so a stale one
    # would put modules deleted since into the wheel.
    scratch = out / "scratch"
    extra = out / "build.cfg"
    extra.write_text(f"[build]\nbuild_base = {scratch}\n[egg_info]\negg_base = {out}\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True, env={**os.environ, "DIST_EXTRA_CONFIG": str(extra)},
    )  # fmt: skip
    (built,) = out.glob("crmrisk-*.whl")
    return built


def test_the_folders_are_linked_into_the_package():
    for folder in FOLDERS:
        link = ROOT / "crmrisk" / folder
        assert link.is_symlink() and link.resolve() == ROOT / folder, folder


def test_the_wheel_has_one_top_level_name(wheel):
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"crmrisk"}


def test_every_runtime_module_and_data_file_is_in_the_wheel(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = {f"crmrisk/{path}" for path in _tracked(*FOLDERS) if path.endswith(".py")}
    expected |= {path for path in _tracked("crmrisk") if path.endswith(".py")}
    expected |= {
        f"crmrisk/{path}" for path in _tracked("state", "lifecycle") if path.endswith(".lua")
    }
    expected |= {f"crmrisk/{path}" for path in _tracked("dashboard/static")}
    expected |= {"crmrisk/deploy/kafka/pom.xml"}
    assert len(expected) > 150
    assert expected - names == set()
    assert not [name for name in names if name.startswith(("benchmarks/", "tests/"))]


def test_the_unpacked_wheel_imports_on_its_own(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import importlib, importlib.resources as r\n"
        "import crmrisk.cli, crmrisk.stream.pipeline, crmrisk.training.train_job\n"
        "import crmrisk.dashboard.app, crmrisk.lifecycle.pointer, crmrisk.state.partition_fence\n"
        "assert crmrisk.cli.__file__.startswith(sys.argv[1]), crmrisk.cli.__file__\n"
        "assert r.files('crmrisk.state').joinpath('partition_fence.lua').is_file()\n"
        "assert r.files('crmrisk.deploy').joinpath('kafka/pom.xml').is_file()\n"
        f"for bare in {BARE}:\n"
        "    try:\n"
        "        importlib.import_module(bare)\n"
        "    except ModuleNotFoundError:\n"
        "        continue\n"
        "    raise SystemExit(f'a bare {bare!r} is importable')\n"
    )
    # Isolated (-I: no PYTHONPATH, no current folder) and from an empty folder, so the
    # checkout's own folders are not on the path.
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(site)], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _bare_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"{path.relative_to(ROOT)}:{node.lineno} {n}"
            for n in names
            if n.split(".")[0] in FOLDERS
        ]
    return found


def test_no_file_imports_a_folder_by_its_bare_name():
    """The checkout's root is on pytest's path (for benchmarks/), where a bare ``import stream``
    would still work and load a second copy of every module beside crmrisk.stream."""
    files = [
        ROOT / p
        for p in _tracked("*.py")
        if not p.startswith(tuple(f"crmrisk/{f}/" for f in FOLDERS))
    ]
    assert len(files) > 300
    assert [hit for path in files for hit in _bare_imports(path)] == []
