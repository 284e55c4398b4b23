"""The built-in datasets through the spec mechanism give the records the hand-written adapters
gave: sha256 of every record, the info and the feature spec of the vendored files at seed 0,
pinned with the adapters as they were before they became spec documents (commit ce90099)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from crmrisk.training.datasets import bank, credit, telco

DATA = Path(__file__).resolve().parents[3] / "data"


def digest(data) -> str:
    """sha256 over every record of every split (in order), then the info and the feature spec."""
    h = hashlib.sha256()
    for name in ("train", "val", "test"):
        for r in data.splits()[name]:
            row = (
                r.customer_id,
                r.profile,
                [e.model_dump(mode="json") for e in r.events],
                r.label,
                r.target,
                r.split,
                r.as_of.isoformat(),
            )
            h.update(json.dumps(row, sort_keys=True, default=str).encode())
    h.update(json.dumps(data.info, sort_keys=True, default=str).encode())
    h.update(json.dumps(data.spec.to_dict(), sort_keys=True, default=str).encode())
    h.update(json.dumps([data.domain, data.has_target]).encode())
    return h.hexdigest()


PINNED = {
    ("credit", ()): ("06246f7ef62537fcc8ca37b79948dfbc318ea34517d78177cc4ffc39a2f44f35"),
    ("telco", ()): ("635d9002776ffc5276f0c9ed5fda77696f1390ae6710f963b1369b53451cf2ab"),
    ("bank", (("split", "time"),)): (
        "76778a4d05ce244a74507864c64052040f9710e2ee6c825971c585de56cb71be"
    ),
    ("bank", (("split", "time"), ("include_duration", True))): (
        "b2bb6232f2a3152068732e7c3ef3028ec0848bd3a2c6657b7fdd354d9d163c48"
    ),
    ("bank", (("split", "time"), ("val", "random"))): (
        "718cd3bb7c6f7afeb644a3249ac524f232f1894adaae3f835730aaad81b25721"
    ),
    ("bank", (("split", "random"),)): (
        "ebc34168c5b3f35e13d454738699cb1b57dca57d0e66ab4f63a5effb68657399"
    ),
    ("bank", (("split", "random"), ("include_duration", True))): (
        "489082db42c10d252e797ac9a2d158fa1170efe8404b386bd7a5f4c5a0320cd8"
    ),
}
LOADERS = {"credit": credit.load, "telco": telco.load, "bank": bank.load}


@pytest.mark.parametrize(("domain", "options"), list(PINNED), ids=lambda v: str(v))
def test_vendored_records_info_and_spec_are_unchanged(domain, options):
    data = LOADERS[domain](DATA, 0, **dict(options))
    assert digest(data) == PINNED[(domain, options)]


def test_digest_sees_a_changed_record():
    """The pin can fail: one record with another label changes the digest."""
    data = telco.load(DATA, 0)
    first = data.test[0]
    changed = replace(data, test=[replace(first, label=1 - first.label), *data.test[1:]])
    assert digest(changed) != digest(data)
