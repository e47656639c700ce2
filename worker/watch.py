"""The hot folder behind ``ocml watch``: when a file is ready, whether it was done, its job's end.

A file is ready once it has stayed the same (size, modification time, inode) for the settle time
on the watcher's own clock and no process on this host has it open for writing (`open_for_writing`).
Each file has one record in Redis, ``ocml:watch:<path>``: the version (size and mtime) last
submitted or found done, and its job. The record expires ``result_expires`` s after the watcher
last saw the file, so records of deleted files go; a running watcher sets it again should Redis
lose it. A ready file whose record names its version is done. Otherwise, when the result JSON the
job would write names this file with the file's sha256, the file is done already (a Redis that
lost its data, a record that expired) and is recorded, not submitted. Otherwise it is submitted,
after the job of its previous version has ended, and a result set of that previous version is
removed first, so the old result never stands as the new file's.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from ocml.config.settings import Settings
from ocml.pipeline.errors import OcmlError
from ocml.pipeline.writers import FORMATS, OpenDir, remove_result_set
from ocml.worker.client import FINISHED, job_status, result_clashes, result_folder, submit
from ocml.worker.jobs import Job, JobInvalid, parse_job, result_paths

RECORD_KEY = "ocml:watch:{path}"
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".filepart", "~")
REFRESH_MAX = 3600.0
"""Seconds at most between two renewals of the records of the files present."""
_WRITE_ACCESS = (os.O_WRONLY, os.O_RDWR)


@dataclass(frozen=True)
class InboxFile:
    """A file in a hot folder as last seen: size, modification time and (device, inode)."""

    path: Path
    size: int
    mtime_ns: int
    inode: tuple[int, int]

    def same_version(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` is of this file as it is now (same size and mtime)."""
        return record.get("size") == self.size and record.get("mtime_ns") == self.mtime_ns


@dataclass(frozen=True)
class Event:
    """What the watcher did or saw for one file.

    ``kind``: ``submitted``, ``done``, ``failed`` (``error``), ``lost`` (the job vanished from
    Redis; the file is submitted again), ``present`` (its result was there already),
    ``refused`` (not submitted: ``error``), ``replaced`` (the previous version's result set was
    removed before the new job) or ``note`` (``detail`` says what went wrong on the side).
    """

    kind: str
    path: Path
    job_id: str | None = None
    error: Mapping[str, str] | None = None
    detail: str = ""


@dataclass
class _Pending:
    """A job this watcher waits for: its file, and since when Redis has had no trace of it."""

    item: InboxFile
    missing_since: float | None = None


@dataclass
class _Known:
    """A file whose current version is recorded (``record`` is the stored JSON) or refused."""

    item: InboxFile
    record: str | None


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
        found[name] = InboxFile(
            Path(entry.path), st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino)
        )
    return found


def open_for_writing(
    files: Collection[tuple[int, int]], *, proc: Path = Path("/proc")
) -> set[tuple[int, int]]:
    """Which of ``files`` (device, inode) a process on this host has open for writing.

    Read from Linux's ``/proc/<pid>/fd`` and ``fdinfo``: only processes this user may inspect
    (all of them as root) are seen, and writers on other hosts of a network filesystem never
    are; without ``/proc`` nothing is. The settle time covers what this cannot see.
    """
    found: set[tuple[int, int]] = set()
    if not files:
        return found
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        for fd, ident in _open_files(proc / pid):
            if ident in files and _opened_for_writing(proc / pid / "fdinfo" / fd):
                found.add(ident)
    return found


def _open_files(process: Path) -> Iterator[tuple[str, tuple[int, int]]]:
    """(fd, (device, inode)) of each file a process holds open, as far as it may be seen."""
    try:
        fds = os.listdir(process / "fd")
    except OSError:
        return
    for fd in fds:
        try:
            st = os.stat(process / "fd" / fd)
        except OSError:
            continue
        yield fd, (st.st_dev, st.st_ino)


