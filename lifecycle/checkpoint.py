"""The only way models are saved and loaded: safetensors weights plus ``manifest.json``.

A checkpoint is a directory::

    weights.safetensors the unwrapped module's state dict (no pickle anywhere)
    manifest.json       what the caller passed (e.g. "version", "encoder" = FeatureEncoder
                        .to_dict(), "metrics", "data_window") plus the reserved keys below

Reserved keys, always written by ``save_checkpoint`` (they override the caller's): ``format``,
``variant``, ``hyperparameters`` (``RiskModelConfig.to_dict()``), ``weights_file``,
``sha256`` (of the weights file), ``created_at`` (UTC, ISO 8601) and ``torch_version``.

Writes are atomic: a new checkpoint is assembled in a hidden sibling directory and renamed into
place; over an existing one, each file goes to a temp file and is ``os.replace``d, weights first
and manifest last, so a reader sees either the old checkpoint or the new one (or a hash mismatch,
which ``load_checkpoint`` refuses), never half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from crmrisk.model.network import RiskModel
from crmrisk.model.variants import build

__all__ = [
    "FORMAT",
    "MANIFEST_FILE",
    "WEIGHTS_FILE",
    "CheckpointError",
    "ChecksumMismatch",
    "load_checkpoint",
    "model_from_manifest",
    "save_checkpoint",
]

FORMAT = 1  # bump when the layout or the reserved keys change
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "weights.safetensors"  # lifecycle/registry.py relies on this name


class CheckpointError(RuntimeError):
    """A checkpoint could not be written, or is missing, malformed or incompatible."""


class ChecksumMismatch(CheckpointError):
    """The weights file's sha256 differs from the one its manifest records."""

    def __init__(self, path: Path, expected: str, actual: str):
        super().__init__(f"{path}: sha256 is {actual}, manifest says {expected}; refusing to load")
        self.path, self.expected, self.actual = path, expected, actual


def save_checkpoint(
    directory: str | os.PathLike[str], model: torch.nn.Module, manifest: Mapping[str, Any]
) -> dict[str, Any]:
    """Write ``model`` and ``manifest`` to ``directory`` atomically; return the full manifest.

    ``model`` must come from ``model.build`` (a ``torch.compile`` wrapper is unwrapped).
    Raises ``CheckpointError`` when the model is not a ``RiskModel`` or the manifest is not
    plain JSON (NaN and infinities included).
    """
    module = getattr(model, "_orig_mod", model)  # torch.compile's wrapper holds the real module
    if not isinstance(module, RiskModel):
        raise CheckpointError(f"expected a RiskModel from model.build, got {type(module).__name__}")
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    weights = save_safetensors(state, metadata={"format": "pt"})
    full = {
        **manifest,
        "format": FORMAT,
        "variant": module.variant,
        "hyperparameters": module.config.to_dict(),
        "weights_file": WEIGHTS_FILE,
        "sha256": hashlib.sha256(weights).hexdigest(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
    }
    try:
        text = json.dumps(full, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"manifest is not plain JSON: {exc}") from exc

    directory = Path(directory)
    files = {WEIGHTS_FILE: weights, MANIFEST_FILE: text.encode()}  # manifest last
    if directory.exists():
        for name, data in files.items():
            _write_atomic(directory / name, data)
    else:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        for name, data in files.items():
            _write_atomic(staging / name, data)
        try:
            os.rename(staging, directory)
        except OSError as exc:  # someone else created it in the meantime
            raise CheckpointError(f"could not move checkpoint into {directory}: {exc}") from exc
    _fsync_directory(directory)
    return full


def model_from_manifest(manifest: Mapping[str, Any], **overrides: Any) -> torch.nn.Module:
    """A newly initialised network of the manifest's variant and hyper-parameters (``overrides``,
    e.g. ``seed``, go to ``model.build``)."""
    hyper = dict(manifest["hyperparameters"])
    hyper.setdefault("members", 1)  # saved before ensembles: one network
    return build(
        manifest["variant"],
        hyper.pop("event_dim"),
        hyper.pop("profile_dim"),
        hyper.pop("quantiles"),
        **hyper,
        **overrides,
    )


def load_checkpoint(
    directory: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[RiskModel, dict[str, Any]]:
    """Rebuild the model from ``directory`` via ``build``, in eval mode; return it and the manifest.

    Never unpickles. Raises ``ChecksumMismatch`` when the weights do not hash to the manifest's
    sha256, and ``CheckpointError`` when a file is missing, malformed or does not fit the model.
    """
    directory = Path(directory)
    manifest = _read_manifest(directory)
    path = directory / str(manifest.get("weights_file", WEIGHTS_FILE))
    try:
        weights = path.read_bytes()  # hash and parse the same bytes: no swap in between
    except OSError as exc:
        raise CheckpointError(f"cannot read weights {path}: {exc}") from exc
    actual = hashlib.sha256(weights).hexdigest()
    if actual != manifest["sha256"]:
        raise ChecksumMismatch(path, manifest["sha256"], actual)
    try:
        model = model_from_manifest(manifest)
        model.load_state_dict(_upgrade_state(load_safetensors(weights), model), strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{directory} does not rebuild into a model: {exc}") from exc
    model.to(device=device, dtype=dtype)
    return model.eval(), manifest


def _upgrade_state(state: dict[str, torch.Tensor], model: RiskModel) -> dict[str, torch.Tensor]:
    """Weights saved before ``RiskModel`` held ``members``: one network, no calibration."""
    if any(key.startswith("members.") for key in state):
        return state
    upgraded = {f"members.0.{key}": value for key, value in state.items()}
    for name, buffer in model.named_buffers(recurse=False):  # identity calibration
        upgraded[name] = buffer.detach().clone()
    return upgraded


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"no {MANIFEST_FILE} in {directory}") from exc
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT}")
    missing = [k for k in ("variant", "hyperparameters", "sha256") if k not in manifest]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}")
    return manifest


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then ``os.replace`` onto ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_directory(directory: Path) -> None:
    """Make the renames durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
