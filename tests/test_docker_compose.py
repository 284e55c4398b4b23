"""docker-compose.yml checked without Docker: structure, ports and environment vs. Settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from crmrisk.settings import (
    KafkaSettings,
    RedisSettings,
    ScoringSettings,
    ServicesSettings,
    Settings,
)

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
PROJECT_SERVICES = ("ingest", "infer", "trainer")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port, from short ("[ip:]host:container") or long syntax."""
    ports: dict[int, int] = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports[int(entry["target"])] = int(entry["published"])
        else:
            *_, host, container = str(entry).split(":")
            ports[int(container.split("/")[0])] = int(host)
    return ports


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # ["NAME=value", ...]
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def _field_path(variable: str) -> list[str]:
    """RISK_KAFKA__BOOTSTRAP_SERVERS -> ["kafka", "bootstrap_servers"]."""
    return variable.removeprefix("RISK_").lower().split("__")


def _resolve(model: type[BaseModel], path: list[str]) -> bool:
    """True when ``path`` names a real (nested) field of ``model``."""
    head, *rest = path
    field = model.model_fields.get(head)
    if field is None:
        return False
    if not rest:
        return True
    section = field.annotation
    return isinstance(section, type) and issubclass(section, BaseModel) and _resolve(section, rest)


def test_compose__parses_and_every_service_is_runnable(compose):
    services = compose["services"]
    assert {"kafka", "redis", *PROJECT_SERVICES} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name}: neither image nor build"
        assert service.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"


def test_compose__uses_the_official_images(compose):
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.1")
    assert compose["services"]["redis"]["image"].startswith("redis:7")


def test_compose__project_services_build_from_an_existing_dockerfile(compose):
    for name in PROJECT_SERVICES:
        build = compose["services"][name]["build"]
        context = ROOT / build["context"]
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        assert "pip install" in dockerfile.read_text()


def test_compose__ports_agree_with_settings_defaults(compose):
    services = compose["services"]
    # Section defaults straight from the models: the process environment plays no part.
    kafka_port = int(KafkaSettings().bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    redis_port = int(RedisSettings().url.rsplit(":", 1)[1].split("/")[0])
    assert _published(services["kafka"]).get(kafka_port) == kafka_port
    assert _published(services["redis"]).get(redis_port) == redis_port
    assert kafka_port == ServicesSettings().kafka_port
    assert redis_port == ServicesSettings().redis_port
    metrics_port = ScoringSettings().metrics_port
    host_ports = [port for s in services.values() for port in _published(s).values()]
    assert len(host_ports) == len(set(host_ports)), "two services publish one host port"
    for name in PROJECT_SERVICES:
        service = services[name]
        assert metrics_port in _published(service), f"{name}: metrics port not published"
        assert f":{metrics_port}/health" in " ".join(service["healthcheck"]["test"])
        # The port the worker listens on is what the environment says, or the default.
        env = _environment(service)
        assert int(env.get("RISK_SCORING__METRICS_PORT", metrics_port)) == metrics_port


def test_compose__risk_variables_are_settings_fields(compose):
    for name, service in compose["services"].items():
        env = {k: v for k, v in _environment(service).items() if k.startswith("RISK_")}
        unknown = [variable for variable in env if not _resolve(Settings, _field_path(variable))]
        assert not unknown, f"{name}: not Settings fields: {unknown}"
        nested: dict[str, Any] = {}
        for variable, value in env.items():
            *sections, leaf = _field_path(variable)
            target = nested
            for section in sections:
                target = target.setdefault(section, {})
            target[leaf] = value
        # Validated like the environment would be (types, literals, ranges), but from this
        # dict only: no .env file, and a prefix nothing in the process environment uses.
        settings = Settings(_env_file=None, _env_prefix="CRMRISK_COMPOSE_CHECK_", **nested)
        for variable, value in env.items():
            resolved: Any = settings
            for part in _field_path(variable):
                resolved = getattr(resolved, part)
            assert str(resolved) == value, f"{name}: {variable}={value} read as {resolved!r}"


def test_compose__workers_reach_kafka_and_redis_inside_the_network(compose):
    services = compose["services"]
    advertised = _environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    for name in PROJECT_SERVICES:
        env = _environment(services[name])
        assert f"//{env['RISK_KAFKA__BOOTSTRAP_SERVERS']}" in advertised
        assert env["RISK_REDIS__URL"].startswith("redis://redis:")
        assert set(services[name]["depends_on"]) >= {"kafka", "redis"}


def test_compose__redis_persists_its_state_on_a_volume_and_never_evicts(compose):
    redis = compose["services"]["redis"]
    command = [str(part) for part in redis["command"]]
    options = dict(zip(command[1::2], command[2::2], strict=False))
    assert options["--appendonly"] == "yes" and options["--appendfsync"] == "everysec"
    assert options["--maxmemory-policy"] == "noeviction"
    mounts = {m.split(":")[1]: m.split(":")[0] for m in redis["volumes"]}
    assert mounts["/data"] in compose["volumes"]  # a named volume: survives the container
