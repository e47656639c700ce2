"""Messages the fleet cannot use: acknowledged and recorded as failed, never restored, never fatal.

Left to Celery and kombu, a task message whose body is not ``[args, kwargs, embed]`` or whose
headers Celery cannot read (``timelimit: "x"``) ends the worker ("Unrecoverable error") after
the message is put back, so every worker that takes it dies in turn; a queue entry that is not
JSON ends the worker and is lost; an undecodable body is dropped with a log line. Here:

- ``GuardedConsumer`` (the worker's ``worker_consumer``) checks every task message before
  Celery's strategy sees it (``message_problem``) and routes Celery's own refusals (an
  unreadable ETA, an unknown task) and any error while it takes a message the same way;
- its broker connection's transport (``guard_transport``) drops queue entries kombu could not
  turn into a message (not JSON, not an envelope: ``envelope_problem``) instead of dying on them.

Each such message is acknowledged and recorded (``BadMessages``): an entry in the capped Redis
list ``runs.BAD_MESSAGES_KEY`` (``ocml status --bad-messages``) and, when it names a job id that
has no outcome yet and that no process runs, the job's failure ``{"error": "bad_message",
"message": ...}``, as its outcome and its Celery state.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Callable
from queue import Empty
from typing import Any

import redis
from celery import Celery
from celery.utils.log import get_logger
from celery.worker import state
from celery.worker.consumer import Consumer
from kombu.utils.objects import cached_property
from vine import promise

from ocml.pipeline.errors import excerpt
from ocml.worker import runs
from ocml.worker.jobs import TASK_NAME, JobFailed

BAD_MESSAGE = "bad_message"
ID_LIMIT = 255
"""The longest job id a message may carry (it becomes part of Redis keys)."""
SHOWN = 300
"""A recorded reason or message quotes at most this many characters of what it refuses."""
MESSAGE_LIMIT = 1000
"""A bad message's job failure quotes at most this many characters (as a failed job's does)."""
WORKFLOW_KEYS = ("callbacks", "errbacks", "chain", "chord")
_ROUTE = ("exchange", "routing_key")

log = get_logger(__name__)


class BadMessages:
    """Records the messages one worker could not use (the list and, with a job id, the job)."""

    def __init__(self, app: Celery, node: str) -> None:
        self.app = app
        self.node = node

    def record(
        self, reason: str, *, job_id: str | None = None, task: str | None = None, raw: Any = None
    ) -> None:
        """Adds the entry to the list; fails the job ``job_id`` unless it has an outcome or a
        process runs it (a broken copy of a good message must not fail its job)."""
        client = self.app.backend.client
        entry = {
            "at": round(time.time(), 3),
            "job_id": job_id,
            "task": task,
            "reason": excerpt(reason, SHOWN),
            "worker": self.node,
            "message": None if raw is None else excerpt(_text(raw), SHOWN),
        }
        runs.add_bad_message(client, entry)
        log.error("bad message (job %s) acknowledged and dropped: %s", job_id or "-", reason)
        if job_id is None:
            return
        error = {
            "error": BAD_MESSAGE,
            "message": excerpt(
                f"the worker could not use the job's message: {reason}", MESSAGE_LIMIT
            ),
        }
        expires = self.app.conf.result_expires
        outcome = {"state": "FAILURE", "error": error}
        if runs.finish(client, job_id, outcome, owner="", expires=int(expires)).ok:
            self.app.backend.mark_as_failure(job_id, JobFailed(error))


def message_problem(message: Any) -> str | None:
    """Why the task message ``message`` (a kombu ``Message``) cannot be used, or None.

    It must name a task and a job id, carry readable time limits and retries, and a body that
    decodes to ``[args, kwargs, embed]``; an ``ocml.segment`` message exactly one job and no
    keyword arguments, callbacks or chords.
    """
    headers = message.headers
    if not isinstance(headers, dict):
        return f"its headers are not a mapping: {_shown(headers)}"
    task, job_id = headers.get("task"), headers.get("id")
    if not isinstance(task, str) or not task:
        return f"it names no task (header 'task': {_shown(task)})"
    if not isinstance(job_id, str) or not job_id or len(job_id) > ID_LIMIT:
        return f"it has no usable job id (header 'id': {_shown(job_id)})"
    limits = headers.get("timelimit")
    if limits is not None and not (
        isinstance(limits, list) and len(limits) == 2 and all(map(_seconds_or_none, limits))
    ):
        return f"header 'timelimit' must be [hard, soft] seconds or null, got {_shown(limits)}"
    retries = headers.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        return f"header 'retries' must be a count, got {_shown(retries)}"
    try:
        body = message.decode()
    except Exception as exc:  # kombu wraps every decoding failure; all are the message's
        return f"its body cannot be decoded ({message.content_type}): {exc}"
    if not (isinstance(body, list) and len(body) == 3):
        return f"its body must be [args, kwargs, embed], got {_shown(body)}"
    args, kwargs, embed = body
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return f"its body must be [args (a list), kwargs (a mapping), embed], got {_shown(body)}"
    if embed is not None and not isinstance(embed, dict):
        return f"the body's third item must be a mapping or null, got {_shown(embed)}"
    if task == TASK_NAME:
        if len(args) != 1 or kwargs:
            return f"{TASK_NAME} takes one job and no keyword arguments, got {_shown(body)}"
        used = [key for key in WORKFLOW_KEYS if (embed or {}).get(key)]
        if used:
            return f"{TASK_NAME} takes no {', '.join(used)}, got {_shown(embed)}"
    else:
        for key in WORKFLOW_KEYS:
            value = (embed or {}).get(key)
            if value is not None and not isinstance(value, dict if key == "chord" else list):
                return f"the body's {key!r} has the wrong type: {_shown(value)}"
    return None


def envelope_problem(payload: Any) -> str | None:
    """Why a queue entry (decoded from JSON) is not a message kombu can deliver, or None."""
    if not isinstance(payload, dict):
        return f"the queue entry is not a message envelope: {_shown(payload)}"
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return f"the envelope has no properties: {_shown(payload)}"
    tag, info = properties.get("delivery_tag"), properties.get("delivery_info")
    if not isinstance(tag, str) or not tag:
        return f"the envelope has no delivery tag: {_shown(properties)}"
    if not (isinstance(info, dict) and all(isinstance(info.get(k), str) for k in _ROUTE)):
        return f"the envelope's delivery_info is not an exchange and routing key: {_shown(info)}"
    for key in ("content-type", "content-encoding"):
        if not isinstance(payload.get(key), str | None):
            return f"the envelope's {key} is not text: {_shown(payload.get(key))}"
    if not isinstance(payload.get("headers"), dict | None):
        return f"the envelope's headers are not a mapping: {_shown(payload.get('headers'))}"
    body, encoding = payload.get("body"), properties.get("body_encoding")
    if not isinstance(body, str | None):
        return f"the envelope's body is not text: {_shown(body)}"
    if encoding == "base64":
        try:
            base64.b64decode(body or "")
        except (binascii.Error, ValueError) as exc:
            return f"the envelope's body is not base64: {exc}"
    elif encoding is not None and str(encoding).lower() != "utf-8":
        return f"the envelope's body_encoding {_shown(encoding)} is unknown"
    return None


def envelope_job_id(payload: Any) -> str | None:
    """The job id a queue entry names in its headers, if it names a usable one."""
    headers = payload.get("headers") if isinstance(payload, dict) else None
    job_id = headers.get("id") if isinstance(headers, dict) else None
    return job_id if isinstance(job_id, str) and 0 < len(job_id) <= ID_LIMIT else None


def guard_transport(transport: Any, bad: BadMessages) -> None:
    """Makes ``transport`` (kombu's Redis transport of one broker connection) record and drop a
    queue entry kombu cannot turn into a message instead of ending the worker on it.

    Its ``_deliver`` checks each entry's envelope first (``envelope_problem``); its channels'
    ``_brpop_read`` treats an error raised between Redis's reply and that delivery — kombu
    parsing the entry as JSON — as the entry's fault (the entry is already off the queue). A
    transport of another kind is left alone.
    """
    channel = transport.Channel
    if not hasattr(channel, "_brpop_read"):
        return
    deliver = transport._deliver
    delivered = [0]
    passing = (Empty, OSError, redis.RedisError, *transport.connection_errors)

    def checked_deliver(payload: Any, queue: str) -> Any:
        delivered[0] += 1
        problem = envelope_problem(payload)
        if problem is None:
            return deliver(payload, queue)
        bad.record(problem, job_id=envelope_job_id(payload), raw=payload)
        return None

    class GuardedChannel(channel):  # type: ignore[misc, valid-type]
        def _brpop_read(self, **options: Any) -> Any:
            before = delivered[0]
            try:
                return super()._brpop_read(**options)
            except passing:
                raise
            except Exception as exc:
                if delivered[0] != before:
                    raise
                raw = getattr(exc, "doc", None) or getattr(exc, "object", None)
                bad.record(f"the queue entry is not a message in JSON: {exc}", raw=raw)
                return True

    transport.Channel = GuardedChannel
    transport._deliver = checked_deliver


class GuardedConsumer(Consumer):
    """Celery's worker consumer, acknowledging and recording every message it cannot use."""

    @cached_property
    def bad_messages(self) -> BadMessages:
        return BadMessages(self.app, self.hostname)

    def connection_for_read(self, heartbeat: float | None = None) -> Any:
        connection = self.app.connection_for_read(heartbeat=heartbeat)
        guard_transport(connection.transport, self.bad_messages)
        return self.ensure_connected(connection)

    def create_task_handler(self, promise: Callable[..., Any] = promise) -> Callable[[Any], Any]:
        handle = super().create_task_handler(promise)
        passing = (*self.connection_errors, redis.RedisError)

        def on_task_received(message: Any) -> Any:
            problem = message_problem(message)
            if problem is not None:
                return self.drop_bad(message, problem)
            try:
                return handle(message)
            except passing:
                raise
            except Exception as exc:
                self._forget(message)
                return self.drop_bad(message, f"the worker could not take it: {exc!r}")

        return on_task_received

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self.drop_bad(message, f"Celery cannot read it: {exc}")

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        self.drop_bad(message, f"no task {_shown(message.headers.get('task'))} is registered")

    def drop_bad(self, message: Any, reason: str) -> None:
        """Records ``message`` as bad (``BadMessages``), then acknowledges it."""
        headers = message.headers if isinstance(message.headers, dict) else {}
        task = headers.get("task")
        self.bad_messages.record(
            reason,
            job_id=envelope_job_id({"headers": headers}),
            task=task if isinstance(task, str) else None,
            raw=message.body,
        )
        message.ack()

    def _forget(self, message: Any) -> None:
        """Undoes what Celery's strategy did with ``message`` before it failed: a request
        reserved but never handed to the pool is dropped, with the pool slot it took."""
        for request in [r for r in state.reserved_requests if r.message is message]:
            if request not in state.active_requests:
                state.task_ready(request)
                semaphore = getattr(self.controller, "semaphore", None)
                if semaphore is not None:
                    semaphore.release()


def _seconds_or_none(value: Any) -> bool:
    if value is None:
        return True
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _shown(value: Any) -> str:
    """``value`` as JSON (else its repr), cut to ``SHOWN`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return excerpt(text, SHOWN)


def _text(value: Any) -> str:
    """A message or queue entry as text: bytes decoded (undecodable ones escaped), others
    as ``_shown`` gives them."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value if isinstance(value, str) else _shown(value)
