"""The bookkeeping behind leaving a job to other workers, on the real Redis (DB 13 or
``OCML_TEST_REDIS_DB``, flushed here): who is alive, who refused a job, when it fails.
``test_fleet_guard`` runs it with real workers."""

from __future__ import annotations

import time

import pytest
import redis

from ocml.worker.fleet import WORKERS_KEY, announce
from ocml.worker.handoff import REFUSERS_KEY, leave_to_others, refuse
from tests.worker_support import TEST_REDIS_URL, flush


@pytest.fixture
def client():
    flush(TEST_REDIS_URL)
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    yield connection
    connection.close()
    flush(TEST_REDIS_URL)


def test_refusals_count_per_worker_against_the_live_ones(client):
    for node in ("a@h", "b@h", "c@h"):
        announce(client, node, forget_after=60)
    client.zadd(WORKERS_KEY, {"gone@h": time.time() - 600})  # a worker not seen for 10 minutes

    seen = [
        refuse(client, "job-1", node, live_within=60, expires=100)
        for node in ("a@h", "a@h", "b@h", "c@h")
    ]

    # (times this worker refused it, workers that refused it, live workers that have not)
    assert seen == [(1, 1, 2), (2, 1, 2), (1, 2, 1), (1, 3, 0)]
    assert client.hgetall(REFUSERS_KEY.format(id="job-1")) == {
        b"a@h": b"2",
        b"b@h": b"1",
        b"c@h": b"1",
    }
    assert 0 < client.ttl(REFUSERS_KEY.format(id="job-1")) <= 100


def test_announcing_forgets_workers_not_seen_for_a_while(client):
    client.zadd(WORKERS_KEY, {"old@h": time.time() - 600, "recent@h": time.time() - 5})
    announce(client, "new@h", forget_after=60)
    assert sorted(client.zrange(WORKERS_KEY, 0, -1)) == [b"new@h", b"recent@h"]


@pytest.mark.parametrize(
    ("refusers", "waiting", "max_handoffs", "again"),
    [
        (1, 1, 3, True),  # another live worker may run it
        (2, 0, 3, False),  # every live worker refused it: the real error
        (4, 5, 3, False),  # more than max_handoffs workers refused it
        (3, 5, 3, True),
        (1, 5, 0, False),  # 0: the first refusal fails it
    ],
)
def test_a_job_goes_back_while_a_live_worker_has_not_refused_it(
    refusers, waiting, max_handoffs, again
):
    assert leave_to_others(refusers, waiting, max_handoffs=max_handoffs) is again
