"""The versioned model registry: atomic numbered versions, metadata, verification, refusal."""

import hashlib
import json
import os
import pickle
import threading

import pytest
import torch

from crmrisk.lifecycle.registry import CorruptVersion, ModelRegistry, RegistryError, VersionNotFound
from tests.lifecycle.conftest import tiny_model

EVENT_DIM, PROFILE_DIM = 5, 3


def _manifest() -> dict:
    return {"encoder": {"domain": "credit", "kind": "test"}, "metrics": {"val_auc": 0.7}}


def _scores(model) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    events = torch.randn(4, 6, EVENT_DIM, generator=g)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 3:] = False
    profile = torch.randn(4, PROFILE_DIM, generator=g)
    with torch.inference_mode():
        return model.eval()(events, mask, profile).probability


def test_publish__numbers_versions_and_records_lineage(tmp_path):
    registry = ModelRegistry(tmp_path)
    first = registry.publish("credit", tiny_model(0), _manifest())
    second = registry.publish(
        "credit",
        tiny_model(1),
        _manifest(),
        parent=first.version,
        data_window={"new_as_of": ["2005-09-30", "2005-10-31"]},
        metrics={"holdout_auc": 0.74},
        decision={"promoted": False, "reason": "rejected: AUC"},
    )
    assert (first.version, second.version) == ("v0001", "v0002")
    assert first.parent is None and second.parent == "v0001"
    assert first.metrics == {"val_auc": 0.7}  # defaults to the manifest's metrics
    assert second.metrics == {"holdout_auc": 0.74}
    assert second.data_window == {"new_as_of": ["2005-09-30", "2005-10-31"]}
    assert second.decision["reason"] == "rejected: AUC"
    assert second.manifest["encoder"] == _manifest()["encoder"]
    assert [v.version for v in registry.list("credit")] == ["v0001", "v0002"]
    assert registry.latest("credit").version == "v0002"
    assert registry.domains() == ["credit"]
    on_disk = json.loads((second.path / "manifest.json").read_text())
    weights = (second.path / "weights.safetensors").read_bytes()
    assert on_disk["sha256"] == hashlib.sha256(weights).hexdigest() == second.sha256
    assert on_disk["version"] == "v0002" and on_disk["domain"] == "credit"


def test_load__gives_the_same_scores_as_the_publishedtiny_model(tmp_path):
    registry = ModelRegistry(tmp_path)
    model = tiny_model(4)
    entry = registry.publish("credit", model, _manifest())
    loaded, got = registry.load("credit", entry.version)
    assert got.version == "v0001"
    assert torch.equal(_scores(model), _scores(loaded))


def test_verify__refuses_a_corrupted_weights_file(tmp_path):
    registry = ModelRegistry(tmp_path)
    entry = registry.publish("credit", tiny_model(), _manifest())
    weights = entry.path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptVersion, match="does not match"):
        registry.verify("credit", "v0001")
    with pytest.raises(CorruptVersion):
        registry.load("credit", "v0001")


def test_load__never_unpickles_even_when_the_hash_is_forged(tmp_path):
    registry = ModelRegistry(tmp_path)
    entry = registry.publish("credit", tiny_model(), _manifest())
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = pickle.dumps(Payload())
    (entry.path / "weights.safetensors").write_bytes(evil)
    manifest = json.loads((entry.path / "manifest.json").read_text())
    manifest["sha256"] = hashlib.sha256(evil).hexdigest()
    (entry.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptVersion):
        registry.load("credit", "v0001")
    assert not marker.exists()


def test_get__unknown_version_and_bad_names(tmp_path):
    registry = ModelRegistry(tmp_path)
    registry.publish("credit", tiny_model(), _manifest())
    with pytest.raises(VersionNotFound):
        registry.get("credit", "v0009")
    with pytest.raises(RegistryError):
        registry.get("credit", "../../etc")
    with pytest.raises(RegistryError):
        registry.list("Not A Domain")
    assert registry.list("telco") == []


def test_list__ignores_unfinished_staging_directories(tmp_path):
    registry = ModelRegistry(tmp_path)
    registry.publish("credit", tiny_model(), _manifest())
    staging = tmp_path / "versions" / "credit" / ".tmp-v0002-deadbeef"
    staging.mkdir()
    (staging / "weights.safetensors").write_bytes(b"half")
    assert [v.version for v in registry.list("credit")] == ["v0001"]
    assert registry.publish("credit", tiny_model(), _manifest()).version == "v0002"


def test_publish__concurrent_publishers_get_distinct_versions(tmp_path):
    registry = ModelRegistry(tmp_path)
    model = tiny_model()
    got: list[str] = []

    def publish() -> None:
        got.append(ModelRegistry(tmp_path).publish("credit", model, _manifest()).version)

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == ["v0001", "v0002", "v0003", "v0004"]
    assert [v.version for v in registry.list("credit")] == sorted(got)
    leftovers = [p for p in os.listdir(tmp_path / "versions" / "credit") if p.startswith(".tmp")]
    assert leftovers == []


def test_import_checkpoint__registers_an_existing_checkpoint(tmp_path):
    from crmrisk.lifecycle import save_checkpoint

    model = tiny_model(7)
    save_checkpoint(tmp_path / "trained", model, _manifest())
    entry = ModelRegistry(tmp_path / "reg").import_checkpoint("credit", tmp_path / "trained")
    loaded, _ = ModelRegistry(tmp_path / "reg").load("credit", entry.version)
    assert torch.equal(_scores(model), _scores(loaded))
