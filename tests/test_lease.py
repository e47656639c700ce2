"""Lease renewal: a held message's delivery time in kombu's ``unacked_index`` moves to now."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis

from ocml.worker.lease import held_delivery_tags, renew
from tests.worker_support import TEST_REDIS_URL

REDIS_URL = TEST_REDIS_URL
KEY = "unacked_index"


@pytest.fixture
def client():
    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


def request(tag: str | None) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(delivery_tag=tag))


def test_held_tags_are_unique_and_skip_requests_without_one():
    held = [request("b"), request("a"), request("b"), request(None)]
    assert held_delivery_tags(held) == ["a", "b"]


def test_renew_moves_only_the_held_tags_that_are_still_unacknowledged(client):
    client.zadd(KEY, {"held": 1.0, "other": 2.0})

    changed = renew(client, ["held", "acknowledged-meanwhile"], now=100.0)

    assert changed == 1
    assert client.zscore(KEY, "held") == 100.0
    assert client.zscore(KEY, "other") == 2.0
    assert client.zscore(KEY, "acknowledged-meanwhile") is None


def test_renew_with_nothing_held_touches_nothing(client):
    client.zadd(KEY, {"other": 2.0})
    assert renew(client, []) == 0
    assert client.zscore(KEY, "other") == 2.0
