"""Local services for development and tests: Kafka (KRaft, from Maven jars) and Redis.

``Launcher`` runs them; ``KafkaCluster`` and ``RedisServer`` are the single services, usable on
their own (tests start isolated ones on other ports); ``resolve_kafka_jars`` fetches Kafka.
"""

from deploy.certificates import CertificateError, LocalCertificates
from deploy.jars import KafkaJarsError, kafka_libs_dir, resolve_kafka_jars
from deploy.kafka_broker import KafkaCluster, KafkaNode, KafkaStartError
from deploy.kafka_security import KafkaSecurity
from deploy.launcher import Launcher, Login, PortTakenError, ServiceState
from deploy.probes import free_port_block, kafka_broker_count, redis_answers
from deploy.process import ManagedProcess
from deploy.redis_server import RedisSecurity, RedisServer, RedisStartError

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
