"""Whole incremental refreshes (the policy, gate and buffer have their own test files).

The whole-refresh tests use a small synthetic domain whose label depends on the events, a tiny
model and a registry in a temporary directory; the pointer is the trainer's injected callables
here (the real Redis pointer is wired in tests/integration/test_model_reload.py).
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import torch

from crmrisk.lifecycle.registry import ModelRegistry
from crmrisk.model import build
from crmrisk.model.features import FeatureEncoder, FeatureSpec, FieldRole
from crmrisk.stream.events import CustomerEvent, Outcome
from crmrisk.training.example_buffer import ExampleBuffer
from crmrisk.training.fine_tune import FineTune
from crmrisk.training.fit import FitConfig, fit
from crmrisk.training.incremental_trainer import IncrementalTrainer
from crmrisk.training.point_in_time import EventLog, build_examples, encode_examples
from crmrisk.training.promotion_rule import Decision, PromotionRule
from crmrisk.training.refresh_policy import RefreshPolicy

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DOMAIN = "synth"
WINDOW = 6


# -- whole refreshes on a synthetic domain -----------------------------------------------------
def _txn(customer: str, i: int, amount: float) -> CustomerEvent:
    return CustomerEvent(
        event_id=f"{customer}-e{i}",
        customer_id=customer,
        event_time=T0 + timedelta(hours=i),
        domain=DOMAIN,
        kind="txn" if i % 2 else "payment",
        fields={"amount": round(amount, 3)},
    )


def _label(customer: str, hours: float, label: int) -> Outcome:
    return Outcome(
        customer_id=customer,
        domain=DOMAIN,
        as_of=T0 + timedelta(hours=hours),
        observed_at=T0 + timedelta(days=60),
        label=label,
    )


def _customers(start: int, count: int, seed: int):
    """Events (5 per customer, plus one after as_of) and labels.

    The label follows the *trend* of the amounts, hidden under a large per-customer level, so
    an untrained network ranks customers at chance and only a trained one finds the signal.
    """
    rng = np.random.default_rng(seed)
    events, labels = [], []
    for k in range(start, start + count):
        customer = f"s{k:05d}"
        level, trend = rng.normal(scale=2.0), rng.normal()
        amounts = level + trend * (np.arange(5) - 2) + rng.normal(scale=0.5, size=5)
        events += [_txn(customer, i, a) for i, a in enumerate(amounts)]
        events.append(_txn(customer, 99, 50.0))  # after as_of: must never be used
        events.append(
            CustomerEvent(
                event_id=f"{customer}-p",
                customer_id=customer,
                event_time=T0,
                domain=DOMAIN,
                kind="profile",
                fields={"segment": str(rng.choice(["a", "b"]))},
            )
        )
        labels.append(_label(customer, 10, int(trend + rng.normal(scale=0.5) > 0.5)))
    return events, labels


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Tiny models on a shared 2-core machine: one thread avoids oversubscription.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoder() -> FeatureEncoder:
    events, _ = _customers(0, 300, seed=0)
    spec = FeatureSpec(
        DOMAIN,
        (FieldRole("amount", "numeric", "none"),),
        (FieldRole("segment", "categorical"),),
    )
    txns = [e for e in events if e.kind != "profile"]
    profiles = [e.fields for e in events if e.kind == "profile"]
    return FeatureEncoder.fit(spec, [e.kind for e in txns], [e.fields for e in txns], profiles)


@pytest.fixture
def setup(tmp_path, encoder):
    """A registry holding a weak champion v0001, and a trainer wired to a live-version dict."""
    torch.manual_seed(0)
    events, labels = _customers(0, 300, seed=0)
    log = EventLog(50)
    log.add_many(events)
    arrays = encode_examples(build_examples(log, labels, WINDOW), encoder, WINDOW)
    model = build(
        "qrcnn-lstm-cross",
        encoder.event_dim,
        encoder.profile_dim,
        (),
        seed=0,
        hidden=8,
        channels=8,
        summary_dim=8,
        d_k=8,
        profile_hidden=8,
        head_hidden=8,
    )
    fit(
        model,
        arrays.take(np.arange(200)),
        arrays.take(np.arange(200, 300)),
        FitConfig(epochs=1, batch_size=64, learning_rate=1e-3, patience=1, seed=0),
    )
    registry = ModelRegistry(tmp_path)
    champion = registry.publish(DOMAIN, model, {"encoder": encoder.to_dict()})
    live = {DOMAIN: champion.version}
    promotions: list[tuple[str, str, str, str]] = []

    def promote(domain: str, version: str, reason: str, expected: str) -> None:
        assert live[domain] == expected
        promotions.append((domain, version, reason, expected))
        live[domain] = version

    trainer = IncrementalTrainer(
        DOMAIN,
        registry=registry,
        current=live.get,
        promote=promote,
        make_encoder=FeatureEncoder.from_dict,
        window=WINDOW,
        policy=RefreshPolicy(every_s=3600, every_labels=1000, min_labels=50),
        rule=PromotionRule(auc_tolerance=0.005, calibration_tolerance=0.03, min_holdout=100),
        tune=FineTune(
            epochs=4, batch_size=128, learning_rate=5e-3, patience=2, seed=0, device="cpu"
        ),
        buffer=ExampleBuffer(holdout_fraction=0.25, holdout_size=2000, replay_pool=500, seed=0),
        replay_sample=100,
        history_limit=50,
    )
    return trainer, registry, live, promotions


def _feed(trainer, start, count, seed):
    events, labels = _customers(start, count, seed)
    for e in events:
        trainer.observe_event(e)
    for o in labels:
        trainer.observe_outcome(o)


def test_refresh__promotes_a_better_challenger_and_records_lineage(setup):
    trainer, registry, live, promotions = setup
    _feed(trainer, 1000, 1200, seed=1)
    assert trainer.due() == "labels: 1200 new >= 1000"
    report = trainer.refresh("labels")
    assert report.decision.promote, report.decision.reason
    assert report.challenger.auc >= report.champion.auc - 0.005
    assert live[DOMAIN] == report.version == "v0002"
    assert promotions == [(DOMAIN, "v0002", report.decision.reason, "v0001")]
    entry = registry.get(DOMAIN, "v0002")
    assert entry.parent == "v0001"
    assert entry.decision["promoted"] is True
    assert entry.metrics["holdout_auc"] == pytest.approx(report.challenger.auc)
    assert entry.data_window["new_rows"] == report.new_rows > 0
    assert entry.manifest["encoder"] == registry.get(DOMAIN, "v0001").manifest["encoder"]
    assert trainer.due() is None  # the labels were consumed


def test_refresh__rejects_a_challenger_trained_on_shuffled_labels(setup):
    trainer, registry, live, promotions = setup
    _feed(trainer, 1000, 1200, seed=1)
    assert trainer.refresh("labels").decision.promote  # a good champion first: v0002
    _feed(trainer, 3000, 1200, seed=2)
    rng = np.random.default_rng(0)

    def shuffle(examples):
        labels = rng.permutation([x.label for x in examples])
        return [replace(x, label=int(y)) for x, y in zip(examples, labels, strict=True)]

    # Fine-tuning on shuffled labels mostly recalibrates the champion (it starts from good
    # weights and early-stops); a model trained from scratch on them has no signal at all.
    report = trainer.refresh("canary", transform=shuffle, from_scratch=True)
    assert not report.decision.promote
    assert report.decision.reason.startswith("rejected:")
    assert live[DOMAIN] == "v0002" and len(promotions) == 1
    rejected = registry.get(DOMAIN, report.version)
    assert rejected.decision == {
        **rejected.decision,
        "promoted": False,
        "reason": report.decision.reason,
        "trigger": "canary",
    }
    assert rejected.parent == "v0002"


def test_refresh__skips_without_a_held_out_slice(setup):
    trainer, registry, _live, _ = setup
    trainer.buffer.holdout_fraction = 0.0
    _feed(trainer, 1000, 100, seed=1)
    report = trainer.refresh("timer")
    assert report.decision == Decision(False, "skipped: 100 new training examples, 0 held out")
    assert report.version is None and [v.version for v in registry.list(DOMAIN)] == ["v0001"]


def test_refresh__never_trains_on_events_after_as_of(setup, encoder):
    trainer, *_ = setup
    _feed(trainer, 1000, 50, seed=1)
    log, labels = trainer.log, [o for o, _ in trainer.pending]
    examples = build_examples(log, labels, WINDOW)
    assert examples and all(e.event_time <= x.as_of for x in examples for e in x.events)
    arrays = encode_examples(examples, encoder, WINDOW)
    assert arrays.mask.sum(axis=1).max() == 5  # the sixth (future) event is not there


def test_refresh__a_failed_promotion_keeps_the_champion_and_says_why(setup):
    trainer, _, live, _ = setup

    def refuse(domain, version, reason, expected):
        raise RuntimeError(f"{domain}: expected current version {expected!r}, found 'v0009'")

    trainer._promote = refuse
    _feed(trainer, 1000, 1200, seed=1)
    report = trainer.refresh("labels")
    assert not report.decision.promote
    assert "promotion failed" in report.decision.reason and "v0009" in report.decision.reason
    assert live[DOMAIN] == "v0001"
