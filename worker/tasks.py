"""The ``ocml.segment`` task: validate the job, segment the recording, write results atomically.

At most one process runs a job at a time, however often its message is delivered
(``worker.runs``): a delivery first looks for the job's recorded outcome (then it returns that
without running), then takes the job's run lock; if another live process holds it, this message
is put back with a countdown and acknowledged, and it looks again later (it is the job's carrier
if the running process dies). A lock held by a dead pool process of this worker is taken over
at once, so a crashed process's job runs again within seconds.

Failures are ``JobFailed({"error": code, "message": ...})``: bad jobs and permanent input errors at
once, transient I/O after retries with exponential backoff and jitter, a job whose runs keep
ending without finishing after ``max_deliveries`` runs (counted in Redis, which Celery does not
do; a message restored while its job runs elsewhere is not counted). A job this worker cannot
run for a reason of its own (its input not visible here, another model) is first left to
another worker (``worker.handoff``). The SavedModel is loaded once per worker process, after the
fork (``worker_process_init``). A failed job is logged once, at WARNING, with its code.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis
from billiard.exceptions import WorkerLostError
from celery import Task
from celery.exceptions import Ignore, Retry, SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import worker_init, worker_process_init
from celery.utils.log import get_logger
from celery.worker.request import Request

from ocml.config.settings import Settings
from ocml.pipeline.errors import OcmlError, TransientIOError, excerpt
from ocml.pipeline.model import Model, load_model
from ocml.pipeline.writers import FORMATS
from ocml.worker import handoff, runs
from ocml.worker.app import app, current_settings
from ocml.worker.jobs import TASK_NAME, Job, JobFailed, ModelIdentity, parse_job

PROGRESS = "PROGRESS"
DELIVERY_KEY = "ocml:deliveries:{id}:{retry}"
REDIS_ATTEMPTS = 40
MESSAGE_LIMIT = 1000
"""A failed job's stored message is cut to this many characters."""

T = TypeVar("T")

_process: dict[str, Any] = {}
log = get_logger(__name__)


@worker_process_init.connect
def load_model_in_child(**_: Any) -> None:
    """Loads the model in each freshly forked pool process (never in the parent: TF hangs forks)."""
    model = process_model()
    log.info("model ready: %s %s in process %d", model.name, model.version, os.getpid())


def process_model() -> Model:
    """This process's model, loaded on first use with TensorFlow limited to one thread."""
    if "model" not in _process:
        from ocml.pipeline.model_metadata import read_metadata
        from ocml.pipeline.runtimes.choice import choose_runtime
        from ocml.pipeline.threads import set_inference_threads

        set_inference_threads(1)
        settings = current_settings()
        path = settings.model_path
        runtime = choose_runtime(settings.runtime, read_metadata(path), math.inf)
        _process["model"] = load_model(path, runtime=runtime)
    return _process["model"]


EXPECTED = "raised expected"
"""How Celery describes a task's expected exception (its ``throws``) when it logs it at INFO."""


@worker_init.connect
def quiet_expected_failures(**_: Any) -> None:
    """Celery logs every ``JobFailed`` at INFO as "raised expected" (``celery.app.trace``'s
    policy for ``throws``, with no setting to change it); ``_run`` logs each failed job at WARNING
    with its code instead, so that line is dropped. Installed before the pool forks, so every
    pool process has it."""
    trace = logging.getLogger("celery.app.trace")
    if quiet_expected not in trace.filters:
        trace.addFilter(quiet_expected)


def quiet_expected(record: logging.LogRecord) -> bool:
    """False for Celery's "raised expected" record of this module's task: a failed job, which
    ``_run`` logs itself."""
    data = getattr(record, "data", None)
    return not (
        isinstance(data, dict)
        and data.get("description") == EXPECTED
        and data.get("name") == TASK_NAME
    )


