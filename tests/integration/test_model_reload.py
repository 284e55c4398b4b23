"""A model promoted while the worker runs is swapped in between batches: every event is scored
exactly once, by one version, and each score equals that version's offline score."""

import asyncio
import time
from collections import Counter

import numpy as np
import pytest

from crmrisk import lifecycle, model
from crmrisk.lifecycle import ModelPointer
from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.settings import Settings
from crmrisk.stream.events import RiskScore
from crmrisk.training.datasets.feed import dataset_events, dataset_outcomes
from crmrisk.wiring.replay import replay

from .conftest import WorkerThread, offline_scores, read_topic

pytestmark = pytest.mark.integration


def test_reload__promoted_version_takes_over_between_batches(
    stream_settings, credit_dataset, credit_checkpoint, redis_client, tmp_path
):
    from crmrisk.wiring.models import follow_pointer

    registry = ModelRegistry(tmp_path / "registry")
    first = registry.import_checkpoint("credit", credit_checkpoint)
    net, manifest = lifecycle.load_checkpoint(credit_checkpoint)
    other = model.build(
        model.DEFAULT_VARIANT, net.config.event_dim, net.config.profile_dim, (), seed=1
    )
    second = registry.publish("credit", other, {"encoder": manifest["encoder"]})
    settings = Settings(
        **{k: getattr(stream_settings, k).model_dump() for k in ("kafka", "redis", "scoring")},
        model={"dir": str(tmp_path / "registry")},
    )
    pointer = ModelPointer(
        redis_client, settings.redis.key_prefix, 5, tmp_path / "registry" / "live"
    )
    pointer.set("credit", first.version, "initial", expected=None)

    records = credit_dataset.val[:400]
    events = dataset_events(records, "credit")
    cut = len(events) // 2
    before, after = events[:cut], events[cut:]
    scored_ids = [e.event_id for e in events if e.kind != "profile"]
    bootstrap, scores_topic = settings.kafka.bootstrap_servers, settings.kafka.topics.scores

    def scored_count(n):
        return lambda got: len(got) >= n

    watcher, models = follow_pointer(settings, ["credit"])
    try:
        with WorkerThread(settings, models, watcher=watcher):
            asyncio.run(replay(settings, before, [], None, False))
            n_before = sum(e.kind != "profile" for e in before)
            read_topic(bootstrap, scores_topic, scored_count(n_before), 120, 0.0)
            pointer.set("credit", second.version, "promoted", expected=first.version)
            time.sleep(7)  # the watcher checks the pointer at least every 5 s, then loads
            asyncio.run(replay(settings, after, dataset_outcomes(records, "credit"), None, False))
            out = read_topic(bootstrap, scores_topic, scored_count(len(scored_ids)), 120)
    finally:
        watcher.close()

    scores = [RiskScore.model_validate_json(r.value) for r in out]
    assert Counter(s.event_id for s in scores) == Counter(scored_ids)
    versions = [s.model_version for s in scores]
    assert set(versions) == {first.version, second.version}
    for partition in {r.partition for r in out}:  # in produce order, per partition
        ordered = sorted(
            (r.offset, v) for r, v in zip(out, versions, strict=True) if r.partition == partition
        )
        seq = [v for _, v in ordered]
        if second.version in seq:
            switch = seq.index(second.version)
            assert set(seq[switch:]) == {second.version}, "versions interleaved"
    offline = {
        first.version: offline_scores(first.path, events),
        second.version: offline_scores(second.path, events),
    }
    diffs = [abs(s.probability - offline[s.model_version][s.event_id]) for s in scores]
    assert max(diffs) <= 1e-5
    assert np.mean([v == second.version for v in versions]) > 0.3
