"""Keeps a live worker's messages from being redelivered: their Redis lease is renewed.

kombu's Redis transport redelivers a message once it has stayed unacknowledged for
``visibility_timeout`` seconds, counted from its delivery (the message's score in the
``unacked_index`` sorted set); any live worker's sweep then puts it back on the queue. Setting that
score to "now" every ``lease_interval`` seconds for each message this worker holds (waiting for a
pool process, running, or waiting out a retry's countdown) lets only a dead worker's messages
age, so ``visibility_timeout`` can be a minute rather than longer than the longest job, and a
dead host's jobs come back within a minute. The same round extends the run lock
(``worker.runs``) of every job a pool process of this worker is running, by ``visibility_timeout``,
and records this worker as alive (``worker.fleet``); stopping removes that record.

Every ``SWEEP_LEASES`` lease intervals one worker of the fleet also sends again the jobs whose
message Redis lost between the queue and a worker (``worker.runs.sweep``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import redis
from celery import bootsteps
from celery.utils.log import get_logger
from celery.worker import state
from kombu.exceptions import OperationalError
from kombu.transport.redis import Channel

from ocml.worker import runs
from ocml.worker.fleet import WORKERS_KEY, announce
from ocml.worker.jobs import TASK_NAME

log = get_logger(__name__)
LEASE_SETTING = "ocml_lease_interval"
"""The Celery configuration key that carries the settings' ``lease_interval``."""
SWEEP_LEASES = 3
"""Lease intervals between two sweeps for lost messages."""


def held_delivery_tags(requests: Iterable[Any]) -> list[str]:
    """The broker delivery tags of ``requests`` (Celery ``Request`` objects), without repeats."""
    tags = {getattr(r.message, "delivery_tag", None) for r in requests}
    return sorted(str(tag) for tag in tags if tag)


def held_run_locks(requests: Iterable[Any]) -> list[tuple[str, str]]:
    """(job id, the owner of its run lock: ``runs.process_prefix``) of each request a pool
    process has accepted."""
    return [
        (r.id, runs.process_prefix(r.hostname, r.worker_pid))
        for r in requests
        if getattr(r, "worker_pid", None)
    ]


def renew(
    client: redis.Redis,
    tags: list[str],
    *,
    now: float | None = None,
    key: str = Channel.unacked_index_key,
) -> int:
    """Sets the delivery time of each still-unacknowledged tag to ``now``; returns how many.

    ``XX`` only updates members that exist, so a message acknowledged meanwhile stays gone.
    """
    if not tags:
        return 0
    stamp = time.time() if now is None else now
    return int(client.zadd(key, {tag: stamp for tag in tags}, xx=True, ch=True))


class RenewLeases(bootsteps.StartStopStep):
    """Consumer bootstep: renews the leases of every message this worker holds and records the
    worker as alive, on its timer."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.client: redis.Redis | None = None
        self.backend_client: redis.Redis | None = None
        self.tref: Any = None
        self.sweep_tref: Any = None
        self.sweep_interval = 0.0
        self.app: Any = None
        self.node = ""
        self.ttl = 0.0

    def start(self, c: Any) -> None:
        conf = c.app.conf
        self.client = redis.Redis.from_url(
            conf.broker_url, socket_timeout=5, socket_connect_timeout=5
        )
        self.backend_client = redis.Redis.from_url(
            conf.result_backend, socket_timeout=5, socket_connect_timeout=5
        )
        self.ttl = conf.broker_transport_options["visibility_timeout"]
        self.app = c.app
        self.node = c.hostname
        self.renew_held()
        self.tref = c.timer.call_repeatedly(conf[LEASE_SETTING], self.renew_held)
        self.sweep_interval = SWEEP_LEASES * conf[LEASE_SETTING]
        self.sweep_tref = c.timer.call_repeatedly(self.sweep_interval, self.resend_lost)

    def renew_held(self) -> None:
        """One round: the held messages' leases, the running jobs' locks and this worker's
        record as alive (a worker unseen for ``visibility_timeout`` counts as gone); a Redis
        outage is logged, and the next round tries again."""
        held = [*state.reserved_requests, *state.active_requests, *state.scheduled_requests]
        try:
            renew(self.client, held_delivery_tags(held))
            runs.renew(self.backend_client, held_run_locks(state.active_requests), ttl=self.ttl)
            announce(self.backend_client, self.node, forget_after=self.ttl)
        except redis.RedisError as exc:
            log.warning("could not renew the leases of %d held messages: %s", len(held), exc)

    def resend_lost(self) -> None:
        """Sends again each pending job whose message is nowhere and that nobody runs; one
        worker per sweep interval does it (a Redis lock), a Redis outage skips the round."""
        try:
            if not self.backend_client.set(
                runs.SWEEP_LOCK, self.node, nx=True, px=int(self.sweep_interval * 900)
            ):
                return
            lost = runs.sweep(
                self.backend_client,
                self.client,
                queue=self.app.conf.task_default_queue,
                delivered_key=Channel.unacked_key,
                older_than=self.sweep_interval,
            )
            for job_id in lost:
                record = runs.queued_record(self.backend_client, job_id) or {}
                if "job" not in record:
                    continue
                self.app.send_task(
                    TASK_NAME,
                    args=[json.loads(record["job"])],
                    task_id=job_id,
                    soft_time_limit=float(record["soft"]),
                    time_limit=float(record["hard"]),
                )
                log.warning("job %s: its message was lost by the broker; sent again", job_id)
        except (redis.RedisError, OperationalError) as exc:
            log.warning("could not look for lost messages: %s", exc)

    def stop(self, c: Any) -> None:
        for tref in (self.tref, self.sweep_tref):
            if tref is not None:
                tref.cancel()
        self.tref = self.sweep_tref = None
        if self.backend_client is not None:
            try:
                self.backend_client.zrem(WORKERS_KEY, self.node)
            except redis.RedisError as exc:
                log.warning("could not record this worker as gone: %s", exc)
        for client in (self.client, self.backend_client):
            if client is not None:
                client.close()
        self.client = self.backend_client = None

    shutdown = stop
