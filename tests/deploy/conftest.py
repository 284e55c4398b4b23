"""Isolated launchers for the deploy tests: their own folder and free ports.

They never touch the shared broker on 9092 or Redis on 6379 that other test runs use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crmrisk import deploy
from crmrisk.deploy import Launcher
from crmrisk.settings import Settings


def _free_port_block(size: int) -> int:
    """The first of ``size`` consecutive free loopback ports (``deploy.free_port_block``)."""
    return deploy.free_port_block(size)


def _isolated_launcher(home: Path) -> Launcher:
    services = Settings().services
    single = _free_port_block(2)
    cluster = _free_port_block(6)
    return Launcher(
        home=home,
        cache_dir=services.cache_dir,
        kafka_version=services.kafka_version,
        kafka_heap="-Xms128m -Xmx384m",
        kafka_port=single,
        kafka_controller_port=single + 1,
        redis_port=_free_port_block(1),
        cluster_port=cluster,
        cluster_controller_port=cluster + 3,
        cluster_heap=services.cluster_heap,
    )


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    """A launcher of its own; whatever it started is stopped after the test, pass or fail."""
    launcher = _isolated_launcher(tmp_path / "var")
    try:
        yield launcher
    finally:
        launcher.down()


@pytest.fixture
def free_port_block() -> Callable[[int], int]:
    """``free_port_block(n)``: the first of ``n`` consecutive free loopback ports."""
    return _free_port_block
