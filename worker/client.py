"""Submitting jobs and reading their state: what ``ocml submit``, ``status`` and ``watch`` do.

Everything here talks to Redis through a client-side Celery app (``worker.app.make_app``); nothing
loads TensorFlow. Job states are Celery's plus ``PROGRESS`` (``processed_seconds``, ``duration``,
``percent``); a failure is always reported as ``{"error": code, "message": ...}``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from celery.exceptions import TimeLimitExceeded
from celery.result import AsyncResult

from ocml.config.settings import Settings
from ocml.worker.app import TASK_NAME
from ocml.worker.jobs import JobFailed

FINISHED = ("SUCCESS", "FAILURE", "REVOKED")
WATCH_KEY = "ocml:watch:{inbox}"
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".filepart", "~")


def build_job(
    path: str | os.PathLike[str],
    *,
    output_dir: str | os.PathLike[str] | None = None,
    formats: Sequence[str] | None = None,
    preset: str | None = None,
    params: Mapping[str, Any] | None = None,
    no_speech: str | None = None,
    track: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The wire form of a job for ``path`` (made absolute; the worker resolves symlinks).

    Keys left ``None`` are left out (the worker's defaults; ``no_speech``: keep), so a job that
    needs nothing new also runs on workers that do not know the newer keys. ``track`` holds the
    given ones of ``id``, ``flavor``, ``src`` (the Opencast track the SMIL names).
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
    return job


def duration_of(path: str | os.PathLike[str]) -> float | None:
    """The recording's duration in seconds, or None when it cannot be probed here."""
    from ocml.pipeline.decode import probe
    from ocml.pipeline.errors import OcmlError

    try:
        return float(probe(path).duration)
    except (OcmlError, OSError):
        return None


def submit(
    app: Celery, settings: Settings, job: Mapping[str, Any], *, job_id: str | None = None
) -> str:
    """Queues ``job`` as ``ocml.segment`` with time limits scaled to its duration; returns its id."""
    soft, hard = settings.time_limits(duration_of(job["input"]))
    job_id = job_id or str(uuid.uuid4())
    app.send_task(
        TASK_NAME, args=[dict(job)], task_id=job_id, soft_time_limit=soft, time_limit=hard
    )
    return job_id


def job_status(app: Celery, job_id: str) -> dict[str, Any]:
    """``{"id", "state"}`` plus ``progress``, ``result`` or ``error`` as the state has them."""
    res = AsyncResult(job_id, app=app)
    state = res.state
    info = res.info
    status: dict[str, Any] = {"id": job_id, "state": state}
    if state == "PROGRESS" and isinstance(info, dict):
        status["progress"] = info
    elif state == "SUCCESS":
        status["result"] = info
    elif state in ("FAILURE", "RETRY", "REVOKED"):
        status["error"] = error_of(info)
    return status


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
) -> list[dict[str, Any]]:
    """Polls until every job has finished (or ``timeout`` s passed); returns the last statuses."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        statuses = [job_status(app, job_id) for job_id in job_ids]
        if on_update is not None:
            on_update(statuses)
        if all(s["state"] in FINISHED for s in statuses):
            return statuses
        if deadline is not None and time.monotonic() >= deadline:
            return statuses
        time.sleep(poll)


@dataclass(frozen=True)
class InboxFile:
    """A file in a hot folder, identified by name, size and modification time."""

    path: Path
    size: int
    mtime_ns: int

    @property
    def key(self) -> str:
        return f"{self.path.name}|{self.size}|{self.mtime_ns}"


def scan_inbox(inbox: Path) -> dict[str, InboxFile]:
    """The candidate files directly in ``inbox`` by name (no hidden or partial-upload names)."""
    found: dict[str, InboxFile] = {}
    for entry in os.scandir(inbox):
        name = entry.name
        if name.startswith(".") or name.endswith(PARTIAL_SUFFIXES):
            continue
        try:
            if not entry.is_file():
                continue
            st = entry.stat()
        except FileNotFoundError:
            continue
        found[name] = InboxFile(Path(entry.path), st.st_size, st.st_mtime_ns)
    return found


def settled(
    previous: Mapping[str, InboxFile],
    current: Mapping[str, InboxFile],
    *,
    now: float,
    settle: float,
) -> list[InboxFile]:
    """Files fully written: unchanged since the previous scan and untouched for ``settle`` s."""
    return sorted(
        (
            f
            for name, f in current.items()
            if previous.get(name) == f and now - f.mtime_ns / 1e9 >= settle
        ),
        key=lambda f: f.path.name,
    )


def claim(app: Celery, inbox: Path, item: InboxFile, job_id: str) -> bool:
    """Records in Redis that ``item`` gets ``job_id``; False if it was claimed before (a restart)."""
    key = WATCH_KEY.format(inbox=os.path.realpath(inbox))
    return bool(app.backend.client.hsetnx(key, item.key, job_id))


def submit_new(
    app: Celery,
    settings: Settings,
    inbox: Path,
    ready: Iterable[InboxFile],
    make_job: Callable[[Path], dict[str, Any]],
) -> list[tuple[Path, str]]:
    """Submits each ready file not claimed before; returns (path, job id) of those submitted."""
    submitted = []
    for item in ready:
        job_id = str(uuid.uuid4())
        if claim(app, inbox, item, job_id):
            submitted.append((item.path, submit(app, settings, make_job(item.path), job_id=job_id)))
    return submitted
