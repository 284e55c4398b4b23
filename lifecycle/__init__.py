"""The model lifecycle: every trained version, which one is live, changing it, following it.

- ``checkpoint``: a model's files (safetensors weights + ``manifest.json``), saved and loaded.
- ``registry``: every published version per domain, immutable, hash verified on load.
- ``journal``, ``pointer``, ``trials``: the live version per domain (a journal beside the
  registry, the truth, copied to Redis) and the challenger on trial.
- ``announcements``: the ``risk.model-updates`` message.
- ``promoter``: promote, roll back, start and end trials, then announce the change.
- ``watcher``: beside a worker, load each new live version off the scoring thread and hand it
  over between batches.

``promoter`` and ``watcher`` hold the control plane's one Kafka client (kafka-python) and are
imported from their modules, so that importing the package (for the registry, say) loads no
Kafka client. It builds on ``model`` (the network) and ``state`` (``StateError``); ``stream``
and everything above it build on it.
"""

from crmrisk.lifecycle.announcements import ModelUpdate, parse_model_update
from crmrisk.lifecycle.checkpoint import (
    CheckpointError,
    ChecksumMismatch,
    load_checkpoint,
    save_checkpoint,
)
from crmrisk.lifecycle.journal import ANY, PointerChange, PointerConflict, PointerError
from crmrisk.lifecycle.pointer import ModelPointer
from crmrisk.lifecycle.registry import (
    CorruptVersion,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    VersionNotFound,
)
from crmrisk.lifecycle.trials import Trial, TrialEnd

__all__ = [
    "ANY",
    "CheckpointError",
    "ChecksumMismatch",
    "CorruptVersion",
    "ModelPointer",
    "ModelRegistry",
    "ModelUpdate",
    "ModelVersion",
    "PointerChange",
    "PointerConflict",
    "PointerError",
    "RegistryError",
    "Trial",
    "TrialEnd",
    "VersionNotFound",
    "load_checkpoint",
    "parse_model_update",
    "save_checkpoint",
]
