"""Kafka's jars, resolved from Maven Central by ``deploy/kafka/pom.xml`` into a cache.

Resolution runs once: a stamp file records the pom's hash and the version, so a second call is
a no-op and a changed pom or version resolves again.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from pathlib import Path

__all__ = ["POM", "KafkaJarsError", "kafka_libs_dir", "resolve_kafka_jars"]

log = logging.getLogger(__name__)

POM = Path(__file__).parent / "kafka" / "pom.xml"
_STAMP = ".resolved"


class KafkaJarsError(RuntimeError):
    """The Kafka jars could not be resolved (no Maven, no network, unknown version)."""


def kafka_libs_dir(cache_dir: Path, version: str) -> Path:
    """Where the jars of Kafka ``version`` live: ``<cache_dir>/kafka-<version>/libs``."""
    return Path(cache_dir).expanduser() / f"kafka-{version}" / "libs"


def _stamp(version: str) -> str:
    return f"{version} {hashlib.sha256(POM.read_bytes()).hexdigest()}\n"


def resolve_kafka_jars(cache_dir: Path, version: str, *, mvn: str = "mvn") -> Path:
    """Resolve the broker's runtime jars (skipped when cached); returns the libs folder."""
    libs = kafka_libs_dir(cache_dir, version)
    stamp = libs / _STAMP
    if stamp.is_file() and stamp.read_text() == _stamp(version):
        return libs
    executable = shutil.which(mvn)
    if executable is None:
        raise KafkaJarsError(
            "Maven (mvn) is needed once to fetch the Kafka jars: run `make setup` "
            "or `apt-get install maven`."
        )
    log.info("resolving Kafka %s jars into %s (once)", version, libs)
    # Resolve into a fresh folder, then swap it in: a half-copied cache is never used.
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    command = [
        executable,
        "-q",
        "-B",
        "-f",
        str(POM),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not any(staging.glob(f"kafka_2.13-{version}.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        raise KafkaJarsError(
            f"could not resolve org.apache.kafka:kafka_2.13:{version} from Maven Central "
            f"(mvn exit {done.returncode}):\n{(done.stdout + done.stderr)[-2000:]}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    stamp.write_text(_stamp(version))
    return libs
