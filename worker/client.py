"""Submitting jobs and reading their state: what ``ocml submit`` and ``status`` do (and ``watch``,
through ``worker.watch``).

Everything here talks to Redis through a client-side Celery app (``worker.app.make_app``); nothing
loads TensorFlow. Job states are Celery's plus ``PROGRESS`` (``processed_seconds``, ``duration``,
``percent``), ``QUEUED`` (submitted, not started: ``submit`` records every job before sending it)
and ``LOST`` (Redis knows nothing of the job: it vanished with a Redis restart without
persistence, expired, or was never submitted); a failure, and ``LOST``, is always reported as
``{"error": code, "message": ...}``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from celery import Celery
from celery.exceptions import TimeLimitExceeded
from celery.result import AsyncResult
from kombu.exceptions import OperationalError

from ocml.config.settings import Settings
from ocml.pipeline.errors import excerpt
from ocml.worker import runs
from ocml.worker.jobs import TASK_NAME, JobFailed

FINISHED = ("SUCCESS", "FAILURE", "REVOKED", "LOST")
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OperationalError)
"""What a client sees when Redis cannot be reached (redis-py directly, or through kombu)."""
CONNECT_TIMEOUT = 3.0


class RedisUnreachable(Exception):
    """Redis did not answer; the message names the URL without its password."""


def redis_location(url: str) -> str:
    """``scheme://host:port/db`` of a Redis URL, without user name or password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    db = parts.path.lstrip("/") or "0"
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}/{db}"


def check_redis(settings: Settings) -> None:
    """Raises ``RedisUnreachable`` unless the broker and the result store answer a PING within
    a few seconds (clients fail fast; workers keep retrying)."""
    for url in dict.fromkeys((settings.broker_url, settings.result_backend)):
        if url.startswith("sentinel://"):
            continue
        connection = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
        )
        try:
            connection.ping()
        except redis.RedisError as exc:
            raise RedisUnreachable(
                f"cannot reach Redis at {redis_location(url)}: {excerpt(str(exc), 200)}"
            ) from None
        finally:
            connection.close()