def _opened_for_writing(fdinfo: Path) -> bool:
    try:
        text = fdinfo.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8) & os.O_ACCMODE in _WRITE_ACCESS
    return False


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class Watcher:
    """One hot folder: call `scan` every few seconds; it returns what happened since the last."""

    def __init__(
        self,
        app: Celery,
        settings: Settings,
        inbox: Path,
        *,
        make_job: Callable[[Path], dict[str, Any]],
        settle: float,
        tuned: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``make_job(path)`` builds a file's job (where its results go); ``tuned`` are the
        model's tuned post-processing values, so a job is checked here as the worker will."""
        if not settle >= 0:
            raise ValueError(f"settle must be a number of seconds >= 0, got {settle!r}")
        self.app = app
        self.settings = settings
        self.inbox = Path(os.path.realpath(inbox))
        self.make_job = make_job
        self.settle = settle
        self.tuned = tuned
        self.clock = clock
        self._since: dict[str, tuple[InboxFile, float]] = {}
        self._known: dict[str, _Known] = {}
        self._pending: dict[str, _Pending] = {}
        self._clashing: set[Path] = set()
        self._refreshed = float("-inf")

    @property
    def redis(self) -> redis.Redis:
        return self.app.backend.client

    @property
    def lost_after(self) -> float:
        """Seconds a job may be unknown to Redis before it counts as lost (as for submit)."""
        return max(5.0, 2 * self.settings.lease_interval)

    def scan(self) -> list[Event]:
        """Looks at the folder once: the outcomes of jobs that ended, then the ready files."""
        now = self.clock()
        current = scan_inbox(self.inbox)
        events = self._outcomes(now)
        ready = self._ready(current, now)
        events.extend(self._clashes(current))
        ready = [item for item in ready if item.path not in self._clashing]
        writing = open_for_writing({item.inode for item in ready})
        for item in ready:
            if item.inode not in writing:
                events.extend(self._consider(item))
        self._refresh(current, now)
        return events

    def _clashes(self, current: Mapping[str, InboxFile]) -> list[Event]:
        """Files whose results folder another file here shares (``talk.mp4``, ``talk.wav``): never
        submitted while both are present; each refused once when its clash begins."""
        clashes = result_clashes([item.path for item in current.values()], inbox=self.inbox)
        events = [
            Event(
                "refused",
                path,
                error={
                    "error": "results_collide",
                    "message": f"{clashes[path]} is in the folder too: their results would "
                    f"share the folder {result_folder(path, inbox=self.inbox)}/ (the same name "
                    "without the suffix); rename one",
                },
            )
            for path in sorted(set(clashes) - self._clashing)
        ]
        self._clashing = set(clashes)
        return events

    def _ready(self, current: Mapping[str, InboxFile], now: float) -> list[InboxFile]:
        """Files unchanged for ``settle`` s whose version is neither recorded nor refused yet."""
        since = {}
        for name, item in current.items():
            seen = self._since.get(name)
            since[name] = seen if seen is not None and seen[0] == item else (item, now)
        self._since = since
        self._known = {n: k for n, k in self._known.items() if n in current}
        return [
            item
            for name, (item, first) in sorted(since.items())
            if now - first >= self.settle
            and (name not in self._known or self._known[name].item != item)
        ]

    def _consider(self, item: InboxFile) -> list[Event]:
        """Records ``item`` as done, or submits it; nothing while its previous version's job
        runs or another watcher records it first."""
        key = RECORD_KEY.format(path=item.path)
        with self.redis.pipeline() as pipe:
            pipe.watch(key)
            stored = pipe.get(key)
            record = _parse_record(stored)
            if record is not None and item.same_version(record):
                self._known[item.path.name] = _Known(item, _text(stored))
                self._follow(record.get("job"), item)
                return []
            if self._busy(item, record):
                return []
            raw = self.make_job(item.path)
            try:
                job = parse_job(raw, self.settings, tuned=self.tuned, formats_known=FORMATS)
            except JobInvalid as exc:
                self._known[item.path.name] = _Known(item, None)
                return [Event("refused", item.path, error=exc.to_dict())]
            previous = self._previous_result(job)
            try:
                done = previous is not None and previous == file_sha256(item.path)
            except OSError:  # gone or replaced meanwhile: the next scans look again
                return []
            if done:
                self._record(pipe, key, item, None)
                return [Event("present", item.path, detail=str(result_paths(job)["json"]))]
            job_id = str(uuid.uuid4())
            if not self._record(pipe, key, item, job_id):
                return []
        events = [] if previous is None else self._remove_previous(job, item)
        submit(self.app, self.settings, raw, job_id=job_id)
        self._pending[job_id] = _Pending(item)
        return [*events, Event("submitted", item.path, job_id)]

    def _follow(self, job_id: str | None, item: InboxFile) -> None:
        """Reports the outcome of a job an earlier watcher submitted, if it has not ended."""
        if job_id is None or job_id in self._pending:
            return
        if job_status(self.app, job_id)["state"] not in FINISHED:
            self._pending[job_id] = _Pending(item)

    def _busy(self, item: InboxFile, record: Mapping[str, Any] | None) -> bool:
        """Whether a job for an earlier version of ``item`` has still to end (the new one waits,
        so the results are written in the order of the versions)."""
        if any(p.item.path == item.path for p in self._pending.values()):
            return True
        job_id = None if record is None else record.get("job")
        return job_id is not None and job_status(self.app, job_id)["state"] not in FINISHED

    def _record(self, pipe: Any, key: str, item: InboxFile, job_id: str | None) -> bool:
        """Stores ``item``'s version with ``job_id`` unless the record changed since it was
        read (another watcher); True when stored."""
        value = json.dumps(
            {"size": item.size, "mtime_ns": item.mtime_ns, "job": job_id}, sort_keys=True
        )
        pipe.multi()
        pipe.set(key, value, ex=self.settings.result_expires)
        try:
            pipe.execute()
        except redis.WatchError:
            return False
        self._known[item.path.name] = _Known(item, value)
        return True

    def _previous_result(self, job: Job) -> str | None:
        """The sha256 of the input named by the result JSON where ``job`` will write its own,
        when that JSON is a result of this very input path; else None."""
        try:
            document = json.loads(result_paths(job)["json"].read_bytes())
            source = document["input"]
            if source["path"] == str(job.input) and isinstance(source["sha256"], str):
                return source["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    def _remove_previous(self, job: Job, item: InboxFile) -> list[Event]:
        """Removes the result set of the file's previous version before its new job runs."""
        names = [path.name for path in result_paths(job, FORMATS).values()]
        root = os.path.realpath(self.settings.output_root)
        try:
            with OpenDir.open(job.output_dir, root=root) as directory:
                removed = remove_result_set(directory, names)
        except (OSError, OcmlError) as exc:
            note = f"could not remove the previous version's results ({exc}); they stay until "
            return [Event("note", item.path, detail=note + "the new job replaces them")]
        return [Event("replaced", item.path, detail=", ".join(removed))]

    def _outcomes(self, now: float) -> list[Event]:
        """The ends of the jobs this watcher submitted, as they come."""
        events = []
        for job_id, pending in list(self._pending.items()):
            status = job_status(self.app, job_id)
            state = status["state"]
            if state == "LOST":
                if pending.missing_since is None:
                    pending.missing_since = now
                if now - pending.missing_since < self.lost_after:
                    continue
                self._forget(pending.item)
            else:
                pending.missing_since = None
            if state not in FINISHED:
                continue
            del self._pending[job_id]
            kind = {"SUCCESS": "done", "LOST": "lost"}.get(state, "failed")
            events.append(Event(kind, pending.item.path, job_id, error=status.get("error")))
        return events

    def _forget(self, item: InboxFile) -> None:
        """Drops the record of a lost job, so the file is looked at again at the next scan."""
        known = self._known.pop(item.path.name, None)
        if known is not None and known.record is not None:
            _delete_if(self.redis, RECORD_KEY.format(path=item.path), known.record)

    def _refresh(self, current: Mapping[str, InboxFile], now: float) -> None:
        """Every quarter of ``result_expires`` (at most hourly), renews the records of the files
        present, and stores them again where Redis lost them."""
        ttl = self.settings.result_expires
        if now - self._refreshed < min(ttl / 4, REFRESH_MAX):
            return
        self._refreshed = now
        with self.redis.pipeline(transaction=False) as pipe:
            for name, known in self._known.items():
                if known.record is None or current.get(name) != known.item:
                    continue
                key = RECORD_KEY.format(path=known.item.path)
                pipe.expire(key, ttl)
                pipe.set(key, known.record, ex=ttl, nx=True)
            pipe.execute()


def _text(stored: bytes | str) -> str:
    return stored if isinstance(stored, str) else stored.decode()


def _parse_record(stored: bytes | str | None) -> dict[str, Any] | None:
    if stored is None:
        return None
    try:
        record = json.loads(stored)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


_DELETE_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


def _delete_if(client: redis.Redis, key: str, value: str) -> None:
    """Deletes ``key`` if it still holds ``value`` (one atomic step)."""
    client.eval(_DELETE_IF, 1, key, value)
