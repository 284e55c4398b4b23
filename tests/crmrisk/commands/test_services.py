"""Which local services ``crmrisk up`` secures, and for whom: read off the client settings."""

import pytest

from crmrisk.commands.services import kafka_login, redis_login
from crmrisk.deploy import Login
from crmrisk.errors import UserError
from crmrisk.settings import KafkaSettings, RedisSettings


def test_kafka_login__plain_broker_by_default():
    assert kafka_login(KafkaSettings()) is None


def test_kafka_login__the_scram_user_of_the_settings():
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="a-password",
    )
    login = kafka_login(kafka)
    assert login == Login("svc", "a-password")
    assert "a-password" not in repr(login)


@pytest.mark.parametrize(
    "security",
    [
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512"},
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"},
        {"security_protocol": "SSL"},
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_password": None},
    ],
)
def test_kafka_login__what_the_launcher_cannot_run_is_a_clear_error(security):
    kafka = KafkaSettings(**({"sasl_username": "svc", "sasl_password": "pw"} | security))
    with pytest.raises(UserError, match="SASL_SSL and SCRAM-SHA-512"):
        kafka_login(kafka)


def test_redis_login__plain_tls_with_user_or_from_the_url():
    assert redis_login(RedisSettings()) is None
    given = RedisSettings(url="rediss://127.0.0.1:6380/0", username="svc", password="pw")
    assert redis_login(given) == Login("svc", "pw")
    in_url = RedisSettings(url="rediss://svc:pw@127.0.0.1:6380/0")
    assert redis_login(in_url) == Login("svc", "pw")


@pytest.mark.parametrize(
    ("redis", "message"),
    [
        ({"url": "redis://:pw@127.0.0.1:6379/0"}, "rediss://"),
        ({"url": "redis://127.0.0.1:6379/0", "password": "pw"}, "rediss://"),
        ({"url": "rediss://127.0.0.1:6380/0", "password": "pw"}, "RISK_REDIS__USERNAME"),
    ],
)
def test_redis_login__what_the_launcher_cannot_run_is_a_clear_error(redis, message):
    with pytest.raises(UserError, match=message):
        redis_login(RedisSettings(**redis))
