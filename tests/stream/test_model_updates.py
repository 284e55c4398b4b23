"""Promotion and reload against the real broker and Redis: pointer, announcement, watcher.

The watcher is driven with a plain loader (the registry's model); the inference worker's use of
it is tested end to end in tests/integration/test_model_reload*.py.
"""

import time

import pytest
import torch
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client import REGISTRY

from model import build
from model.registry import CorruptVersion, ModelRegistry, ModelVersion
from state.model_pointer import ModelPointer
from stream.model_promoter import ModelPromoter, parse_model_update
from stream.model_updates import ModelWatcher

pytestmark = pytest.mark.integration

DOMAIN = "credit"


def _model(seed: int):
    return build(
        "qrcnn-lstm-cross",
        5,
        3,
        (),
        seed=seed,
        hidden=8,
        channels=8,
        summary_dim=8,
        d_k=8,
        profile_hidden=8,
        head_hidden=8,
    )


def _probe(model) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        out = model.eval()(
            torch.randn(3, 4, 5, generator=g),
            torch.ones(3, 4, dtype=torch.bool),
            torch.randn(3, 3, generator=g),
        )
    return out.probability


@pytest.fixture
def world(tmp_path, redis_client, redis_prefix, new_topic, kafka_bootstrap):
    registry = ModelRegistry(tmp_path / "models")
    models = [_model(seed) for seed in range(3)]
    for m in models:
        registry.publish(DOMAIN, m, {"encoder": {"domain": DOMAIN, "id": "enc-1"}})
    pointer = ModelPointer(redis_client, redis_prefix.rstrip(":"), 50, tmp_path / "models" / "live")
    topic = new_topic(prefix="it-model-updates")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap.split(","), acks="all")
    promoter = ModelPromoter(registry, pointer, producer, topic)
    promoter.promote(DOMAIN, "v0001", "initial", expected=None)
    yield registry, pointer, promoter, topic, models
    producer.close()


def _watcher(world, kafka_bootstrap, check_every_s=0.5):
    registry, pointer, _, topic, _ = world
    return ModelWatcher(
        registry,
        pointer,
        [DOMAIN],
        load=lambda v: registry.load(v.domain, v.version)[0],
        kafka_config={"bootstrap_servers": kafka_bootstrap.split(",")},
        topic=topic,
        check_every_s=check_every_s,
    )


