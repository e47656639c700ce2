"""Helpers for the worker tests: settings files, real worker subprocesses, Redis databases.

Workers run as separate processes (``ocml worker`` through ``cli.queue``) against a real
Redis; nothing here is a test itself.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import redis
import yaml
from kombu.exceptions import OperationalError

from ocml.config.settings import Settings, load_settings
from ocml.worker.app import make_app
from ocml.worker.jobs import TASK_NAME
from tests.media import speechlike, write_wav

ROOT = Path(__file__).resolve().parents[1]
SR = 16000

# Which database of the machine's Redis (127.0.0.1:6379) the worker and lease tests flush and use,
# and the port of the private Redis the recovery tests start: set both to run two checkouts'
# suites side by side without one flushing the other's queue.
TEST_REDIS_DB = int(os.environ.get("OCML_TEST_REDIS_DB", "13"))
TEST_REDIS_URL = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
TEST_OWN_REDIS_PORT = int(os.environ.get("OCML_TEST_OWN_REDIS_PORT", "6397"))

# Short limits so redelivery and recovery happen within seconds in tests.
TEST_SETTINGS: dict[str, Any] = {
    "time_limit_base": 30.0,
    "time_limit_per_audio_second": 0.2,
    "time_limit_max": 60.0,
    "time_limit_grace": 5.0,
    "visibility_timeout": 5.0,
    "lease_interval": 0.5,
    "unacked_restore_interval": 1.0,
    "max_deliveries": 2,
    "max_retries": 2,
    "retry_backoff": 0.2,
    "retry_backoff_max": 1.0,
    "progress_interval": 0.2,
    "result_expires": 3600,
    "formats": ["json", "smil"],
}


class OwnRedis:
    """A private ``redis-server`` on ``port``; with ``persist``, every write goes to an
    append-only file in ``directory`` (fsync always), else nothing survives a restart."""

    def __init__(self, directory: Path, port: int, *, persist: bool = True) -> None:
        self.directory = directory
        self.port = port
        self.persist = persist
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persist else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = redis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            for _ in range(200):
                if self.proc.poll() is not None:
                    break
                try:
                    if probe.info("server")["process_id"] == self.proc.pid:
                        return
                except redis.ConnectionError:
                    pass
                time.sleep(0.1)
        finally:
            probe.close()
        self.kill()
        raise RuntimeError(f"could not start redis-server on port {self.port} (in use?)")

    def stop(self) -> None:
        """Shuts the server down cleanly (SIGTERM)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILLs the server, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def write_settings(
    path: Path, *, redis_url: str, media: Path, output: Path, model: Path, **overrides: Any
) -> Path:
    """A settings YAML for a test worker; returns its path."""
    data = {
        **TEST_SETTINGS,
        "broker_url": redis_url,
        "result_backend": redis_url,
        "media_roots": [str(media)],
        "output_root": str(output),
        "model": str(model),
        **overrides,
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def media_and_results(base: Path) -> tuple[Path, Path]:
    """The ``media`` and ``results`` folders below ``base``, made if missing."""
    media, output = base / "media", base / "results"
    media.mkdir(exist_ok=True)
    output.mkdir(exist_ok=True)
    return media, output


def fleet_place(
    base: Path, *, redis_url: str, model: Path | str, **overrides: Any
) -> dict[str, Any]:
    """The ground a test fleet stands on: ``media`` and ``results`` folders below ``base``, a
    ``settings.yaml`` naming them (``config``), those ``settings`` and a client ``app``."""
    media, output = media_and_results(base)
    config = write_settings(
        base / "settings.yaml",
        redis_url=redis_url,
        media=media,
        output=output,
        model=model,
        **overrides,
    )
    settings = settings_from(config)
    return {
        "base": base,
        "config": config,
        "settings": settings,
        "app": make_app(settings),
        "media": media,
        "output": output,
    }


def model_copy(source: Path, target: Path, **changes: Any) -> Path:
    """The SavedModel at ``source`` copied to ``target`` with its metadata changed by
    ``changes`` (a key given None is removed): another build or tuning of the same network."""
    shutil.copytree(source, target)
    file = target / "assets" / "ocml.json"
    metadata = json.loads(file.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            metadata.pop(key)
        else:
            metadata[key] = value
    file.write_text(json.dumps(metadata), encoding="utf-8")
    return target


def recording(path: Path, seconds: float, *, seed: int = 0) -> Path:
    """A 16 kHz WAV of ``seconds`` s: a 20 s speech-like pattern (bursts and pauses) repeated."""
    length = min(seconds, 20.0)
    bursts = [
        (a, min(b, length - 0.2))
        for a, b in ((0.5, 4.0), (5.5, 9.0), (12.0, 17.5))
        if a < length - 0.5
    ]
    block = speechlike(SR, length, bursts, seed=seed)
    repeats = int(np.ceil(seconds / 20.0))
    return write_wav(path, np.tile(block, repeats)[: int(seconds * SR)], SR)


def progress_status(
    app: Any, job_id: str, *, timeout: float = 60.0, other_than_pid: int | None = None
) -> dict[str, Any]:
    """The job's status once a pool process (not ``other_than_pid``) reports progress on it.

    Fails (AssertionError with the status) if the job ends or stays silent for ``timeout`` s.
    """
    from ocml.worker import client

    deadline = time.monotonic() + timeout
    while True:
        status = client.job_status(app, job_id)
        if status["state"] == "PROGRESS" and status["progress"]["pid"] != other_than_pid:
            return status
        assert status["state"] in ("QUEUED", "STARTED", "PROGRESS"), status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def ocml(
    *args: str, config: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Runs the installed ``ocml`` console script with ``--config config`` (and ``env`` added to
    its environment)."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("ocml")), *args, "--config", str(config)],
        cwd=ROOT,
        env={**worker_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def settings_from(path: Path) -> Settings:
    return load_settings(path, env={})


def flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def under_tmpfs(path: Path, *, read_only: bool = False) -> list[str]:
    """A command prefix that runs a process in a mount namespace of its own where an empty
    tmpfs (read-only with ``read_only``) hides ``path``: a host whose media mount is missing,
    or whose results mount is read-only."""
    options = "-o ro " if read_only else ""
    script = f'mount -t tmpfs {options}ocml-test "$0" && exec "$@"'
    return ["unshare", "--map-root-user", "--mount", "sh", "-c", script, str(path)]


def can_hide_mounts() -> bool:
    """Whether ``under_tmpfs`` works here (it needs user or mount namespaces)."""
    probe = subprocess.run(
        [*under_tmpfs(Path("/tmp")), "true"], capture_output=True, timeout=30, check=False
    )
    return probe.returncode == 0


def worker_env() -> dict[str, str]:
    """The environment for a worker subprocess: no inherited OCML_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCML_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def envelope(
    body: Any = None,
    *,
    headers: Mapping[str, Any] | None = None,
    raw_body: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[str, dict[str, Any]]:
    """(job id, the queue entry) of an ``ocml.segment`` message made by hand, as kombu's Redis
    transport keeps it: JSON headers and properties around a base64 body (``body`` as JSON, or
    ``raw_body`` as given); ``headers`` override Celery's."""
    job_id = str(uuid.uuid4())
    data = json.dumps(body).encode() if raw_body is None else raw_body
    return job_id, {
        "body": base64.b64encode(data).decode(),
        "content-encoding": "utf-8",
        "content-type": content_type,
        "headers": {
            "lang": "py",
            "task": TASK_NAME,
            "id": job_id,
            "root_id": job_id,
            "parent_id": None,
            "retries": 0,
            "timelimit": [None, None],
            "eta": None,
            "expires": None,
            "argsrepr": "",
            "kwargsrepr": "",
            "origin": "by hand",
            **(headers or {}),
        },
        "properties": {
            "correlation_id": job_id,
            "reply_to": str(uuid.uuid4()),
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": "celery"},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }


def poison_messages(job: Mapping[str, Any]) -> dict[str, tuple[str | None, str]]:
    """Every kind of message the fleet cannot use, by name: (the job id it names or None, the
    queue entry as Redis holds it). ``job`` is a good job, for the kinds whose fault is not in it."""
    good = [[dict(job)], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    made: dict[str, tuple[str, dict[str, Any]]] = {
        "body [1, 2]": envelope([1, 2]),
        "body {}": envelope({}),
        "body null": envelope(None),
        "timelimit 'x'": envelope(good, headers={"timelimit": "x"}),
        "timelimit ['x', 1]": envelope(good, headers={"timelimit": ["x", 1]}),
        "retries 'many'": envelope(good, headers={"retries": "many"}),
        "ETA not a date": envelope(good, headers={"eta": "next tuesday"}),
        "body not JSON": envelope(None, raw_body=b"{not json"),
        "body not UTF-8": envelope(None, raw_body=b"\xff\xfe garbage"),
        "pickled body": envelope(good, content_type="application/x-python-serialize"),
        "unknown task": envelope(good, headers={"task": "ocml.nothing"}),
        "two jobs": envelope([[dict(job), dict(job)], {}, None]),
        "a callback": envelope([[dict(job)], {}, {"callbacks": [{"task": "x"}]}]),
    }
    entries = {name: (job_id, json.dumps(entry)) for name, (job_id, entry) in made.items()}
    _, no_id = envelope(good)
    del no_id["headers"]["id"]
    _, broken = envelope(good)
    broken["body"] = "§§ not base64 §§"
    no_tag = envelope(good)[1]
    del no_tag["properties"]["delivery_tag"]
    return {
        **entries,
        "no job id": (None, json.dumps(no_id)),
        "entry not JSON": (None, "this is not JSON"),
        "entry not an envelope": (None, "[1, 2]"),
        "entry with an unknown JSON type": (None, '{"__type__": "nope", "__value__": 1}'),
        "envelope without a delivery tag": (no_tag["headers"]["id"], json.dumps(no_tag)),
        "body not base64": (broken["headers"]["id"], json.dumps(broken)),
    }


class WorkerProcess:
    """An ``ocml worker`` main process with its prefork children, logging to a file; run under
    ``prefix`` (e.g. ``under_tmpfs``) and with ``env`` added to its environment if given."""

    def __init__(
        self,
        config: Path,
        *,
        name: str,
        concurrency: int,
        log: Path,
        prefix: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = f"{name}@test"
        self.log = log
        code = "import sys; from tests.worker_bootstrap import main; main(sys.argv[1:])"
        self._log_handle = open(log, "ab")
        self.proc = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-c",
                code,
                "--config",
                str(config),
                "-c",
                str(concurrency),
                "-n",
                self.name,
                "-l",
                "info",
            ],
            cwd=ROOT,
            env={**worker_env(), **(env or {})},
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, settings: Settings, *, timeout: float = 120.0) -> None:
        """Returns once the worker answers a ping and all its pool processes loaded the model."""
        app = make_app(settings)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                replies = app.control.inspect(destination=[self.name], timeout=1.0).stats()
            except (redis.ConnectionError, OperationalError):
                # kombu's producer pools are shared by every app of a process: a connection a
                # test cut (CLIENT KILL) fails once, and is made again on the next use.
                replies = None
            stats = (replies or {}).get(self.name)
            if stats and len(stats["pool"]["processes"]) >= stats["pool"]["max-concurrency"]:
                if self.log.read_text().count("model ready") >= stats["pool"]["max-concurrency"]:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"worker {self.name} not ready: {self.log.read_text()[-3000:]}")

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def kill(self) -> None:
        """SIGKILL the main process and its children, as a host crash would."""
        pids = self.child_pids()
        os.kill(self.proc.pid, signal.SIGKILL)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), SIGKILL of the process group if that takes too long."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        else:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log_handle.close()


@contextmanager
def running_workers(
    config: Path,
    log_dir: Path,
    *,
    names: tuple[str, ...],
    concurrency: int,
    configs: Mapping[str, Path] | None = None,
    prefixes: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[list[WorkerProcess]]:
    """Starts one worker per name, waits until all are ready, stops them afterwards; a worker
    named in ``configs`` uses its own settings file, one named in ``prefixes`` runs under that
    command prefix."""
    settings = settings_from(config)
    workers = [
        WorkerProcess(
            (configs or {}).get(n, config),
            name=n,
            concurrency=concurrency,
            log=log_dir / f"{n}.log",
            prefix=(prefixes or {}).get(n, ()),
        )
        for n in names
    ]
    try:
        for w in workers:
            w.wait_ready(settings)
        yield workers
    finally:
        for w in workers:
            w.stop()


class WatchProcess:
    """A running ``ocml watch ARGS --config config``; its output lines are collected as they come
    (stdout's in ``lines`` as `wait_for` meets them, stderr's in ``notes``)."""

    def __init__(self, *args: str, config: Path) -> None:
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("ocml")), "watch", *args, "--config", str(config)],
            cwd=ROOT,
            env=worker_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.notes: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._new.put)),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.notes.append)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(pipe: Any, keep: Callable[[str], None]) -> None:
        for line in pipe:
            keep(line.rstrip("\n"))

    def wait_for(self, wanted: Callable[[str], bool], *, timeout: float = 60.0) -> str:
        """The first stdout line (from now on) for which ``wanted`` is true; fails after
        ``timeout`` s or when the watcher exits."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._new.get(timeout=0.2)
            except queue.Empty:
                assert self.proc.poll() is None, f"watch exited: {self.stop()}"
                assert time.monotonic() < deadline, f"no such line in {self.lines} {self.notes}"
                continue
            self.lines.append(line)
            if wanted(line):
                return line

    def drain(self) -> list[str]:
        """Every stdout line so far: ``lines`` plus those ``wait_for`` has not met yet."""
        while not self._new.empty():
            self.lines.append(self._new.get())
        return self.lines

    def stop(self) -> list[str]:
        """Stops the watcher (SIGTERM) and returns all its stdout lines."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=10)
        return self.drain()