class JobRequest(Request):
    """The worker main process's side of a job: when the pool process running it dies (crash,
    hard time limit), its run lock is freed and the end recorded, so the requeued message runs
    at once instead of waiting for the lock to expire."""

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        exc = getattr(exc_info.exception, "exc", exc_info.exception)
        if isinstance(exc, (WorkerLostError, SystemExit, KeyboardInterrupt)) and self.worker_pid:
            self._end_dead_run(exc)
        return super().on_failure(
            exc_info, send_failed_event=send_failed_event, return_ok=return_ok
        )

    def on_timeout(self, soft: bool, timeout: float) -> None:
        if not soft and self.worker_pid:
            self._end_dead_run(TimeLimitExceeded(timeout))
        return super().on_timeout(soft, timeout)

    def _end_dead_run(self, exc: BaseException) -> None:
        settings = current_settings()
        client = self.task.backend.client
        owner = runs.process_prefix(self.hostname, self.worker_pid)
        error = None
        if isinstance(exc, TimeLimitExceeded):
            error = {
                "error": "time_limit",
                "message": f"the job exceeded its hard time limit ({exc})",
            }
        try:
            # The end names the run the dead process started (its token is in the history).
            run = runs.last_run(client, self.id, owner) or owner
            ending = {"event": "end", "run": run, "node": self.hostname, "pid": self.worker_pid}
            if error is not None:
                runs.finish(
                    client,
                    self.id,
                    {"state": "FAILURE", "error": error},
                    owner=owner,
                    expires=settings.result_expires,
                )
                outcome: dict[str, Any] = {**ending, "outcome": "time_limit"}
            else:
                outcome = {**ending, "outcome": "process_died", "exitcode": excerpt(str(exc), 100)}
            runs.add_event(client, self.id, outcome, expires=settings.result_expires)
            runs.release(client, self.id, owner)
        except redis.RedisError as err:
            log.warning("could not free the run lock of job %s: %s", self.id, err)


@app.task(
    name=TASK_NAME,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    throws=(JobFailed,),
    Request=JobRequest,
)
def segment(self: Task, job: Any) -> dict[str, Any]:
    """Runs one job (design.md "Job"); returns the written paths and a summary of the result."""
    settings = current_settings()
    client = self.app.backend.client
    job_id, node = self.request.id, self.request.hostname
    outcome = _redis(lambda: runs.finished(client, job_id), job_id)
    if outcome is not None:
        log.info(
            "job %s has finished (%s): message acknowledged, not run", job_id, outcome["state"]
        )
        return _replay(outcome)
    refusal = handoff.local_refusal(job, settings, process_model)
    if refusal is not None and _redis(lambda: handoff.hand_off(self, refusal, settings), job_id):
        raise Ignore()
    token = runs.run_token(node, os.getpid())
    ttl = settings.visibility_timeout
    claim = _redis(lambda: runs.acquire(client, job_id, token, ttl=ttl), job_id)
    if not claim.taken and claim.holder and runs.local_process_gone(claim.holder, node):
        stale = claim.holder
        claim = _redis(lambda: runs.acquire(client, job_id, token, ttl=ttl, replace=stale), job_id)
    if not claim.taken:
        countdown = max(0.2, min(settings.lease_interval, claim.holder_ttl + 0.1))
        log.info(
            "job %s is running in %s: this copy of its message waits %.1f s",
            job_id,
            claim.holder,
            countdown,
        )
        self.signature_from_request(self.request, countdown=countdown).apply_async()
        raise Ignore()
    try:
        return _run(self, job, settings, token)
    finally:
        _redis(lambda: runs.release(client, job_id, token), job_id)


