"""Many Redis commands in one round trip, written against the connection.

redis-py's ``Pipeline`` wraps every command in Python objects and callbacks; on the scoring hot
path (one to three commands per event) that client work cost more than Redis did. Replies come
back raw (bytes, ints, lists), in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import hiredis
import redis

__all__ = ["round_trip"]


def round_trip(client: redis.Redis, commands: Sequence[Sequence[object]]) -> list:
    """Send ``commands`` (each ``[name, *args]``) at once and read every reply.

    Raises the first error reply after reading them all (the connection stays in step);
    connection errors drop the connection.
    """
    if not commands:
        return []
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        # hiredis packs str/bytes/int/float arguments in C, skipping redis-py's per-argument
        # encoding: the commands here are built by the stores, never from user objects.
        connection.send_packed_command([b"".join(hiredis.pack_command(tuple(c)) for c in commands)])
        replies, error = [], None
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except redis.exceptions.ResponseError as exc:
                error = error or exc
        if error is not None:
            raise error
        return replies
    except (redis.ConnectionError, redis.TimeoutError):
        connection.disconnect()
        raise
    finally:
        pool.release(connection)
