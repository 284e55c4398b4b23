"""Reload against the real broker and Redis: the watcher follows the pointer and its trial.

The watcher is driven with a plain loader (the registry's model); the inference worker's use of
it is tested end to end in tests/integration/test_model_reload*.py.
"""

import time

import pytest
import torch
from prometheus_client import REGISTRY

from crmrisk.lifecycle import CorruptVersion, ModelPointer
from crmrisk.lifecycle.watcher import ModelWatcher
from tests.lifecycle.conftest import (
    DOMAIN,
    announcements,
    corrupt,
    probe,
    tiny_model,
    wait_until,
    watcher_of,
)

pytestmark = pytest.mark.integration


def test_watcher__loads_an_announced_version_in_the_background(world, kafka_bootstrap):
    _, _, promoter, _, models = world
    watcher = watcher_of(world, kafka_bootstrap, check_every_s=60.0)  # only the message wakes it
    try:
        initial = watcher.start()
        assert initial[DOMAIN].version == "v0001"
        assert torch.equal(probe(initial[DOMAIN].value), probe(models[0]))
        assert watcher.take() == {}
        time.sleep(1.0)  # the watcher's consumer is positioned at the end before we announce
        promoter.promote(DOMAIN, "v0002", "promoted")
        ready: dict = {}

        def loaded() -> bool:
            ready.update(watcher.take())
            return bool(ready)

        wait_until(loaded)
        assert ready[DOMAIN].version == "v0002"
        assert torch.equal(probe(ready[DOMAIN].value), probe(models[1]))
        assert watcher.take() == {}  # handed over once
    finally:
        watcher.close()


def test_watcher__refuses_a_file_corrupted_after_promotion_and_keeps_serving(
    world, kafka_bootstrap
):
    registry, _, promoter, _, _ = world
    watcher = watcher_of(world, kafka_bootstrap)
    refused = []
    watcher.on_refused = lambda domain, version, exc: refused.append((version, type(exc)))
    labels = {"domain": DOMAIN, "result": "refused"}
    before = REGISTRY.get_sample_value("crmrisk_model_reloads_total", labels) or 0.0
    try:
        watcher.start()
        promoter.promote(DOMAIN, "v0003", "promoted")
        corrupt(registry.get(DOMAIN, "v0003"))  # the disk goes bad after the promotion
        wait_until(lambda: refused)
        assert refused == [("v0003", CorruptVersion)]
        assert watcher.take() == {}
        assert watcher.live(DOMAIN) == "v0001"
        assert REGISTRY.get_sample_value("crmrisk_model_reloads_total", labels) == before + 1
        time.sleep(1.5)  # several pointer checks later: not retried in a loop
        assert len(refused) == 1
        promoter.promote(DOMAIN, "v0002", "roll forward to a good file")
        wait_until(lambda: watcher.live(DOMAIN) == "v0002")
        assert watcher.take()[DOMAIN].version == "v0002"
    finally:
        watcher.close()


def test_watcher__refuses_a_version_with_a_different_encoder(world, kafka_bootstrap):
    registry, pointer, _, _, _ = world
    other = registry.publish(DOMAIN, tiny_model(9), {"encoder": {"domain": DOMAIN, "id": "enc-2"}})
    watcher = watcher_of(world, kafka_bootstrap, check_every_s=60.0)
    try:
        watcher.start()
        pointer.set(DOMAIN, other.version, "operator")
        assert watcher.check() == []
        assert watcher.live(DOMAIN) == "v0001"
    finally:
        watcher.close()


def test_watcher__check_hands_over_a_pointer_move_without_an_announcement(world, kafka_bootstrap):
    _, pointer, _, _, _ = world
    watcher = watcher_of(world, kafka_bootstrap, check_every_s=60.0)
    try:
        watcher.start()
        pointer.set(DOMAIN, "v0002", "moved without an announcement")
        assert watcher.take() == {}  # not loaded yet: the old model keeps serving
        assert watcher.check() == ["credit/v0002"]
        assert watcher.take()[DOMAIN].version == "v0002"
    finally:
        watcher.close()


def test_watcher__start_fails_without_a_live_version(
    world, kafka_bootstrap, redis_client, tmp_path
):
    registry, _, _, topic, _ = world
    empty = ModelPointer(redis_client, "test:nobody-promoted", 5, tmp_path / "nobody")
    watcher = ModelWatcher(
        registry,
        empty,
        [DOMAIN],
        load=lambda v: v,
        kafka_config={"bootstrap_servers": kafka_bootstrap.split(",")},
        topic=topic,
        check_every_s=1.0,
    )
    with pytest.raises(LookupError):
        watcher.start()


# -- trials: shadow and canary ---------------------------------------------------------------


def test_trial__started_announced_loaded_and_ended_by_promoting_the_challenger(
    world, kafka_bootstrap
):
    _, pointer, promoter, topic, models = world
    watcher = watcher_of(world, kafka_bootstrap, check_every_s=60.0)
    try:
        watcher.start()
        assert watcher.take_trials() == {}
        trial = promoter.start_trial(DOMAIN, "v0002", "canary", "try it", percent=10)
        assert (trial.mode, trial.version, trial.percent) == ("canary", "v0002", 10.0)
        assert pointer.trial(DOMAIN) == trial
        assert watcher.check() == ["credit/v0002 (canary)"]
        loaded = watcher.take_trials()[DOMAIN]
        assert loaded.trial == trial and loaded.model.version == "v0002"
        assert torch.equal(probe(loaded.model.value), probe(models[1]))
        assert watcher.live(DOMAIN) == "v0001"  # the champion is untouched
        promoter.promote(DOMAIN, "v0002", "canary passed")
        assert pointer.trial(DOMAIN) is None
        watcher.check()
        assert watcher.take_trials() == {DOMAIN: None}  # handed over as ended
        updates = [u for _, u in announcements(topic, kafka_bootstrap, expected=4)]
        assert [(u.kind, u.version, u.outcome) for u in updates] == [
            ("live", "v0001", None),
            ("trial_start", "v0002", None),
            ("live", "v0002", None),
            ("trial_end", "v0002", "promoted"),
        ]
        ends = [e for e in pointer.trials(DOMAIN) if e["event"] == "end"]
        assert [(e["version"], e["outcome"]) for e in ends] == [("v0002", "promoted")]
    finally:
        watcher.close()


def test_trial__rolled_back_ends_it_and_says_why(world, kafka_bootstrap):
    _, pointer, promoter, _, _ = world
    promoter.start_trial(DOMAIN, "v0002", "shadow", "compare")
    watcher = watcher_of(world, kafka_bootstrap, check_every_s=60.0)
    try:
        watcher.start()  # a running trial is loaded at start
        assert watcher.take_trials()[DOMAIN].trial.mode == "shadow"
        other = promoter.end_trial(DOMAIN, "rolled_back", "AUC low", version="v0003")
        assert other is None  # not the running trial: nothing ends
        end = promoter.end_trial(DOMAIN, "rolled_back", "AUC 0.61 below 0.78")
        assert end.trial.version == "v0002" and end.reason == "AUC 0.61 below 0.78"
        assert pointer.current(DOMAIN) == "v0001" and pointer.trial(DOMAIN) is None
        watcher.check()
        assert watcher.take_trials() == {DOMAIN: None}
    finally:
        watcher.close()
