"""A versioned, file-based store of trained models: every version ever published, immutable.

Layout under ``root``::

    versions/<domain>/<version>/weights.safetensors   safetensors, never pickle
    versions/<domain>/<version>/manifest.json         checkpoint manifest + registry fields

Versions are ``v0001``, ``v0002`` ... per domain. ``publish`` writes into a temporary directory
beside the final one and ``os.rename``s it into place under an exclusive lock, so a reader sees a
version completely or not at all, and two publishers never get the same number. The manifest is
the checkpoint's (variant, hyper-parameters, encoder, sha256 of the weights, created_at) plus
``domain``, ``version``, ``parent``, ``data_window``, ``metrics`` and, for trainer output,
``decision`` (promoted or not, and why). Which version is *live* is not stored here: that is
the per-domain pointer (``lifecycle/pointer.py``).

``verify`` re-hashes the weights against the manifest; ``load`` verifies before it builds
anything, so a corrupted or swapped weights file raises ``CorruptVersion`` and the caller keeps
whatever it was serving.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crmrisk.lifecycle.checkpoint import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)

__all__ = [
    "CorruptVersion",
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
    "VersionNotFound",
]

_VERSION = re.compile(r"^v(\d{4,})$")
_DOMAIN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class RegistryError(CheckpointError):
    """A registry operation failed (bad name, missing version, unreadable manifest)."""


class VersionNotFound(RegistryError, LookupError):
    """No such domain/version in the registry."""


class CorruptVersion(RegistryError):
    """A version's files do not match its manifest (hash mismatch, missing file)."""


@dataclass(frozen=True)
class ModelVersion:
    """One published version: where it lives and its manifest (read-only metadata)."""

    domain: str
    version: str
    path: Path
    manifest: Mapping[str, Any]

    @property
    def parent(self) -> str | None:
        return self.manifest.get("parent")

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.manifest.get("metrics") or {}

    @property
    def data_window(self) -> Mapping[str, Any]:
        return self.manifest.get("data_window") or {}

    @property
    def decision(self) -> Mapping[str, Any]:
        return self.manifest.get("decision") or {}

    @property
    def created_at(self) -> str | None:
        return self.manifest.get("created_at")

    @property
    def sha256(self) -> str | None:
        return self.manifest.get("sha256")


