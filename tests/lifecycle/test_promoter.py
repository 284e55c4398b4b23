"""Promotion against the real broker and Redis: the pointer moves, then the announcement."""

import pytest

from crmrisk.lifecycle import CorruptVersion
from tests.lifecycle.conftest import DOMAIN, announcements, corrupt, tiny_model

pytestmark = pytest.mark.integration


def test_promote__moves_the_pointer_then_announces(world, kafka_bootstrap):
    _, pointer, promoter, topic, _ = world
    promoter.promote(DOMAIN, "v0002", "promoted: better AUC", expected="v0001")
    assert pointer.current(DOMAIN) == "v0002"
    rolled = promoter.rollback(DOMAIN)
    assert rolled.version == "v0001" and rolled.reason == "rollback from v0002"
    assert [c.version for c in pointer.history(DOMAIN)] == ["v0001", "v0002", "v0001"]
    got = announcements(topic, kafka_bootstrap, expected=3)
    assert [(k, u.version, u.previous) for k, u in got] == [
        (b"credit", "v0001", None),
        (b"credit", "v0002", "v0001"),
        (b"credit", "v0001", "v0002"),
    ]
    assert got[1][1].reason == "promoted: better AUC"


def test_promote__refuses_a_corrupted_version_and_moves_nothing(world, kafka_bootstrap):
    registry, pointer, promoter, topic, _ = world
    corrupt(registry.get(DOMAIN, "v0002"))
    with pytest.raises(CorruptVersion):
        promoter.promote(DOMAIN, "v0002", "promote a broken file")
    assert pointer.current(DOMAIN) == "v0001"
    assert len(pointer.history(DOMAIN)) == 1
    assert [u.version for _, u in announcements(topic, kafka_bootstrap, expected=1)] == ["v0001"]


def test_trial__refused_for_the_live_version_another_encoder_or_an_unknown_version(world):
    registry, pointer, promoter, _, _ = world
    other = registry.publish(DOMAIN, tiny_model(9), {"encoder": {"domain": DOMAIN, "id": "enc-2"}})
    with pytest.raises(ValueError, match="already live"):
        promoter.start_trial(DOMAIN, "v0001", "shadow", "x")
    with pytest.raises(ValueError, match="encodes events differently"):
        promoter.start_trial(DOMAIN, other.version, "shadow", "x")
    with pytest.raises(LookupError, match="not in the registry"):
        promoter.start_trial(DOMAIN, "v0099", "shadow", "x")
    with pytest.raises(ValueError, match="percent"):
        promoter.start_trial(DOMAIN, "v0002", "canary", "x", percent=100)
    assert pointer.trial(DOMAIN) is None
