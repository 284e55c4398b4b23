"""Alerts carry reason codes, computed for the alerts only, equal to an offline computation."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import torch

from crmrisk import model
from crmrisk.lifecycle import save_checkpoint
from crmrisk.model.attribution import Explainer
from crmrisk.model.features import FeatureEncoder, FeatureSpec, FieldRole
from crmrisk.stream.alert_policy import AlertPolicy
from crmrisk.stream.alerting import Alerter, ProcessAlerts
from crmrisk.stream.events import RiskAlert, RiskScore
from crmrisk.stream.models import DomainModel, load_domain_model
from crmrisk.stream.scorer import Scorer
from tests.stream.conftest import Log, Record, pipeline

SPEC = FeatureSpec(
    "credit",
    (FieldRole("amount", "numeric"), FieldRole("channel", "categorical")),
    (FieldRole("limit", "numeric"), FieldRole("segment", "categorical")),
    min_count=1,
)
CUSTOMERS = 6


def _encoder() -> FeatureEncoder:
    fields = [{"amount": float(i), "channel": ["web", "branch", "phone"][i % 3]} for i in range(60)]
    profiles = [{"limit": float(v), "segment": s} for v, s in ((1, "a"), (9, "b"), (5, "a"))]
    return FeatureEncoder.fit(SPEC, ["bill"] * 60, fields, profiles)


def _kit(bias: float, reasons: int, net: torch.nn.Module | None = None) -> DomainModel:
    encoder = _encoder()
    if net is None:
        net = model.build("qrcnn-lstm-cross", encoder.event_dim, encoder.profile_dim, (), seed=3,
                          members=2, channels=8, hidden=8, summary_dim=8, d_k=8,
                          profile_hidden=8, head_hidden=8)  # fmt: skip
    net.set_calibration(1.0, bias)
    explainer = None
    if reasons:
        explainer = Explainer(net, encoder, steps=32, top=reasons, device=torch.device("cpu"))
    scorer = Scorer(
        net, version=f"b{bias}", event_dim=encoder.event_dim, profile_dim=encoder.profile_dim,
        quantiles=(), device=torch.device("cpu"), top_events=2, explainer=explainer,
        precision="fp32", cuda_graphs=False,
    )  # fmt: skip
    return DomainModel("credit", scorer.version, encoder, scorer, {})


def _event(customer: str, day: int, kind: str = "bill", **fields) -> dict:
    return {
        "event_id": f"{customer}-{day}",
        "customer_id": customer,
        "event_time": f"2024-01-{day:02d}T00:00:00Z",
        "domain": "credit",
        "kind": kind,
        "fields": fields,
    }


def _history(rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """Per customer: a profile and three bills (quiet), then one more bill each (alerting)."""
    first, last = [], []
    for c in range(CUSTOMERS):
        customer = f"c{c}"
        first.append(_event(customer, 1, "profile", limit=float(rng.integers(1, 10)),
                            segment=["a", "b"][c % 2]))  # fmt: skip
        for day in (2, 3, 4):
            channel = ["web", "branch", "phone"][int(rng.integers(0, 3))]
            first.append(_event(customer, day, amount=float(rng.integers(0, 60)), channel=channel))
        last.append(_event(customer, 5, amount=float(rng.integers(0, 60)), channel="web"))
    return first, last


def _records(documents: list[dict], start: int) -> list[Record]:
    return [
        Record("events", 0, start + i, d["customer_id"].encode(), json.dumps(d).encode(), 1000)
        for i, d in enumerate(documents)
    ]


def _run(reasons: int, counted: list[int] | None = None, loud=None, **kw):
    """Quiet history with a low-scoring model, then the same weights biased up: one alert per
    customer on its fifth event, with a window of four events and a profile."""
    first, last = _history(np.random.default_rng(0))
    quiet = _kit(-20.0, reasons)
    if loud is None:
        loud = _kit(1.5, reasons, net=quiet.scorer.explainer.model if reasons else None)
    if counted is not None and loud.scorer.explainer is not None:
        explain = loud.scorer.explain_windows

        def counting(windows):
            counted.append(len(windows))
            return explain(windows)

        loud.scorer.explain_windows = counting
    batches = [_records(first, 0), _records(last, len(first))]
    p, _, sink = pipeline(Log(), batches, model_kit=quiet, window=8, **kw)

    async def go() -> None:
        await p.step()
        await p.drain()
        assert not sink.on("alerts")
        p.swap("credit", loud)
        await p.ready()  # the worker does not wait: until loaded, its thread explains
        await p.step()
        await p.settle()

    try:
        asyncio.run(go())
    finally:
        asyncio.run(p.close())
    alerts = [RiskAlert.model_validate_json(v) for v in sink.on("alerts")]
    scores = [RiskScore.model_validate_json(v) for v in sink.on("scores")]
    return alerts, scores, first + last, loud


def _offline(kit: DomainModel, documents: list[dict], customer: str, steps: int, top: int):
    """The same explanation from the raw events, without the stream: encode, pad, attribute."""
    mine = [d for d in documents if d["customer_id"] == customer]
    profile = kit.encoder.encode_profile(next(d for d in mine if d["kind"] == "profile")["fields"])
    bills = [d for d in mine if d["kind"] != "profile"]
    events = np.stack([kit.encoder.encode_event(d["kind"], d["fields"]) for d in bills])
    explainer = Explainer(kit.scorer.explainer.model, kit.encoder, steps=steps, top=top,
                          device=torch.device("cpu"))  # fmt: skip
    (explanation,) = explainer.explain(
        events[None], np.ones((1, len(bills)), dtype=bool), profile[None]
    )
    return explanation, [d["event_id"] for d in bills]


def test_alerts__carry_reasons_equal_to_an_offline_computation():
    counted: list[int] = []
    alerts, scores, documents, kit = _run(reasons=4, counted=counted)
    assert len(alerts) == CUSTOMERS
    assert counted == [CUSTOMERS]  # one batched pass, for the alerts only
    assert all(not s.reasons for s in scores)  # scores do not pay for reasons
    for alert in alerts:
        offline, ids = _offline(kit, documents, alert.customer_id, steps=32, top=4)
        assert alert.baseline_probability == pytest.approx(offline.baseline_probability, abs=1e-6)
        assert len(alert.reasons) == 4
        for code, want in zip(alert.reasons, offline.reasons, strict=True):
            assert (code.field, code.value) == (want.field, want.value)
            if want.position is None:
                assert code.source == "profile" and code.event_id is None
            else:
                assert code.source == "event" and code.event_id == ids[want.position]
                assert code.kind == "bill"
            assert code.contribution == pytest.approx(want.contribution, abs=1e-5)
            assert code.text.startswith(code.field) and code.value in code.text
        assert "for a typical customer with this history" in alert.reason


def test_alerts__reasons_differ_per_customer_and_name_values():
    alerts, _, _, _ = _run(reasons=3)
    texts = {tuple(c.text for c in a.reasons) for a in alerts}
    assert len(texts) == len(alerts)
    assert {c.field for a in alerts for c in a.reasons} <= {"amount", "channel", "limit", "segment"}


def test_alerts__without_an_explainer_have_no_reasons():
    alerts, _, _, _ = _run(reasons=0)
    assert len(alerts) == CUSTOMERS
    assert all(not a.reasons and a.baseline_probability is None for a in alerts)
    assert all("typical customer" not in a.reason for a in alerts)


def test_alerts__explained_in_a_process_equal_those_explained_in_a_thread(tmp_path):
    """The worker's default alert stage: the same reason codes, from the checkpoint the scorer
    names, computed in a spawned process (so the scoring loop never waits for the GIL)."""
    in_thread, _, _, kit = _run(reasons=4)
    net = kit.scorer.explainer.model
    save_checkpoint(tmp_path / "loud", net, {"version": "loud", "encoder": kit.encoder.to_dict()})
    loud = load_domain_model(tmp_path / "loud", "credit", torch.device("cpu"), 2, 4, 32)
    stage = ProcessAlerts(Alerter(AlertPolicy(0.5, 0.1, 0.0), {"credit": "default"}), 2, 4, 32)
    stage.warm({"credit": loud.scorer.source})
    asyncio.run(stage.ready())

    def not_here(windows):
        raise AssertionError("explained in the worker, not in the alert process")

    loud.scorer.explain_windows = not_here
    in_process, _, _, _ = _run(reasons=4, loud=loud, alert_stage=stage)
    assert len(in_process) == len(in_thread) == CUSTOMERS
    for a, b in zip(in_process, in_thread, strict=True):
        assert (a.alert_id, a.model_version, a.risk_type) == (b.alert_id, "loud", b.risk_type)
        assert a.reason.split(". ")[0] == b.reason.split(". ")[0]  # the threshold sentence
        assert a.probability == pytest.approx(b.probability, abs=1e-6)
        assert [(c.field, c.value, c.event_id) for c in a.reasons] == [
            (c.field, c.value, c.event_id) for c in b.reasons
        ]
        for x, y in zip(a.reasons, b.reasons, strict=True):
            assert x.contribution == pytest.approx(y.contribution, abs=1e-5)


def test_alerts__of_a_scorer_without_a_checkpoint_are_explained_in_a_thread():
    stage = ProcessAlerts(Alerter(AlertPolicy(0.5, 0.1, 0.0), {"credit": "default"}), 2, 3, 32)
    alerts, _, _, _ = _run(reasons=3, alert_stage=stage)
    assert len(alerts) == CUSTOMERS and all(len(a.reasons) == 3 for a in alerts)