def build_job(
    path: str | os.PathLike[str],
    *,
    output_dir: str | os.PathLike[str] | None = None,
    formats: Sequence[str] | None = None,
    preset: str | None = None,
    params: Mapping[str, Any] | None = None,
    no_speech: str | None = None,
    track: Mapping[str, str] | None = None,
    model: str | Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The wire form of a job for ``path`` (made absolute; the worker resolves symlinks).

    Keys left ``None`` are left out (the worker's defaults; ``no_speech``: keep), so a job that
    needs nothing new also runs on workers that do not know the newer keys. ``track`` holds the
    given ones of ``id``, ``flavor``, ``src`` (the Opencast track the SMIL names); ``model`` is
    the model the job expects (``jobs.ModelIdentity.expectation``), None for any.
    """
    job: dict[str, Any] = {"input": os.path.abspath(path)}
    if output_dir is not None:
        job["output_dir"] = os.path.abspath(output_dir)
    if formats:
        job["formats"] = list(formats)
    if preset is not None:
        job["preset"] = preset
    if params:
        job["params"] = dict(params)
    if no_speech is not None:
        job["no_speech"] = no_speech
    if track:
        job["track"] = dict(track)
    if model is not None:
        job["model"] = model if isinstance(model, str) else dict(model)
    return job


def result_folder(path: Path, *, inbox: Path) -> Path:
    """A hot-folder file's results folder, relative to the output directory: its path below
    ``inbox`` without the suffix (``a/presenter.mp4`` gives ``a/presenter``), so files of the
    same name in different folders keep their own results."""
    relative = path.relative_to(inbox)
    return relative.parent / relative.stem


def result_clashes(paths: Iterable[Path], *, inbox: Path) -> dict[Path, Path]:
    """Each of ``paths`` whose ``result_folder`` another one shares (``talk.mp4`` and
    ``talk.wav``), mapped to the first such other path in sorted order."""
    first: dict[Path, Path] = {}
    clashes: dict[Path, Path] = {}
    for path in sorted(paths):
        folder = result_folder(path, inbox=inbox)
        other = first.setdefault(folder, path)
        if other != path:
            clashes[path] = other
            clashes.setdefault(other, path)
    return clashes


def duration_of(path: str | os.PathLike[str]) -> float | None:
    """The recording's duration in seconds, or None when it cannot be probed here."""
    from ocml.pipeline.decode import probe
    from ocml.pipeline.errors import OcmlError

    try:
        return float(probe(path).duration)
    except (OcmlError, OSError):
        return None


def submit(
    app: Celery,
    settings: Settings,
    job: Mapping[str, Any],
    *,
    job_id: str | None = None,
    duration: float | None = None,
) -> str:
    """Records ``job`` as ``QUEUED``, then queues it as ``ocml.segment`` with time limits scaled
    to its duration (probed here unless given); returns its id."""
    job_id = job_id or str(uuid.uuid4())
    soft, hard = record_job(app, settings, job, job_id=job_id, duration=duration)
    app.send_task(
        TASK_NAME, args=[dict(job)], task_id=job_id, soft_time_limit=soft, time_limit=hard
    )
    return job_id


def record_job(
    app: Celery,
    settings: Settings,
    job: Mapping[str, Any],
    *,
    job_id: str,
    duration: float | None = None,
) -> tuple[float, float]:
    """Records ``job`` in Redis as ``QUEUED`` and pending, with all it takes to send it again
    should the broker lose its message; returns its (soft, hard) time limits."""
    if duration is None:
        duration = duration_of(job["input"])
    soft, hard = settings.time_limits(duration)
    record = {
        "input": excerpt(str(job["input"])),
        "duration": -1.0 if duration is None else duration,
        "job": json.dumps(dict(job)),
        "soft": soft,
        "hard": hard,
    }
    runs.mark_queued(app.backend.client, job_id, record, expires=settings.result_expires)
    return soft, hard


def lost_error(job_id: str) -> dict[str, str]:
    return {
        "error": "job_lost",
        "message": (
            f"Redis has no trace of job {job_id}: it is not queued, running or finished "
            "(lost when Redis restarted without persistence, expired after result_expires, "
            "or never submitted)"
        ),
    }


def job_status(app: Celery, job_id: str) -> dict[str, Any]:
    """``{"id", "state"}`` plus ``progress``, ``result`` or ``error`` as the state has them."""
    res = AsyncResult(job_id, app=app)
    state = res.state
    info = res.info
    status: dict[str, Any] = {"id": job_id, "state": state}
    if state == "PENDING":
        if runs.queued_record(app.backend.client, job_id) is not None:
            status["state"] = runs.QUEUED
        elif runs.holder(app.backend.client, job_id) is not None:
            status["state"] = "STARTED"
        else:
            status["state"] = "LOST"
            status["error"] = lost_error(job_id)
    elif state == "PROGRESS" and isinstance(info, dict):
        status["progress"] = info
    elif state == "SUCCESS":
        status["result"] = info
    elif state in ("FAILURE", "RETRY", "REVOKED"):
        status["error"] = error_of(info)
    return status


def bad_messages(app: Celery) -> list[dict[str, Any]]:
    """The messages workers could not use and dropped (``worker.messages``), newest first:
    ``at``, ``job_id`` (or None), ``task``, ``reason``, ``worker``, ``message`` (an excerpt)."""
    return runs.bad_messages(app.backend.client)


def error_of(info: Any) -> dict[str, str]:
    """The ``{"error": code, "message"}`` form of whatever a failed or retrying task stored."""
    if isinstance(info, JobFailed):
        return dict(info.error)
    if isinstance(info, TimeLimitExceeded):
        return {"error": "time_limit", "message": f"the job exceeded its hard time limit ({info})"}
    if isinstance(info, BaseException):
        return {"error": "internal_error", "message": f"{type(info).__name__}: {info}"}
    return {"error": "unknown", "message": repr(info)}


def wait(
    app: Celery,
    job_ids: Sequence[str],
    *,
    poll: float = 0.5,
    on_update: Callable[[list[dict[str, Any]]], None] | None = None,
    timeout: float | None = None,
    lost_after: float = 10.0,
    on_lost: Callable[[str], bool] | None = None,
    outage: float = 60.0,
) -> list[dict[str, Any]]:
    """Polls until every job has finished (or ``timeout`` s passed); returns the last statuses.

    A job counts as ``LOST`` once Redis has had no trace of it for ``lost_after`` s (a running
    job's state briefly disappears when Redis restarts without persistence); ``on_lost(job_id)``
    may submit it again and return True to keep waiting for it. Redis outages shorter than
    ``outage`` s are waited out; a longer one raises ``RedisUnreachable``.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    missing_since: dict[str, float] = {}
    unreachable_since: float | None = None
    while True:
        try:
            statuses = [job_status(app, job_id) for job_id in job_ids]
            unreachable_since = None
        except UNREACHABLE as exc:
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            if now - unreachable_since > outage:
                location = redis_location(app.conf.result_backend)
                raise RedisUnreachable(
                    f"cannot reach Redis at {location}: {excerpt(str(exc), 200)}"
                ) from None
            time.sleep(poll)
            continue
        now = time.monotonic()
        for status in statuses:
            if status["state"] != "LOST":
                missing_since.pop(status["id"], None)
                continue
            since = missing_since.setdefault(status["id"], now)
            if now - since < lost_after:
                status["state"] = runs.QUEUED
                del status["error"]
            elif on_lost is not None and on_lost(status["id"]):
                missing_since.pop(status["id"])
                status["state"] = runs.QUEUED
                del status["error"]
        if on_update is not None:
            on_update(statuses)
        if all(s["state"] in FINISHED for s in statuses):
            return statuses
        if deadline is not None and time.monotonic() >= deadline:
            return statuses
        time.sleep(poll)
