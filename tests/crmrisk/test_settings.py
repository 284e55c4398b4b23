"""Settings: typed, documented, read from the prefixed environment and the conventional names."""

import pytest
from pydantic import ValidationError

from crmrisk.settings import Settings


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("RISK_") or name in {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"}:
            monkeypatch.delenv(name)
    monkeypatch.chdir("/")  # no .env file here
    return monkeypatch


def test_defaults_point_at_the_local_services(clean_env):
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.redis.url == "redis://127.0.0.1:6379/0"
    assert settings.redis.window >= 32


def test_prefixed_nested_variables(clean_env):
    clean_env.setenv("RISK_REDIS__URL", "redis://cache:6380/2")
    clean_env.setenv("RISK_SCORING__MAX_BATCH_SIZE", "64")
    settings = Settings()
    assert settings.redis.url == "redis://cache:6380/2"
    assert settings.scoring.max_batch_size == 64


def test_conventional_names_work_and_prefixed_form_wins(clean_env):
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    clean_env.setenv("REDIS_URL", "redis://plain:6379/0")
    clean_env.setenv("RISK_REDIS__URL", "redis://prefixed:6379/0")
    settings = Settings()
    assert settings.kafka.client_config()["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert settings.redis.url == "redis://prefixed:6379/0"


def test_security_options_reach_the_client_config(clean_env):
    clean_env.setenv("RISK_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    clean_env.setenv("RISK_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    clean_env.setenv("RISK_KAFKA__SASL_USERNAME", "svc")
    clean_env.setenv("RISK_KAFKA__SASL_PASSWORD", "s3cret")
    clean_env.setenv("RISK_REDIS__PASSWORD", "r3dis")
    settings = Settings()
    config = settings.kafka.client_config()
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.redis.client_kwargs()["password"] == "r3dis"


def test_bad_values_are_rejected_with_the_field_name(clean_env):
    clean_env.setenv("RISK_SCORING__MAX_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="max_batch_size"):
        Settings()


def test_every_field_is_documented():
    def walk(model):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                yield from walk(annotation)
            else:
                yield name, field

    undocumented = [name for name, field in walk(Settings) if not field.description]
    assert undocumented == []


def test_access_tokens_are_secret_and_not_trivially_short(clean_env):
    clean_env.setenv("RISK_SCORING__METRICS_TOKEN", "short")
    with pytest.raises(ValidationError, match="metrics_token"):
        Settings()
    clean_env.setenv("RISK_SCORING__METRICS_TOKEN", "a-metrics-token-0123")
    clean_env.setenv("RISK_DASHBOARD__TOKEN", "a-dashboard-token-0123")
    settings = Settings()
    assert settings.scoring.metrics_token.get_secret_value() == "a-metrics-token-0123"
    assert settings.dashboard.token.get_secret_value() == "a-dashboard-token-0123"
    assert "token-0123" not in repr(settings)


def test_redis_ca_file_needs_a_tls_url(clean_env):
    clean_env.setenv("RISK_REDIS__SSL_CA_CERTS", "/etc/ssl/ca.pem")
    with pytest.raises(ValidationError, match="rediss://"):
        Settings()
    clean_env.setenv("RISK_REDIS__URL", "rediss://cache:6380/0")
    assert Settings().redis.client_kwargs()["ssl_ca_certs"] == "/etc/ssl/ca.pem"


def test_field_contract_policies_are_strict_and_counting_by_default(clean_env):
    scoring = Settings().scoring
    assert (scoring.field_policy, scoring.field_policies, scoring.unknown_policy) == (
        "strict",
        {},
        "count",
    )
    clean_env.setenv("RISK_SCORING__FIELD_POLICY", "coerce")
    clean_env.setenv("RISK_SCORING__FIELD_POLICIES", '{"retail": "strict"}')
    clean_env.setenv("RISK_SCORING__UNKNOWN_POLICY", "reject")
    scoring = Settings().scoring
    assert (scoring.field_policy, scoring.field_policies, scoring.unknown_policy) == (
        "coerce",
        {"retail": "strict"},
        "reject",
    )
    clean_env.setenv("RISK_SCORING__FIELD_POLICY", "lenient")
    with pytest.raises(ValidationError, match="field_policy"):
        Settings()


def test_topics__one_list_names_every_topic_by_its_role(clean_env):
    topics = Settings(kafka={"topics": {"alerts": "my.alerts"}}).kafka.topics
    assert topics.roles() == (
        "events", "dead_letters", "outcomes", "scores", "alerts", "shadow_scores",
        "model_updates", "score_requests",
    )  # fmt: skip
    assert topics.by_role()["alerts"] == "my.alerts"
    assert topics.by_role()["events"] == "crm.events"
    assert len(set(topics.by_role().values())) == len(topics.roles())