class ModelRegistry:
    """Publish, list, verify and load model versions under ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # -- names --------------------------------------------------------------------------
    def _domain_dir(self, domain: str) -> Path:
        if not _DOMAIN.match(domain):
            raise RegistryError(f"invalid domain name {domain!r}")
        return self.root / "versions" / domain

    def _version_dir(self, domain: str, version: str) -> Path:
        if not _VERSION.match(version):
            raise RegistryError(f"invalid version {version!r} (expected v0001, v0002 ...)")
        return self._domain_dir(domain) / version

    # -- writing ------------------------------------------------------------------------
    def publish(
        self,
        domain: str,
        model: torch.nn.Module,
        manifest: Mapping[str, Any],
        *,
        parent: str | None = None,
        data_window: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        decision: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Write ``model`` as the next version of ``domain``, atomically; returns it.

        ``manifest`` is the checkpoint manifest (variant, hyper-parameters, encoder ...); the
        registry fields given here are added to it. ``metrics`` default to the manifest's.
        """
        base = self._domain_dir(domain)
        base.mkdir(parents=True, exist_ok=True)
        with self._lock(base):
            version = self._next_version(domain)
            document = dict(manifest)
            document.update(
                domain=domain,
                version=version,
                parent=parent,
                data_window=dict(data_window or manifest.get("data_window") or {}),
                metrics=dict(metrics if metrics is not None else manifest.get("metrics") or {}),
            )
            if decision is not None:
                document["decision"] = dict(decision)
            staging = base / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
            try:
                save_checkpoint(staging, model, document)
                self._check_files(staging)
                _fsync_tree(staging)
                os.rename(staging, base / version)
                _fsync_dir(base)
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
        return self.get(domain, version)

    def import_checkpoint(
        self, domain: str, source: Path | str, *, parent: str | None = None
    ) -> ModelVersion:
        """Register an existing checkpoint directory (e.g. from ``crmrisk train``) as a version.

        The checkpoint is loaded (which verifies its hash) and re-saved, so the registry only
        ever holds files it wrote itself.
        """
        model, manifest = load_checkpoint(Path(source))
        manifest = _as_dict(manifest)
        manifest.setdefault("imported_from", str(Path(source).resolve()))
        return self.publish(domain, model, manifest, parent=parent)

    @contextmanager
    def _lock(self, base: Path) -> Iterator[None]:
        with open(base / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _next_version(self, domain: str) -> str:
        numbers = [int(_VERSION.match(v.version).group(1)) for v in self.list(domain)]
        return f"v{max(numbers, default=0) + 1:04d}"

    # -- reading ------------------------------------------------------------------------
    def domains(self) -> list[str]:
        """Domains with at least one version directory."""
        base = self.root / "versions"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and _DOMAIN.match(p.name))

    def list(self, domain: str) -> list[ModelVersion]:
        """All complete versions of ``domain``, oldest first (staging directories skipped)."""
        base = self._domain_dir(domain)
        if not base.is_dir():
            return []
        names = sorted(
            (p.name for p in base.iterdir() if _VERSION.match(p.name)),
            key=lambda n: int(n[1:]),
        )
        return [self.get(domain, name) for name in names]

    def get(self, domain: str, version: str) -> ModelVersion:
        """The version's metadata; raises ``VersionNotFound`` if it does not exist."""
        path = self._version_dir(domain, version)
        manifest_path = path / MANIFEST_FILE
        if not manifest_path.is_file():
            raise VersionNotFound(f"{domain}/{version} is not in the registry at {self.root}")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CorruptVersion(f"{domain}/{version}: unreadable manifest: {exc}") from exc
        if not isinstance(manifest, dict):
            raise CorruptVersion(f"{domain}/{version}: manifest is not a JSON object")
        return ModelVersion(domain, version, path, manifest)

    def latest(self, domain: str) -> ModelVersion | None:
        versions = self.list(domain)
        return versions[-1] if versions else None

    def verify(self, domain: str, version: str) -> ModelVersion:
        """Re-hash the weights against the manifest; raises ``CorruptVersion`` on mismatch."""
        entry = self.get(domain, version)
        self._check_files(entry.path)
        expected = entry.sha256
        if not expected:
            raise CorruptVersion(f"{domain}/{version}: manifest has no sha256")
        actual = _sha256(entry.path / WEIGHTS_FILE)
        if actual != expected:
            raise CorruptVersion(
                f"{domain}/{version}: weights sha256 {actual[:12]}... does not match the "
                f"manifest's {expected[:12]}...; refusing to load"
            )
        return entry

    def load(
        self, domain: str, version: str, device: str | torch.device = "cpu"
    ) -> tuple[torch.nn.Module, ModelVersion]:
        """Verify, then build the model in eval mode on ``device``; never unpickles."""
        entry = self.verify(domain, version)
        try:
            model, _ = load_checkpoint(entry.path)
        # Not only CheckpointError: a malformed safetensors file surfaces as the parser's own
        # error type. Whatever it is, this version does not load.
        except Exception as exc:
            raise CorruptVersion(f"{domain}/{version}: {type(exc).__name__}: {exc}") from exc
        model.to(device)
        model.eval()
        return model, entry

    @staticmethod
    def _check_files(path: Path) -> None:
        for name in (WEIGHTS_FILE, MANIFEST_FILE):
            if not (path / name).is_file():
                raise CorruptVersion(f"{path}: {name} is missing")


def _as_dict(manifest: Any) -> dict[str, Any]:
    if isinstance(manifest, Mapping):
        return dict(manifest)
    if hasattr(manifest, "to_dict"):
        return dict(manifest.to_dict())
    raise RegistryError(f"cannot read a manifest of type {type(manifest).__name__}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_tree(path: Path) -> None:
    for item in path.iterdir():
        if item.is_file():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