def _announcements(topic: str, kafka_bootstrap: str, expected: int):
    """Every announcement: waits for ``expected`` of them, then 1 s more for any extra."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap.split(","), auto_offset_reset="earliest"
    )
    got = []
    deadline = time.monotonic() + 20
    while len(got) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got += [(r.key, parse_model_update(r.value)) for r in records]
    for records in consumer.poll(timeout_ms=1000).values():
        got += [(r.key, parse_model_update(r.value)) for r in records]
    consumer.close()
    return got


def _corrupt(entry: ModelVersion) -> None:
    weights = entry.path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))


def _wait(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_promote__moves_the_pointer_then_announces(world, kafka_bootstrap):
    _, pointer, promoter, topic, _ = world
    promoter.promote(DOMAIN, "v0002", "promoted: better AUC", expected="v0001")
    assert pointer.current(DOMAIN) == "v0002"
    rolled = promoter.rollback(DOMAIN)
    assert rolled.version == "v0001" and rolled.reason == "rollback from v0002"
    assert [c.version for c in pointer.history(DOMAIN)] == ["v0001", "v0002", "v0001"]
    got = _announcements(topic, kafka_bootstrap, expected=3)
    assert [(k, u.version, u.previous) for k, u in got] == [
        (b"credit", "v0001", None),
        (b"credit", "v0002", "v0001"),
        (b"credit", "v0001", "v0002"),
    ]
    assert got[1][1].reason == "promoted: better AUC"


def test_promote__refuses_a_corrupted_version_and_moves_nothing(world, kafka_bootstrap):
    registry, pointer, promoter, topic, _ = world
    _corrupt(registry.get(DOMAIN, "v0002"))
    with pytest.raises(CorruptVersion):
        promoter.promote(DOMAIN, "v0002", "promote a broken file")
    assert pointer.current(DOMAIN) == "v0001"
    assert len(pointer.history(DOMAIN)) == 1
    assert [u.version for _, u in _announcements(topic, kafka_bootstrap, expected=1)] == ["v0001"]


def test_watcher__loads_an_announced_version_in_the_background(world, kafka_bootstrap):
    _, _, promoter, _, models = world
    watcher = _watcher(world, kafka_bootstrap, check_every_s=60.0)  # only the message wakes it
    try:
        initial = watcher.start()
        assert initial[DOMAIN].version == "v0001"
        assert torch.equal(_probe(initial[DOMAIN].value), _probe(models[0]))
        assert watcher.take() == {}
        time.sleep(1.0)  # the watcher's consumer is positioned at the end before we announce
        promoter.promote(DOMAIN, "v0002", "promoted")
        ready: dict = {}

        def loaded() -> bool:
            ready.update(watcher.take())
            return bool(ready)

        _wait(loaded)
        assert ready[DOMAIN].version == "v0002"
        assert torch.equal(_probe(ready[DOMAIN].value), _probe(models[1]))
        assert watcher.take() == {}  # handed over once
    finally:
        watcher.close()


def test_watcher__refuses_a_file_corrupted_after_promotion_and_keeps_serving(
    world, kafka_bootstrap
):
    registry, _, promoter, _, _ = world
    watcher = _watcher(world, kafka_bootstrap)
    refused = []
    watcher.on_refused = lambda domain, version, exc: refused.append((version, type(exc)))
    labels = {"domain": DOMAIN, "result": "refused"}
    before = REGISTRY.get_sample_value("crmrisk_model_reloads_total", labels) or 0.0
    try:
        watcher.start()
        promoter.promote(DOMAIN, "v0003", "promoted")
        _corrupt(registry.get(DOMAIN, "v0003"))  # the disk goes bad after the promotion
        _wait(lambda: refused)
        assert refused == [("v0003", CorruptVersion)]
        assert watcher.take() == {}
        assert watcher.live(DOMAIN) == "v0001"
        assert REGISTRY.get_sample_value("crmrisk_model_reloads_total", labels) == before + 1
        time.sleep(1.5)  # several pointer checks later: not retried in a loop
        assert len(refused) == 1
        promoter.promote(DOMAIN, "v0002", "roll forward to a good file")
        _wait(lambda: watcher.live(DOMAIN) == "v0002")
        assert watcher.take()[DOMAIN].version == "v0002"
    finally:
        watcher.close()


def test_watcher__refuses_a_version_with_a_different_encoder(world, kafka_bootstrap):
    registry, pointer, _, _, _ = world
    other = registry.publish(DOMAIN, _model(9), {"encoder": {"domain": DOMAIN, "id": "enc-2"}})
    watcher = _watcher(world, kafka_bootstrap, check_every_s=60.0)
    try:
        watcher.start()
        pointer.set(DOMAIN, other.version, "operator")
        assert watcher.check() == []
        assert watcher.live(DOMAIN) == "v0001"
    finally:
        watcher.close()


def test_watcher__check_hands_over_a_pointer_move_without_an_announcement(world, kafka_bootstrap):
    _, pointer, _, _, _ = world
    watcher = _watcher(world, kafka_bootstrap, check_every_s=60.0)
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
    watcher = _watcher(world, kafka_bootstrap, check_every_s=60.0)
    try:
        watcher.start()
        assert watcher.take_trials() == {}
        trial = promoter.start_trial(DOMAIN, "v0002", "canary", "try it", percent=10)
        assert (trial.mode, trial.version, trial.percent) == ("canary", "v0002", 10.0)
        assert pointer.trial(DOMAIN) == trial
        assert watcher.check() == ["credit/v0002 (canary)"]
        loaded = watcher.take_trials()[DOMAIN]
        assert loaded.trial == trial and loaded.model.version == "v0002"
        assert torch.equal(_probe(loaded.model.value), _probe(models[1]))
        assert watcher.live(DOMAIN) == "v0001"  # the champion is untouched
        promoter.promote(DOMAIN, "v0002", "canary passed")
        assert pointer.trial(DOMAIN) is None
        watcher.check()
        assert watcher.take_trials() == {DOMAIN: None}  # handed over as ended
        updates = [u for _, u in _announcements(topic, kafka_bootstrap, expected=4)]
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


def test_trial__refused_for_the_live_version_another_encoder_or_an_unknown_version(world):
    registry, pointer, promoter, _, _ = world
    other = registry.publish(DOMAIN, _model(9), {"encoder": {"domain": DOMAIN, "id": "enc-2"}})
    with pytest.raises(ValueError, match="already live"):
        promoter.start_trial(DOMAIN, "v0001", "shadow", "x")
    with pytest.raises(ValueError, match="encodes events differently"):
        promoter.start_trial(DOMAIN, other.version, "shadow", "x")
    with pytest.raises(LookupError, match="not in the registry"):
        promoter.start_trial(DOMAIN, "v0099", "shadow", "x")
    with pytest.raises(ValueError, match="percent"):
        promoter.start_trial(DOMAIN, "v0002", "canary", "x", percent=100)
    assert pointer.trial(DOMAIN) is None


def test_trial__rolled_back_ends_it_and_says_why(world, kafka_bootstrap):
    _, pointer, promoter, _, _ = world
    promoter.start_trial(DOMAIN, "v0002", "shadow", "compare")
    watcher = _watcher(world, kafka_bootstrap, check_every_s=60.0)
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
