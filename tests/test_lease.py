"""Lease renewal: a held message's delivery time in kombu's ``unacked_index`` moves to now, and
the run locks of the jobs being run are extended; the run lock's rules."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import redis

from ocml.worker import runs
from ocml.worker.lease import held_delivery_tags, held_run_locks, renew
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


def test_a_run_lock_is_taken_once_renewed_and_released_only_by_its_holder(client):
    first = runs.acquire(client, "job", "w1@h|10", ttl=5.0)
    second = runs.acquire(client, "job", "w2@h|20", ttl=5.0)

    assert first.taken and first.holder is None
    assert not second.taken and second.holder == "w1@h|10" and 0 < second.holder_ttl <= 5.0
    assert runs.renew(client, [("job", "w2@h|20")], ttl=60.0) == 0
    assert runs.renew(client, [("job", "w1@h|10")], ttl=60.0) == 1
    assert client.pttl(runs.RUN_KEY.format(id="job")) > 5000
    assert not runs.release(client, "job", "w2@h|20")
    assert runs.holder(client, "job") == "w1@h|10"
    assert runs.release(client, "job", "w1@h|10")
    assert runs.holder(client, "job") is None


def test_a_run_lock_of_a_dead_process_is_taken_over_only_by_naming_it(client):
    runs.acquire(client, "job", "w1@h|10", ttl=5.0)

    assert not runs.acquire(client, "job", "w1@h|11", ttl=5.0, replace="w1@h|12").taken
    taken = runs.acquire(client, "job", "w1@h|11", ttl=5.0, replace="w1@h|10")

    assert taken.taken and taken.holder == "w1@h|10"
    assert runs.holder(client, "job") == "w1@h|11"


def test_only_a_gone_process_of_this_worker_counts_as_dead():
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(finished.stdout)

    assert runs.local_process_gone(runs.run_token("w1@h", dead), "w1@h")
    assert not runs.local_process_gone(runs.run_token("w1@h", os.getpid()), "w1@h")
    assert not runs.local_process_gone(runs.run_token("w2@h", dead), "w1@h")


def test_the_run_locks_of_accepted_requests_are_the_ones_renewed():
    accepted = SimpleNamespace(id="a", hostname="w1@h", worker_pid=7)
    waiting = SimpleNamespace(id="b", hostname="w1@h", worker_pid=None)
    assert held_run_locks([accepted, waiting]) == [("a", "w1@h|7|")]


def test_each_run_has_its_own_token_and_its_process_renews_and_frees_it_by_prefix(client):
    first, second = runs.run_token("w1@h", 7), runs.run_token("w1@h", 7)
    assert first != second
    assert runs.split_token(first) == ("w1@h", 7)
    runs.acquire(client, "job", first, ttl=5.0)

    assert runs.renew(client, [("job", runs.process_prefix("w1@h", 70))], ttl=60.0) == 0
    assert runs.renew(client, [("job", runs.process_prefix("w1@h", 7))], ttl=60.0) == 1
    assert not runs.release(client, "job", second)
    assert runs.release(client, "job", runs.process_prefix("w1@h", 7))
    assert runs.holder(client, "job") is None


def test_the_fence_passes_only_the_holder_while_no_outcome_is_recorded(client):
    holder, other = runs.run_token("w1@h", 7), runs.run_token("w2@h", 8)
    runs.acquire(client, "job", holder, ttl=1.0)

    assert runs.fence(client, "job", holder, ttl=60.0).ok
    assert client.pttl(runs.RUN_KEY.format(id="job")) > 5000
    refused = runs.fence(client, "job", other, ttl=60.0)
    assert (refused.ok, refused.holder, refused.outcome) == (False, holder, None)
    assert "another process (w1@h|7|" in refused.reason()
    assert not runs.finish(client, "job", {"state": "FAILURE"}, owner=other, expires=60).ok
    assert runs.finished(client, "job") is None

    success = {"state": "SUCCESS", "result": {"n": 1}}
    assert runs.finish(client, "job", success, owner=holder, expires=60).ok
    again = runs.finish(client, "job", {"state": "FAILURE"}, owner=holder, expires=60)
    assert (again.ok, again.outcome) == (False, success)
    assert runs.finished(client, "job") == success
    assert "outcome (SUCCESS) is recorded" in runs.fence(client, "job", holder).reason()


def test_a_run_resumed_after_its_lock_was_freed_may_write_only_before_an_outcome(client):
    stopped, later = runs.run_token("w1@h", 7), runs.run_token("w2@h", 8)

    taken = runs.fence(client, "free", stopped, ttl=60.0)
    assert taken.ok and runs.holder(client, "free") == stopped

    runs.acquire(client, "job", later, ttl=5.0)
    runs.finish(client, "job", {"state": "SUCCESS", "result": {}}, owner=later, expires=60)
    runs.release(client, "job", later)
    resumed = runs.fence(client, "job", stopped, ttl=60.0)

    assert not resumed.ok and resumed.outcome == {"state": "SUCCESS", "result": {}}
    assert runs.holder(client, "job") is None


def test_an_outcome_without_an_owner_is_recorded_only_when_nobody_runs_the_job(client):
    failure = {"state": "FAILURE", "error": {"error": "bad_message", "message": "m"}}
    runs.acquire(client, "running", runs.run_token("w1@h", 7), ttl=5.0)

    assert not runs.finish(client, "running", failure, owner="", expires=60).ok
    assert runs.finish(client, "idle", failure, owner="", expires=60).ok
    assert runs.finished(client, "idle") == failure
    assert runs.holder(client, "idle") is None
