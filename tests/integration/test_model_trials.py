"""Trials on the real broker and Redis: a shadow changes nothing the champion publishes (every
event scored exactly once, by the champion, as offline), and a worse canary is rolled back by
the guard from its realized performance."""

import asyncio
from collections import Counter

import pytest

from crmrisk import lifecycle, model
from crmrisk.commands.trials import guard_trial, start_trial
from crmrisk.lifecycle import ModelPointer
from crmrisk.lifecycle.announcements import parse_model_update
from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.model.features import FeatureEncoder
from crmrisk.settings import Settings
from crmrisk.stream.challenger import canary_rows
from crmrisk.stream.events import RiskAlert, RiskScore, ShadowScore
from crmrisk.training.data import Arrays
from crmrisk.training.datasets import to_arrays
from crmrisk.training.datasets.feed import dataset_events, dataset_outcomes
from crmrisk.training.fit import FitConfig, fit
from crmrisk.training.trial_review import Rules
from crmrisk.wiring.replay import replay

from .conftest import WINDOW, WorkerThread, offline_scores, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _trained(net, credit_dataset, manifest):
    """``net`` fitted briefly on training customers: a champion better than chance."""
    encoder = FeatureEncoder.from_dict(manifest["encoder"])
    arrays = to_arrays(credit_dataset.train[:4000], encoder, WINDOW)
    data = Arrays(arrays.events, arrays.mask, arrays.profile, arrays.label)
    fit(net, data.take(list(range(3200))), data.take(list(range(3200, 4000))),
        FitConfig(epochs=3, batch_size=128, learning_rate=3e-3, patience=3, seed=0))  # fmt: skip
    return net


def _world(stream_settings, credit_checkpoint, redis_client, tmp_path, credit_dataset=None):
    """A registry with the champion (live; trained if given ``credit_dataset``) and an
    untrained challenger, both with the same encoder."""
    registry = ModelRegistry(tmp_path / "registry")
    net, manifest = lifecycle.load_checkpoint(credit_checkpoint)
    if credit_dataset is None:
        champion = registry.import_checkpoint("credit", credit_checkpoint)
    else:
        champion = registry.publish(
            "credit", _trained(net, credit_dataset, manifest), {"encoder": manifest["encoder"]}
        )
    untrained = model.build(
        model.DEFAULT_VARIANT, net.config.event_dim, net.config.profile_dim, (), seed=1
    )
    challenger = registry.publish("credit", untrained, {"encoder": manifest["encoder"]})
    settings = Settings(
        **{k: getattr(stream_settings, k).model_dump() for k in ("kafka", "redis", "scoring")},
        model={"dir": str(tmp_path / "registry")},
    )
    pointer = ModelPointer(
        redis_client, settings.redis.key_prefix, 5, tmp_path / "registry" / "live"
    )
    pointer.set("credit", champion.version, "initial", expected=None)
    return settings, pointer, champion, challenger


def _serve(settings, events, outcomes, expected_scores):
    from crmrisk.wiring.models import follow_pointer

    watcher, models = follow_pointer(settings, ["credit"])
    k = settings.kafka
    try:
        with WorkerThread(settings, models, watcher=watcher) as worker:
            worker.owning()
            asyncio.run(replay(settings, events, outcomes, None, False))
            return read_topic(
                k.bootstrap_servers, k.topics.scores, lambda got: len(got) >= expected_scores, 180
            )
    finally:
        watcher.close()


def test_shadow__champion_output_unchanged_and_every_row_scored_again_by_the_shadow(
    stream_settings, credit_dataset, credit_checkpoint, redis_client, tmp_path
):
    settings, pointer, champion, challenger = _world(
        stream_settings, credit_checkpoint, redis_client, tmp_path
    )
    start_trial(settings, "credit", challenger.version, "shadow", 0.0, "test")
    events = dataset_events(credit_dataset.val[:300], "credit")
    scored_ids = [e.event_id for e in events if e.kind != "profile"]
    out = _serve(settings, events, [], len(scored_ids))
    k = settings.kafka
    shadow_out = read_topic(k.bootstrap_servers, k.topics.shadow_scores,
                            lambda got: len(got) >= len(scored_ids), 60)  # fmt: skip
    alerts = read_topic(k.bootstrap_servers, k.topics.alerts, lambda got: True, 10, 2.0)

    scores = [RiskScore.model_validate_json(r.value) for r in out]
    assert Counter(s.event_id for s in scores) == Counter(scored_ids)  # exactly once
    assert {s.model_version for s in scores} == {champion.version}
    ours = offline_scores(champion.path, events)
    assert max(abs(s.probability - ours[s.event_id]) for s in scores) <= 1e-5
    assert {RiskAlert.model_validate_json(r.value).model_version for r in alerts} <= {
        champion.version
    }
    shadow = [ShadowScore.model_validate_json(r.value) for r in shadow_out]
    assert Counter(s.event_id for s in shadow) == Counter(scored_ids)
    theirs = offline_scores(challenger.path, events)
    served = {s.event_id: s.probability for s in scores}
    for s in shadow:
        assert (s.model_version, s.champion_version) == (challenger.version, champion.version)
        assert abs(s.probability - theirs[s.event_id]) <= 1e-5
        assert s.champion_probability == served[s.event_id]
    assert pointer.current("credit") == champion.version  # a shadow never moves the pointer

    # The guard makes a passing shadow live (here any AUC passes: the margin is 1).
    guard_trial(settings, "credit", Rules(margin=1.0, min_scores=100), None, None, True)
    assert pointer.current("credit") == challenger.version and pointer.trial("credit") is None
    (end,) = [e for e in pointer.trials("credit") if e["event"] == "end"]
    assert end["outcome"] == "promoted"


def test_canary__a_worse_challenger_is_rolled_back_by_the_guard(
    stream_settings, credit_dataset, credit_checkpoint, redis_client, tmp_path
):
    settings, pointer, champion, challenger = _world(
        stream_settings, credit_checkpoint, redis_client, tmp_path, credit_dataset
    )
    start_trial(settings, "credit", challenger.version, "canary", 50.0, "test")
    records = credit_dataset.val[:600]
    events = dataset_events(records, "credit")
    scored_ids = [e.event_id for e in events if e.kind != "profile"]
    out = _serve(settings, events, dataset_outcomes(records, "credit"), len(scored_ids))

    scores = [RiskScore.model_validate_json(r.value) for r in out]
    assert Counter(s.event_id for s in scores) == Counter(scored_ids)
    theirs = canary_rows([s.customer_id for s in scores], 50.0)
    versions = [s.model_version for s in scores]
    assert {v for v, t in zip(versions, theirs, strict=True) if t} == {challenger.version}
    assert {v for v, t in zip(versions, theirs, strict=True) if not t} == {champion.version}

    guard_trial(settings, "credit", Rules(min_labelled=100), None, None)
    assert pointer.trial("credit") is None and pointer.current("credit") == champion.version
    (end,) = [e for e in pointer.trials("credit") if e["event"] == "end"]
    assert end["outcome"] == "rolled_back" and "realized AUC" in end["end_reason"]
    k = settings.kafka
    updates = read_topic(k.bootstrap_servers, k.topics.model_updates,
                         lambda got: len(got) >= 2, 30)  # fmt: skip
    kinds = [(u.kind, u.outcome) for u in (parse_model_update(r.value) for r in updates)]
    assert kinds == [("trial_start", None), ("trial_end", "rolled_back")]
