"""round_trip against real Redis: replies in order, errors raised after the stream is drained."""

import pytest
import redis

from crmrisk.state.pipeline import round_trip

pytestmark = pytest.mark.integration


def test_round_trip__replies_in_order(redis_client, redis_prefix):
    key = f"{redis_prefix}rt"
    replies = round_trip(
        redis_client,
        [["SET", key, b"\x00v"], ["GET", key], ["INCR", key + "n"], ["INCR", key + "n"]],
    )
    assert replies == [b"OK", b"\x00v", 1, 2]
    assert round_trip(redis_client, []) == []


def test_round_trip__error_reply_raises_and_the_connection_stays_usable(redis_client, redis_prefix):
    key = f"{redis_prefix}rt"
    with pytest.raises(redis.ResponseError):
        round_trip(redis_client, [["SET", key, "x"], ["INCR", key], ["SET", key, "y"]])
    assert redis_client.get(key) == b"y"  # later commands ran; nothing left unread
    assert round_trip(redis_client, [["GET", key]]) == [b"y"]
