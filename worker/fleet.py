"""Which workers are alive: each worker's main process records itself in Redis every
``lease_interval`` seconds, by Redis's clock (``ocml:workers``, worker name → last seen).

``worker.handoff`` reads it to tell whether a job one worker cannot run may still find one that
can. A worker not seen for ``visibility_timeout`` seconds counts as gone, as its jobs do.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import bootsteps
from celery.utils.log import get_logger

from ocml.worker.lease import LEASE_SETTING

WORKERS_KEY = "ocml:workers"

_ANNOUNCE = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
"""

log = get_logger(__name__)


def announce(client: redis.Redis, node: str, *, forget_after: float) -> None:
    """Records worker ``node`` as alive now; drops workers not seen for ``forget_after`` s."""
    client.eval(_ANNOUNCE, 1, WORKERS_KEY, node, int(forget_after))


class Announce(bootsteps.StartStopStep):
    """Consumer bootstep: records this worker in ``ocml:workers`` every lease interval, so that
    refusals know which workers are alive; removes it when the worker stops consuming."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.client: redis.Redis | None = None
        self.tref: Any = None
        self.node = ""
        self.forget_after = 0.0

    def start(self, c: Any) -> None:
        conf = c.app.conf
        self.client = redis.Redis.from_url(
            conf.result_backend, socket_timeout=5, socket_connect_timeout=5
        )
        self.node = c.hostname
        self.forget_after = conf.broker_transport_options["visibility_timeout"]
        self.announce()
        self.tref = c.timer.call_repeatedly(conf[LEASE_SETTING], self.announce)

    def announce(self) -> None:
        """One round; a Redis outage is logged, and the next round tries again."""
        try:
            announce(self.client, self.node, forget_after=self.forget_after)
        except redis.RedisError as exc:
            log.warning("could not record this worker as alive: %s", exc)

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        if self.client is not None:
            try:
                self.client.zrem(WORKERS_KEY, self.node)
            except redis.RedisError as exc:
                log.warning("could not record this worker as gone: %s", exc)
            self.client.close()
            self.client = None

    shutdown = stop