def _run(task: Task, job: Any, settings: Settings, token: str) -> dict[str, Any]:
    """One run of the job under its lock: counted, recorded from start to end."""
    client = task.app.backend.client
    job_id = task.request.id
    expires = settings.result_expires
    deliveries = count_delivery(task, settings)
    history = _redis(lambda: runs.events(client, job_id), job_id)
    start = {"event": "start", "run": token, "node": task.request.hostname, "pid": os.getpid()}
    _redis(lambda: runs.add_event(client, job_id, start, expires=expires), job_id)

    def end(outcome: str) -> None:
        event = {**start, "event": "end", "outcome": outcome}
        _redis(lambda: runs.add_event(client, job_id, event, expires=expires), job_id)

    try:
        if deliveries > settings.max_deliveries:
            raise JobFailed(_too_many(deliveries, settings, history, job))
        outcome: dict[str, Any] = {
            "state": "SUCCESS",
            "result": _attempt(task, job, settings, token),
        }
    except JobFailed as exc:
        error = {**exc.error, "message": excerpt(exc.error.get("message", ""), MESSAGE_LIMIT)}
        outcome = {"state": "FAILURE", "error": error}
    except Retry:
        end("retry")
        raise
    except RunSuperseded as exc:
        log.warning("job %s: %s; this run stops", job_id, exc)
        end("superseded")
        raise Ignore() from None
    except Exception:
        end("error")
        raise
    fenced = _redis(
        lambda: runs.finish(client, job_id, outcome, owner=token, expires=expires), job_id
    )
    if not fenced.ok:
        log.warning("job %s: %s; this run's outcome is not recorded", job_id, fenced.reason())
        end("superseded")
        raise Ignore()
    if outcome["state"] == "FAILURE":
        end("failed")
        error = outcome["error"]
        log.warning(
            "job %s failed: %s: %s", job_id, error.get("error"), " ".join(error["message"].split())
        )
        raise JobFailed(error)
    end("succeeded")
    return outcome["result"]


def _too_many(
    deliveries: int, settings: Settings, history: list[dict[str, Any]], job: Any
) -> dict[str, str]:
    """The truthful ``too_many_deliveries`` error: how each earlier run ended, as far as known."""
    lost = runs.unfinished_runs(history)
    shown = "; ".join(runs.describe_run(run) for run in lost[-settings.max_deliveries :])
    return {
        "error": "too_many_deliveries",
        "message": (
            f"the job was started {deliveries - 1} times and no run finished "
            f"(max_deliveries = {settings.max_deliveries}): {shown or 'no runs recorded'}; "
            f"input: {excerpt(_input_of(job))}"
        ),
    }


def _replay(outcome: dict[str, Any]) -> dict[str, Any]:
    """The recorded outcome as this message's own: the result, or the same ``JobFailed``."""
    if outcome["state"] == "SUCCESS":
        return outcome["result"]
    raise JobFailed(outcome["error"])


class RunSuperseded(Exception):
    """This run may no longer write: another run holds its lock, or recorded the job's outcome."""


def _attempt(task: Task, job: Any, settings: Settings, token: str) -> dict[str, Any]:
    """Validates and runs the job; maps every expected failure to ``JobFailed`` or a retry."""
    try:
        model = process_model()
        parsed = parse_job(
            job,
            settings,
            served=ModelIdentity.of(model),
            tuned=model.postprocess,
            formats_known=FORMATS,
        )
        return run_job(task, parsed, model, settings, token=token)
    except TransientIOError as exc:
        if task.request.retries >= settings.max_retries:
            raise JobFailed(
                {
                    "error": exc.code,
                    "message": (f"{exc} (gave up after {settings.max_retries} retries)"),
                }
            ) from None
        delay = backoff_delay(
            task.request.retries, base=settings.retry_backoff, cap=settings.retry_backoff_max
        )
        raise task.retry(countdown=delay) from None
    except OcmlError as exc:
        raise JobFailed(exc.to_dict()) from None
    except SoftTimeLimitExceeded:
        raise JobFailed(
            {
                "error": "time_limit",
                "message": (
                    f"the job exceeded its soft time limit of {_soft_limit(task)} s; "
                    f"input: {excerpt(_input_of(job))}"
                ),
            }
        ) from None


def _redis(action: Callable[[], T], job_id: str) -> T:
    """``action()`` on Redis, retried while Redis is unreachable (a restart must not fail jobs)."""

    def warn(exc: Exception) -> None:
        log.warning("Redis unavailable for job %s (%s); retrying", job_id, exc)

    return runs.with_retries(action, attempts=REDIS_ATTEMPTS, on_error=warn)


