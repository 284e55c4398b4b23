"""Local services for development and tests: Kafka (KRaft, from Maven jars) and Redis.

``Launcher`` runs them; ``KafkaCluster`` and ``RedisServer`` are the single services, usable on
their own (tests start isolated ones on other ports); ``resolve_kafka_jars`` fetches Kafka.
"""

from crmrisk.deploy.certificates import CertificateError, LocalCertificates
from crmrisk.deploy.jars import KafkaJarsError, kafka_libs_dir, resolve_kafka_jars
from crmrisk.deploy.kafka_broker import KafkaCluster, KafkaNode, KafkaStartError
from crmrisk.deploy.kafka_security import KafkaSecurity
from crmrisk.deploy.launcher import Launcher, Login, PortTakenError, ServiceState
from crmrisk.deploy.probes import free_port_block, kafka_broker_count, redis_answers
from crmrisk.deploy.process import ManagedProcess
from crmrisk.deploy.redis_server import RedisSecurity, RedisServer, RedisStartError

__all__ = [
    "CertificateError",
    "KafkaCluster",
    "KafkaJarsError",
    "KafkaNode",
    "KafkaSecurity",
    "KafkaStartError",
    "Launcher",
    "LocalCertificates",
    "Login",
    "ManagedProcess",
    "PortTakenError",
    "RedisSecurity",
    "RedisServer",
    "RedisStartError",
    "ServiceState",
    "free_port_block",
    "kafka_broker_count",
    "kafka_libs_dir",
    "redis_answers",
    "resolve_kafka_jars",
]
