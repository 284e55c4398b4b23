"""docker-compose.yml checked without Docker: structure, ports and environment vs. Settings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from pydantic import BaseModel, SecretStr

from crmrisk.dashboard.performance_metrics import PerformanceMetrics
from crmrisk.settings import (
    KafkaSettings,
    RedisSettings,
    ScoringSettings,
    ServicesSettings,
    Settings,
    TrainingSettings,
)
from crmrisk.stream.metrics import WorkerMetrics
from crmrisk.training.trial_metrics import TrialMetrics

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
PROJECT_SERVICES = ("ingest", "infer", "trainer", "guard")
SCRAPED = (*PROJECT_SERVICES, "dashboard")  # the dashboard serves its performance series
# The variable holding each scraped service's /metrics token.
TOKEN_VARIABLE = {name: "RISK_SCORING__METRICS_TOKEN" for name in PROJECT_SERVICES}
TOKEN_VARIABLE["dashboard"] = "RISK_DASHBOARD__TOKEN"


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


_VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def _interpolated(value: str) -> str:
    """``value`` as compose would pass it, with a sample for each ``${NAME...}`` it reads."""
    return _VARIABLE.sub(lambda m: f"sample-{m.group(1).lower()}-value", value)


def _reads(value: str) -> set[str]:
    """The host variables a compose value interpolates."""
    return {m.group(1) for m in _VARIABLE.finditer(value)}


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
        env = {variable: _interpolated(value) for variable, value in env.items()}
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
            if isinstance(resolved, SecretStr):
                resolved = resolved.get_secret_value()
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


# -- ops: Prometheus scrapes the workers, Grafana shows them --------------------------------

_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
_PROMQL_WORDS |= {"and", "or", "unless", "offset"}
_TARGET_LABELS = {"job", "instance"}  # Prometheus adds them to every scraped series


def _mounted(service: dict[str, Any], container_path: str) -> Path:
    """The host path a service's bind mount puts at ``container_path`` (or below it)."""
    for mount in service.get("volumes", []):
        source, target, *_ = str(mount).split(":")
        if source.startswith((".", "/")) and (
            container_path == target or container_path.startswith(target.rstrip("/") + "/")
        ):
            return ROOT / source / container_path.removeprefix(target).lstrip("/")
    raise AssertionError(f"nothing is mounted at {container_path}")


def _option(command: list[str], name: str, default: str) -> str:
    for part in command:
        if part.startswith(f"{name}="):
            return part.split("=", 1)[1]
    return default


def _listens_on(service_name: str, service: dict[str, Any]) -> int:
    """The metrics port the worker (or the dashboard) listens on in its container: its
    environment or command line, else the default."""
    env = _environment(service)
    if service_name == "dashboard":
        command = [str(part) for part in service["command"]]
        return int(command[command.index("--port") + 1]) if "--port" in command else 8050
    if service_name == "trainer":
        return int(env.get("RISK_TRAINING__METRICS_PORT", TrainingSettings().metrics_port))
    return int(env.get("RISK_SCORING__METRICS_PORT", ScoringSettings().metrics_port))


@pytest.fixture(scope="module")
def prometheus_config(compose) -> dict[str, Any]:
    prometheus = compose["services"]["prometheus"]
    command = [str(part) for part in prometheus["command"]]
    path = _option(command, "--config.file", "/etc/prometheus/prometheus.yml")
    return yaml.safe_load(_mounted(prometheus, path).read_text())


@pytest.fixture(scope="module")
def grafana_dashboards(compose) -> list[dict[str, Any]]:
    grafana = compose["services"]["grafana"]
    providers = _mounted(grafana, "/etc/grafana/provisioning/dashboards")
    dashboards = []
    for file in sorted(providers.glob("*.y*ml")):
        for provider in yaml.safe_load(file.read_text())["providers"]:
            folder = _mounted(grafana, provider["options"]["path"])
            found = sorted(folder.glob("*.json"))
            assert found, f"{file.name}: no dashboard JSON in {folder}"
            dashboards += [json.loads(path.read_text()) for path in found]
    assert dashboards, "no dashboard provider"
    return dashboards