def run_job(
    task: Task, job: Job, model: Model, settings: Settings, *, token: str
) -> dict[str, Any]:
    """Segments ``job.input`` and writes every requested format into ``job.output_dir``.

    The input is opened once without following symlinks below its media root and decoded
    through that handle; the output directory is created and checked at the start, then opened
    again the same way for the writes, so a directory swapped for a symlink meanwhile is refused
    (``path_changed``). Directories this job created are removed again if it fails. The result
    set is put in place only while the run ``token`` may still write (``fence_run``).
    """
    from ocml.pipeline.result import require_speech
    from ocml.pipeline.segment import segment_file
    from ocml.pipeline.writers import OpenDir, open_file_beneath, write_outputs

    output_root = Path(os.path.realpath(settings.output_root))
    early = OpenDir.open(job.output_dir, root=output_root, create=True)
    try:
        early.check_writable()
        reporter = ProgressReporter(task, interval=settings.progress_interval, token=token)
        fd = open_file_beneath(job.input, roots=settings.media_roots)
        try:
            result = segment_file(job.input, model, job.segment_params, fd=fd, progress=reporter)
        finally:
            os.close(fd)
        result = dataclasses.replace(result, track=job.track)
        require_speech(result, no_speech=job.no_speech)
        with OpenDir.open(job.output_dir, root=output_root, create=True) as directory:
            paths = write_outputs(
                result,
                job.output_dir,
                job.input.stem,
                job.formats,
                directory=directory,
                fence=lambda: fence_run(task, token),
            )
    except BaseException:
        early.remove_created()
        raise
    finally:
        early.close()
    document = result.to_dict()
    return {
        "outputs": {fmt: str(path) for fmt, path in paths.items()},
        "duration": document["input"]["duration"],
        "summary": document["summary"],
        "model": document["model"],
        "timing": document["timing"],
    }


def fence_run(task: Task, token: str) -> None:
    """Raises ``RunSuperseded`` unless the run ``token`` may still write (``check_fence``);
    waits for Redis to answer as every Redis step of a run does."""
    fenced = _redis(lambda: check_fence(task, token), task.request.id)
    if not fenced.ok:
        raise RunSuperseded(fenced.reason())


def check_fence(task: Task, token: str) -> runs.Fenced:
    """Whether the run ``token`` may still write: no outcome is recorded for its job and it
    holds the job's run lock (taken again if Redis lost it); extends the lock by
    ``visibility_timeout``, so no other run starts before the write that follows."""
    ttl = current_settings().visibility_timeout
    return runs.fence(task.app.backend.client, task.request.id, token, ttl=ttl)


class ProgressReporter:
    """Publishes the custom ``PROGRESS`` state at most every ``interval`` seconds, after checking
    that its run may go on (``check_fence``; a Redis outage skips the check)."""

    def __init__(self, task: Task, *, interval: float, token: str) -> None:
        self.task = task
        self.interval = interval
        self.token = token
        self.last = float("-inf")

    def __call__(self, processed_seconds: float, duration: float) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        try:
            fenced = check_fence(self.task, self.token)
        except redis.RedisError:
            fenced = None
        if fenced is not None and not fenced.ok:
            raise RunSuperseded(fenced.reason())
        percent = min(100.0, 100.0 * processed_seconds / duration) if duration > 0 else 0.0
        self.task.update_state(
            state=PROGRESS,
            meta={
                "processed_seconds": round(processed_seconds, 3),
                "duration": round(duration, 3),
                "percent": round(percent, 1),
                "worker": socket.gethostname(),
                "pid": os.getpid(),
            },
        )


def count_delivery(task: Task, settings: Settings) -> int:
    """How often this message (job id and retry number) has now been run, kept in Redis."""
    key = DELIVERY_KEY.format(id=task.request.id, retry=task.request.retries)
    client = task.app.backend.client
    return _redis(lambda: _increment(client, key, settings.result_expires), task.request.id)


def _increment(client: redis.Redis, key: str, ttl: int) -> int:
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, ttl)
    return int(pipe.execute()[0])


def backoff_delay(
    retries: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds before retry number ``retries + 1``: exponential, capped, with 'equal jitter'."""
    ceiling = min(cap, base * 2.0**retries)
    return ceiling / 2.0 + (rng or random).uniform(0.0, ceiling / 2.0)


def _soft_limit(task: Task) -> float:
    limits = task.request.timelimit or (None, None)
    return limits[1] or task.app.conf.task_soft_time_limit


def _input_of(job: Any) -> str:
    return str(job.get("input")) if isinstance(job, dict) else "unknown"
