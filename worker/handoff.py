"""A job a worker cannot run for a reason of its own is left to the other workers; it fails
with the real error once no live worker is left that has not refused it, or once more than
``max_handoffs`` different workers have.

A worker without the media mount sees no input (``input_missing``); a worker with another model
must not run a job that expects a different one (``model_mismatch``, or ``unknown_model`` for a
name). Such a worker adds itself to the job's refusers in Redis (``ocml:handoffs:{id}``) and,
while some live worker (seen by ``worker.fleet`` within ``visibility_timeout``) has not refused
the job and at most ``max_handoffs`` have, puts it back on the queue instead of failing it;
otherwise it runs the job as usual, which fails it with the real error. The job goes to the back
of the queue at once, free for any worker; a process that refused it before then pauses
(``PAUSE``) before it takes another message, so a job whose able workers are busy waits for them
without the others spinning. The job's history (``ocml:runs:{id}``) records each worker's first
refusal.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import Task
from celery.utils.log import get_logger

from ocml.config.settings import Settings
from ocml.pipeline.model import Model
from ocml.pipeline.writers import FORMATS
from ocml.worker import runs
from ocml.worker.fleet import WORKERS_KEY
from ocml.worker.jobs import JobInvalid, ModelIdentity, parse_job

LOCAL_CODES = frozenset({"input_missing", "model_mismatch", "unknown_model"})
"""Refusals that may be this worker's alone: another worker may see the input or serve the model."""
REFUSERS_KEY = "ocml:handoffs:{id}"
PAUSE = 0.5
"""Seconds a process that refused a job before waits, after putting it back, before it takes
another message: the job stays free for an able worker, and a worker that can run nothing in
the queue does not spin through it."""

_REFUSE = """
local times = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
local now = tonumber(redis.call('TIME')[1])
local waiting = 0
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], now - tonumber(ARGV[3]), '+inf')) do
  if redis.call('HEXISTS', KEYS[1], node) == 0 then
    waiting = waiting + 1
  end
end
return {times, redis.call('HLEN', KEYS[1]), waiting}
"""

log = get_logger(__name__)


def local_refusal(job: Any, settings: Settings, model: Callable[[], Model]) -> JobInvalid | None:
    """Why this worker (its ``model()``) cannot run ``job`` while another might (a code of
    ``LOCAL_CODES``), or None: the job is runnable here, or wrong everywhere, or broken in a way
    its run reports (it then fails as usual)."""
    try:
        loaded = model()
        parse_job(
            job,
            settings,
            served=ModelIdentity.of(loaded),
            tuned=loaded.postprocess,
            formats_known=FORMATS,
        )
    except JobInvalid as exc:
        return exc if exc.code in LOCAL_CODES else None
    except Exception:  # the run meets it again and records it
        return None
    return None


def refuse(
    client: redis.Redis, job_id: str, node: str, *, live_within: float, expires: int
) -> tuple[int, int, int]:
    """Counts a refusal of ``job_id`` by worker ``node``: (how often ``node`` has now refused
    it, how many workers have, how many workers seen within ``live_within`` s have not)."""
    keys = (REFUSERS_KEY.format(id=job_id), WORKERS_KEY)
    times, refusers, waiting = client.eval(_REFUSE, 2, *keys, node, expires, int(live_within))
    return int(times), int(refusers), int(waiting)


def leave_to_others(refusers: int, waiting: int, *, max_handoffs: int) -> bool:
    """Whether a job ``refusers`` workers refused goes back to the queue: while ``waiting``
    live workers have not refused it and at most ``max_handoffs`` workers have."""
    return waiting > 0 and refusers <= max_handoffs


def hand_off(task: Task, refusal: JobInvalid, settings: Settings) -> bool:
    """Sends the job of ``task``'s message back to the queue for another worker; False when no
    live worker is left that has not refused it, or more than ``max_handoffs`` have."""
    client = task.app.backend.client
    job_id, node = task.request.id, task.request.hostname
    times, refusers, waiting = refuse(
        client,
        job_id,
        node,
        live_within=settings.visibility_timeout,
        expires=settings.result_expires,
    )
    if not leave_to_others(refusers, waiting, max_handoffs=settings.max_handoffs):
        log.warning(
            "job %s: %s; %d workers refused it (max_handoffs = %d), %d other live ones are "
            "left: it fails here",
            job_id,
            refusal,
            refusers,
            settings.max_handoffs,
            waiting,
        )
        return False
    task.signature_from_request(task.request).apply_async()
    if times > 1:
        log.debug("job %s: refused here %d times; this process pauses %g s", job_id, times, PAUSE)
        time.sleep(PAUSE)
        return True
    event = {"event": "handoff", "node": node, "pid": os.getpid(), "reason": refusal.code}
    runs.add_event(client, job_id, event, expires=settings.result_expires)
    log.warning(
        "job %s: %s on this worker; left to the %d live workers that have not refused it",
        job_id,
        refusal,
        waiting,
    )
    return True
