"""Which workers are alive: each worker's main process records itself in Redis every
``lease_interval`` seconds, by Redis's clock (``ocml:workers``, worker name → last seen), in the
lease round of ``worker.lease.RenewLeases``, and removes itself when it stops consuming.

``worker.handoff`` reads it to tell whether a job one worker cannot run may still find one that
can. A worker not seen for ``visibility_timeout`` seconds counts as gone, as its jobs do.
"""

from __future__ import annotations

import redis

WORKERS_KEY = "ocml:workers"

_ANNOUNCE = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
"""


def announce(client: redis.Redis, node: str, *, forget_after: float) -> None:
    """Records worker ``node`` as alive now; drops workers not seen for ``forget_after`` s."""
    client.eval(_ANNOUNCE, 1, WORKERS_KEY, node, int(forget_after))
