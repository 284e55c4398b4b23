"""Fixtures and helpers of the lifecycle tests: a pointer with its copy in real Redis
(``pointer``); a registry of three tiny versions, its pointer and a promoter announcing on a
fresh topic of the real broker (``world``)."""

import time

import pytest
import torch
from kafka import KafkaConsumer, KafkaProducer

from crmrisk.lifecycle import ModelPointer, ModelRegistry, ModelVersion, parse_model_update
from crmrisk.lifecycle.promoter import ModelPromoter
from crmrisk.lifecycle.watcher import ModelWatcher
from crmrisk.model import build

DOMAIN = "credit"


@pytest.fixture
def pointer(redis_client, redis_prefix, tmp_path):
    return ModelPointer(
        redis_client, key_prefix=redis_prefix.rstrip(":"), history_limit=3,
        directory=tmp_path / "live",
    )  # fmt: skip


def tiny_model(seed: int = 0):
    """A small model of 5 event and 3 profile features (seeded weights)."""
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


def probe(model) -> torch.Tensor:
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
    models = [tiny_model(seed) for seed in range(3)]
    for m in models:
        registry.publish(DOMAIN, m, {"encoder": {"domain": DOMAIN, "id": "enc-1"}})
    pointer = ModelPointer(redis_client, redis_prefix.rstrip(":"), 50, tmp_path / "models" / "live")
    topic = new_topic(prefix="it-model-updates")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap.split(","), acks="all")
    promoter = ModelPromoter(registry, pointer, producer, topic)
    promoter.promote(DOMAIN, "v0001", "initial", expected=None)
    yield registry, pointer, promoter, topic, models
    producer.close()


def watcher_of(world, kafka_bootstrap, check_every_s=0.5):
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


def announcements(topic: str, kafka_bootstrap: str, expected: int):
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


def corrupt(entry: ModelVersion) -> None:
    weights = entry.path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))


def wait_until(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