def _registered() -> dict[str, tuple[str, set[str]]]:
    """Every series name the workers and the dashboard expose -> (its metric family, its label
    names), from the code's registries: a WorkerMetrics() registry, the process-wide one (model
    reloads, pointer errors, drift) as the worker command's imports fill it, and the dashboard's
    PerformanceMetrics() registry. Suffixes: prometheus_client's.
    """
    import crmrisk.commands.worker
    import crmrisk.lifecycle.watcher  # noqa: F401  (reloads, pointer errors: imported by the worker late)

    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count")}
    suffixes |= {"summary": ("_sum", "_count", "_created")}
    names: dict[str, tuple[str, set[str]]] = {}
    for registry in (
        WorkerMetrics().registry,
        TrialMetrics().registry,
        REGISTRY,
        PerformanceMetrics().registry,
    ):
        for collector in list(registry._collector_to_names):
            labels = set(getattr(collector, "_labelnames", ()))
            describe = getattr(collector, "describe", None)
            for family in describe() if describe else collector.collect():
                for suffix in suffixes.get(family.type, ("",)):
                    bucket = {"le"} if suffix == "_bucket" else set()
                    names[family.name + suffix] = (family.name, labels | bucket)
    return names


def _series_and_labels(expr: str) -> tuple[set[str], set[str]]:
    """Series names and grouping labels a PromQL expression uses (functions left out)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\$\w+", "", text)  # Grafana variables ($__rate_interval)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    matchers = {m for block in re.findall(r"\{([^}]*)\}", text) for m in re.findall(r"\w+", block)}
    text = re.sub(r"\{[^}]*\}", "", text)
    grouped = set()
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        grouped |= set(re.findall(r"\w+", clause))
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", text)
    series = set()
    for match in re.finditer(r"\b([A-Za-z_:][\w:]*)\b(\s*\()?", text):
        word, call = match.groups()
        if not call and word not in _PROMQL_WORDS:
            series.add(word)
    return series, (grouped | matchers) - _TARGET_LABELS


def _queries(dashboards: list[dict[str, Any]]) -> list[tuple[str, str]]:
    def walk(panels):
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    return [
        (panel["title"], target["expr"])
        for dashboard in dashboards
        for panel in walk(dashboard["panels"])
        for target in panel.get("targets", [])
    ]


def test_compose__prometheus_and_grafana_from_official_images(compose):
    services = compose["services"]
    assert services["prometheus"]["image"].startswith("prom/prometheus:v3")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    ready = " ".join(services["prometheus"]["healthcheck"]["test"])
    assert "127.0.0.1:9090/-/ready" in ready
    assert "127.0.0.1:3000/api/health" in " ".join(services["grafana"]["healthcheck"]["test"])
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name in ("prometheus", "grafana"):
        named = [str(m).split(":")[0] for m in services[name]["volumes"]]
        assert any(source in compose["volumes"] for source in named), f"{name}: no data volume"


def test_prometheus__scrapes_every_worker_where_it_listens(compose, prometheus_config):
    services = compose["services"]
    targets: dict[str, str] = {}
    for job in prometheus_config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"  # what stream.metrics serves
        for static in job["static_configs"]:
            for target in static["targets"]:
                targets[target] = job["job_name"]
    scraped = {}
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host in SCRAPED, f"{target}: not a worker or dashboard of docker-compose.yml"
        assert int(port) == _listens_on(host, services[host]), f"{target}: not its metrics port"
        assert int(port) in _published(services[host]), f"{target}: port not published"
        scraped[host] = target
    assert set(scraped) == set(SCRAPED)
    for name in PROJECT_SERVICES:
        # Loopback inside the container would refuse Prometheus (another container).
        assert _environment(services[name])["RISK_SCORING__METRICS_HOST"] == "0.0.0.0"
    command = [str(part) for part in services["dashboard"]["command"]]
    assert command[command.index("--host") + 1] == "0.0.0.0"


def test_prometheus__sends_the_token_the_workers_require(compose, prometheus_config):
    """Beyond loopback the workers (and the dashboard) want a token; Prometheus reads the same
    host variable from a compose secret and sends it as a bearer token, and each healthcheck
    sends it too."""
    services = compose["services"]
    prometheus = services["prometheus"]
    sources: dict[str, set[str]] = {}
    for name in SCRAPED:
        token = _environment(services[name]).get(TOKEN_VARIABLE[name], "")
        assert ":?" in token, f"{name}: the token must be required, never defaulted"
        sources[name] = _reads(token)
        check = " ".join(services[name]["healthcheck"]["test"])
        assert "'Authorization'" in check and TOKEN_VARIABLE[name] in check
    (variable,) = set().union(*(sources[name] for name in PROJECT_SERVICES))
    (dashboard_variable,) = sources["dashboard"]
    assert dashboard_variable != variable  # the page's password is not the workers' token
    mounted = {}
    for entry in prometheus["secrets"]:
        secret = entry if isinstance(entry, str) else entry["source"]
        target = secret if isinstance(entry, str) else entry.get("target", secret)
        mounted[f"/run/secrets/{target}"] = compose["secrets"][secret]
    for job in prometheus_config["scrape_configs"]:
        authorization = job["authorization"]
        assert authorization.get("type", "Bearer") == "Bearer", job["job_name"]
        (target,) = [t for static in job["static_configs"] for t in static["targets"]]
        wanted = dashboard_variable if target.startswith("dashboard:") else variable
        assert mounted[authorization["credentials_file"]] == {"environment": wanted}


def test_grafana__provisioned_datasource_is_the_compose_prometheus(compose, grafana_dashboards):
    grafana = compose["services"]["grafana"]
    folder = _mounted(grafana, "/etc/grafana/provisioning/datasources")
    sources = [
        source
        for file in sorted(folder.glob("*.y*ml"))
        for source in yaml.safe_load(file.read_text())["datasources"]
    ]
    assert [s["type"] for s in sources] == ["prometheus"]
    command = [str(part) for part in compose["services"]["prometheus"]["command"]]
    port = _option(command, "--web.listen-address", ":9090").rsplit(":", 1)[1]
    assert sources[0]["url"] == f"http://prometheus:{port}"
    uids = {source["uid"] for source in sources}
    home = _environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert json.loads(_mounted(grafana, home).read_text())["uid"]
    for dashboard in grafana_dashboards:
        assert dashboard["uid"] and dashboard["title"]
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{dashboard['title']}: duplicate panel ids"
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] in uids, f"{panel['title']}: unknown datasource"
            assert panel["targets"], f"{panel['title']}: no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in uids and target["expr"].strip()


def test_grafana__every_query_uses_series_and_labels_the_workers_register(grafana_dashboards):
    registered = _registered()
    shown: set[str] = set()
    for title, expr in _queries(grafana_dashboards):
        series, labels = _series_and_labels(expr)
        assert series, f"{title}: no series in {expr!r}"
        unknown = series - set(registered) - {"up"}  # up: Prometheus's own, per target
        assert not unknown, f"{title}: {sorted(unknown)} not registered by the code ({expr})"
        known = set().union(*(registered[name][1] for name in series if name in registered))
        assert labels <= known, f"{title}: labels {sorted(labels - known)} not on {series}"
        shown |= {registered[name][0] for name in series if name in registered}
    # And every project series has a panel: a new metric must be shown (or this test changed).
    project = {family for family, _ in registered.values() if family.startswith("crmrisk_")}
    assert not project - shown, f"no panel shows {sorted(project - shown)}"
