"""Model changes on ``risk.model-updates``: load them for a switch between batches.

Changes are made and announced by ``lifecycle/promoter.py``. ``ModelWatcher`` runs beside an
inference worker: a background thread wakes on an announcement (or every ``check_every_s`` in
case one was missed), reads the pointer (and the trial, ``take_trials``), and when it names a
version other than the one loaded, loads that version completely, hash verified, off the scoring
thread. The worker calls ``take()`` between batches and gets the new model, or nothing; a
version that fails to load is logged, counted and skipped, and the old model keeps serving.
Because the pointer, not the message, decides, duplicated, reordered or lost messages cannot
load a wrong version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from kafka import KafkaConsumer, TopicPartition
from prometheus_client import Counter

from crmrisk.lifecycle.pointer import ModelPointer
from crmrisk.lifecycle.registry import ModelRegistry, ModelVersion
from crmrisk.lifecycle.trials import Trial

__all__ = ["LoadedModel", "ModelWatcher", "TrialModel"]

log = logging.getLogger(__name__)

T = TypeVar("T")

POINTER_ERRORS = Counter(
    "crmrisk_model_pointer_errors_total",
    "Failed reads of the live-model pointer by the model watcher (it retries with backoff).",
)
RELOADS = Counter(
    "crmrisk_model_reloads_total",
    "Model versions the inference worker tried to load, by outcome.",
    ["domain", "result"],
)


@dataclass(frozen=True)
class LoadedModel(Generic[T]):
    """A fully loaded, verified version ready to score: swap ``value`` in between batches."""

    domain: str
    version: str
    value: T  # what ``load`` returned (the worker's scoring kit: ``load`` decides)
    manifest: Mapping[str, Any]
    loaded_at: datetime


@dataclass(frozen=True)
class TrialModel(Generic[T]):
    """A challenger on trial (``lifecycle.Trial``: shadow or canary), loaded and verified."""

    trial: Trial
    model: LoadedModel[T]


class ModelWatcher(Generic[T]):
    """Loads each domain's live version in the background and hands it over between batches.

    Parameters
    ----------
    registry, pointer
        Where versions live and which one is live.
    domains
        Domains this worker scores.
    load
        Builds what the worker scores with from a version whose hash was just verified, e.g.
        ``lambda v: load_domain_model(v.path, v.domain, device, top_events)``. Whatever it
        raises refuses the version.
    kafka_config
        kafka-python connection options (``KafkaSettings.client_config()``).
    topic
        ``risk.model-updates``.
    check_every_s
        Longest time between pointer checks when no announcement arrives.
    same_encoder
        Refuse a version whose feature encoder differs from the loaded one: ingest has already
        encoded the stored windows with the old encoder, so such a model would score garbage.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        pointer: ModelPointer,
        domains: Iterable[str],
        *,
        load: Callable[[ModelVersion], T],
        kafka_config: Mapping[str, Any],
        topic: str,
        check_every_s: float,
        same_encoder: bool = True,
    ) -> None:
        self._registry = registry
        self._pointer = pointer
        self._domains = list(domains)
        self._kafka_config = dict(kafka_config)
        self._topic = topic
        self._load_version = load
        self._check_every_s = check_every_s
        self._same_encoder = same_encoder
        self._lock = threading.Lock()
        self._live: dict[str, LoadedModel[T]] = {}  # what the worker has, or gets at take()
        self._ready: dict[str, LoadedModel[T]] = {}  # loaded, not yet taken
        self._refused: dict[str, str] = {}  # domain -> version that failed, not retried
        self._trials: dict[str, TrialModel[T]] = {}  # the challenger on trial per domain
        self._ready_trials: dict[str, TrialModel[T] | None] = {}  # None: the trial ended
        self._trial_refused: dict[str, Trial] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._problem: str | None = None  # why the pointer cannot be read now, if it cannot
        self.on_refused: Callable[[str, str, Exception], None] | None = None

    # -- the worker's side ------------------------------------------------------------------
    def start(self) -> dict[str, LoadedModel[T]]:
        """Load every domain's live version now (raises if one cannot load), then watch.
        A running trial is loaded too (``take_trials`` hands it over; refused ones are logged)."""
        for domain in self._domains:
            version = self._pointer.current(domain)
            if version is None:
                raise LookupError(f"no live model version for {domain}: promote one first")
            loaded = self._load(domain, version)
            self._live[domain] = loaded
        for domain in self._domains:
            self._check_trial(domain)
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
        self._thread.start()
        return dict(self._live)

    def take(self) -> dict[str, LoadedModel[T]]:
        """Models loaded since the last call, by domain (usually empty). Call between batches."""
        with self._lock:
            ready, self._ready = self._ready, {}
        return ready

    def take_trials(self) -> dict[str, TrialModel[T] | None]:
        """Trials started, changed (None: ended) since the last call. Call between batches."""
        with self._lock:
            ready, self._ready_trials = self._ready_trials, {}
        return ready

    def health(self) -> str | None:
        """None while the watcher can follow the pointer, else why not (for ``/health``)."""
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            return "model watcher thread is not running: promotions are not followed"
        return self._problem

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- the background thread --------------------------------------------------------------
    def check(self) -> list[str]:
        """Compare every domain's pointer with what is loaded; load what changed.

        Returns the versions that became ready. Runs on the watcher thread, and directly in tests.
        """
        became_ready = []
        for domain in self._domains:
            version = self._pointer.current(domain)
            self._pointer.repair_cache(domain)  # a restarted, empty Redis gets its copy back
            live = self._live.get(domain)
            if version is None or (live is not None and live.version == version):
                continue
            if self._refused.get(domain) == version:
                continue
            try:
                loaded = self._load(domain, version)
            except Exception as exc:  # any failure keeps the old model serving
                self._refused[domain] = version
                RELOADS.labels(domain, "refused").inc()
                log.error(
                    "model %s/%s refused, still serving %s: %s",
                    domain,
                    version,
                    live.version if live else None,
                    exc,
                )
                if self.on_refused is not None:
                    self.on_refused(domain, version, exc)
                continue
            self._refused.pop(domain, None)
            with self._lock:
                self._live[domain] = loaded
                self._ready[domain] = loaded
            became_ready.append(f"{domain}/{version}")
        for domain in self._domains:
            became_ready += self._check_trial(domain)
        return became_ready

    def _check_trial(self, domain: str) -> list[str]:
        """Follow ``domain``'s trial: load its challenger (same encoder as the live model:
        it scores the same stored windows), or hand over its end."""
        trial = self._pointer.trial(domain)
        running = self._trials.get(domain)
        if trial is None:
            if running is not None:
                with self._lock:
                    del self._trials[domain]
                    self._ready_trials[domain] = None
                log.info("%s: trial of %s ended", domain, running.trial.version)
            return []
        if running is not None and running.trial == trial:
            return []
        if self._trial_refused.get(domain) == trial:
            return []
        try:
            if running is not None and running.model.version == trial.version:
                model = running.model  # only the mode or the share changed
            else:
                model = self._load(domain, trial.version)
        except Exception as exc:  # a challenger that cannot load never touches the champion
            self._trial_refused[domain] = trial
            RELOADS.labels(domain, "refused").inc()
            log.error("%s trial of %s/%s refused: %s", trial.mode, domain, trial.version, exc)
            if self.on_refused is not None:
                self.on_refused(domain, trial.version, exc)
            return []
        loaded = TrialModel(trial, model)
        with self._lock:
            self._trials[domain] = loaded
            self._ready_trials[domain] = loaded
        return [f"{domain}/{trial.version} ({trial.mode})"]

    def live(self, domain: str) -> str | None:
        """The version the worker has (or will have after its next ``take``)."""
        loaded = self._live.get(domain)
        return loaded.version if loaded else None

    def _load(self, domain: str, version: str) -> LoadedModel[T]:
        entry = self._registry.verify(domain, version)
        live = self._live.get(domain)
        if (
            self._same_encoder
            and live is not None
            and live.manifest.get("encoder") != entry.manifest.get("encoder")
        ):
            raise ValueError(
                f"{domain}/{version} uses a different feature encoder than {live.version}; "
                "stored windows would need re-encoding (restart ingest and inference)"
            )
        value = self._load_version(entry)
        RELOADS.labels(domain, "loaded").inc()
        log.info("model %s/%s loaded (parent %s)", domain, version, entry.parent)
        return LoadedModel(domain, version, value, entry.manifest, datetime.now(UTC))

    def _run(self) -> None:
        """Watch until closed. Nothing stops it but ``close``: a pointer or broker that cannot be
        reached is retried with backoff (doubling up to ``check_every_s``), counted, and reported
        by ``health`` until it answers again; the loaded models keep serving meanwhile."""
        consumer = None
        # Wait in slices of at most a second so that close() returns promptly.
        slice_s = min(self._check_every_s, 1.0)
        next_check = time.monotonic() + self._check_every_s
        backoff_s = min(0.5, self._check_every_s)
        next_subscribe = 0.0
        while not self._stop.is_set():
            if consumer is None and time.monotonic() >= next_subscribe:
                consumer = self._subscribe()
                next_subscribe = time.monotonic() + self._check_every_s
            announced = False
            try:
                if consumer is not None:
                    for records in consumer.poll(timeout_ms=int(slice_s * 1000)).values():
                        for record in records:
                            announced = True
                            log.info("model update announced: %s", record.value[:200])
                else:
                    self._stop.wait(slice_s)
            except Exception as exc:  # the broker went away: re-subscribe, the pointer decides
                log.warning("model updates topic unreadable (%s); re-subscribing", exc)
                consumer = self._close(consumer)
                self._stop.wait(slice_s)
            if self._stop.is_set():
                break
            if not (announced or time.monotonic() >= next_check):
                continue
            try:
                self.check()
            except Exception as exc:
                POINTER_ERRORS.inc()
                if self._problem is None:
                    log.error("model pointer unreadable, retrying: %s", exc)
                self._problem = f"model pointer unreadable (retrying): {exc}"
                next_check = time.monotonic() + backoff_s
                backoff_s = min(backoff_s * 2, self._check_every_s)
                continue
            if self._problem is not None:
                log.info("model pointer readable again")
            self._problem = None
            backoff_s = min(0.5, self._check_every_s)
            next_check = time.monotonic() + self._check_every_s
        self._close(consumer)

    def _subscribe(self) -> KafkaConsumer | None:
        try:
            consumer = KafkaConsumer(**self._kafka_config, group_id=None, enable_auto_commit=False)
            partitions = consumer.partitions_for_topic(self._topic) or {0}
            assigned = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            consumer.seek_to_end(*assigned)  # past changes are already in the pointer
            return consumer
        except Exception as exc:
            log.warning("model updates topic unavailable (%s); checking the pointer only", exc)
            return None

    @staticmethod
    def _close(consumer: KafkaConsumer | None) -> None:
        if consumer is not None:
            try:
                consumer.close()
            except Exception as exc:  # closing a consumer whose broker is gone
                log.debug("closing the model updates consumer: %s", exc)
