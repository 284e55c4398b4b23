"""Many Redis commands in one round trip, written against the connection.

redis-py's ``Pipeline`` wraps every command in Python objects and callbacks; on the scoring hot
path (one to three commands per event) that client work cost more than Redis did. Replies come
back raw (bytes, ints, lists), in order.

On a Redis Cluster (``redis.cluster.RedisCluster``) the commands are grouped by the master that
owns their key's slot (the first key decides: the stores' keys carry hash tags, so a command's
keys share a slot) and each group is one round trip on one of that master's connections.
A MOVED/ASK reply or a lost node means the topology changed (a failover): the client's slot map
is refreshed and a ``redis.ConnectionError`` raised, so the caller retries the whole batch
(the stores' writes are idempotent) against the new masters.

``wait_replicas`` appends ``WAIT n timeout`` to each round trip that wrote, on the same
connection (WAIT only vouches for that connection's writes): a master that dies after
answering but before replicating would otherwise lose what its replica never got. A shortfall
raises ``redis.TimeoutError`` unless the master has fewer replicas connected than asked (then
nothing better is possible: logged, accepted).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import hiredis
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

__all__ = ["is_cluster", "round_trip", "slot_of"]

log = logging.getLogger(__name__)


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


def slot_of(key: str | bytes) -> int:
    """The cluster slot of ``key`` (its ``{hash tag}`` when it has one)."""
    return key_slot(key.encode() if isinstance(key, str) else key)


def round_trip(
    client: redis.Redis | RedisCluster,
    commands: Sequence[Sequence[object]],
    *,
    wait_replicas: int = 0,
    wait_timeout_ms: int = 1000,
) -> list:
    """Send ``commands`` (each ``[name, *args]``) at once and read every reply.

    Raises the first error reply after reading them all (the connection stays in step);
    connection errors drop the connection.
    """
    if not commands:
        return []
    if isinstance(client, RedisCluster):
        return _cluster_round_trip(client, commands, wait_replicas, wait_timeout_ms)
    return _on_connection(client.connection_pool, commands, wait_replicas, wait_timeout_ms, "")


def _on_connection(
    pool: redis.ConnectionPool,
    commands: Sequence[Sequence[object]],
    wait_replicas: int,
    wait_timeout_ms: int,
    node: str,
) -> list:
    connection = pool.get_connection()
    try:
        # hiredis packs str/bytes/int/float arguments in C, skipping redis-py's per-argument
        # encoding: the commands here are built by the stores, never from user objects.
        packed = [hiredis.pack_command(tuple(c)) for c in commands]
        if wait_replicas:
            packed.append(hiredis.pack_command(("WAIT", wait_replicas, wait_timeout_ms)))
        connection.send_packed_command([b"".join(packed)])
        replies, error = [], None
        for _ in packed:
            try:
                replies.append(connection.read_response())
            except redis.exceptions.ResponseError as exc:
                error = error or exc
        if error is not None:
            raise error
        if wait_replicas:
            acked = int(replies.pop())
            if acked < wait_replicas:
                _shortfall(connection, node, acked, wait_replicas, wait_timeout_ms)
        return replies
    except (redis.ConnectionError, redis.TimeoutError):
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


def _shortfall(connection, node: str, acked: int, wanted: int, timeout_ms: int) -> None:
    connection.send_command("INFO", "replication")
    info = connection.read_response()
    text = info.decode() if isinstance(info, bytes) else str(info)
    connected = next(
        (
            int(line.split(":")[1])
            for line in text.splitlines()
            if line.startswith("connected_slaves:")
        ),
        0,
    )
    if connected >= wanted:
        raise redis.TimeoutError(
            f"{node or 'redis'}: {acked} of {wanted} replica(s) acknowledged within {timeout_ms} ms"
        )
    log.warning(
        "%s has %d replica(s) connected, fewer than the %d asked: its writes are not redundant "
        "until one rejoins", node or "redis", connected, wanted,
    )  # fmt: skip


def _first_key(command: Sequence[object]) -> object:
    name = str(command[0]).upper()
    if name in ("EVALSHA", "EVAL"):  # EVALSHA sha numkeys key ...
        return command[3]
    return command[1]


def _cluster_round_trip(
    client: RedisCluster,
    commands: Sequence[Sequence[object]],
    wait_replicas: int,
    wait_timeout_ms: int,
) -> list:
    """Per master, one round trip; the groups a topology change failed are regrouped on the
    refreshed slot map and sent once more (their commands are idempotent), then it raises."""
    replies: list = [None] * len(commands)
    pending = list(range(len(commands)))
    error: Exception | None = None
    for attempt in (1, 2):
        failed: list[int] = []
        moved: Exception | None = None
        for name, (node, rows) in _by_master(client, commands, pending).items():
            try:
                got = _on_connection(
                    node.redis_connection.connection_pool,
                    [commands[i] for i in rows],
                    wait_replicas,
                    wait_timeout_ms,
                    name,
                )
            except redis.exceptions.ResponseError as exc:
                if not str(exc).startswith(("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN")):
                    error = error or exc  # a real error reply: the others still count
                    continue
                moved = redis.ConnectionError(f"{name}: {exc} (cluster topology changed)")
                failed += rows
                continue
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                moved = exc
                failed += rows
                continue
            for i, reply in zip(rows, got, strict=True):
                replies[i] = reply
        if not failed:
            break
        _refresh(client)
        if attempt == 2:
            assert moved is not None
            raise moved
        pending = failed
    if error is not None:
        raise error
    return replies


def _by_master(
    client: RedisCluster, commands: Sequence[Sequence[object]], rows: list[int]
) -> dict[str, tuple[object, list[int]]]:
    groups: dict[str, tuple[object, list[int]]] = {}
    try:
        for i in rows:
            key = _first_key(commands[i])
            node = client.get_node_from_key(key.decode() if isinstance(key, bytes) else key)
            groups.setdefault(node.name, (node, []))[1].append(i)
    except (redis.RedisError, KeyError, IndexError) as exc:  # no master for a slot right now
        _refresh(client)
        raise redis.ConnectionError(f"cluster slot map incomplete: {exc}") from exc
    return groups


def _refresh(client: RedisCluster) -> None:
    """Relearn which node owns which slot (after a failover); best effort."""
    try:
        client.nodes_manager.initialize()
    except Exception as exc:  # the cluster may still be electing: the caller retries later
        log.debug("cluster slot map refresh failed: %s", exc)
