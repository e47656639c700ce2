"""The ``ocml.segment`` task: validate the job, segment the recording, write results atomically.

Failures are ``JobFailed({"error": code, "message": ...})``: bad jobs and permanent input errors at
once, transient I/O after retries with exponential backoff and jitter, a job that keeps killing
its worker process after ``max_deliveries`` deliveries (counted in Redis, which Celery does not do).
The SavedModel is loaded once per worker process, after the fork (``worker_process_init``).
"""

from __future__ import annotations

import math
import os
import random
import socket
import time
from dataclasses import replace
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init
from celery.utils.log import get_logger

from ocml.config.settings import Settings
from ocml.pipeline.errors import OcmlError, TransientIOError
from ocml.pipeline.writers import FORMATS
from ocml.worker.app import TASK_NAME, app, current_settings
from ocml.worker.jobs import Job, JobFailed, parse_job

PROGRESS = "PROGRESS"
DELIVERY_KEY = "ocml:deliveries:{id}:{retry}"
REDIS_ATTEMPTS = 40

_process: dict[str, Any] = {}
log = get_logger(__name__)


@worker_process_init.connect
def load_model_in_child(**_: Any) -> None:
    """Loads the model in each freshly forked pool process (never in the parent: TF hangs forks)."""
    model = process_model()
    log.info("model ready: %s %s in process %d", model.name, model.version, os.getpid())


def process_model() -> Any:
    """This process's model, loaded on first use with TensorFlow limited to one thread."""
    if "model" not in _process:
        from ocml.pipeline.model import (
            choose_runtime,
            configure_tensorflow,
            load_model,
            read_metadata,
        )

        configure_tensorflow(1)
        settings = current_settings()
        path = settings.model_path
        runtime = choose_runtime(settings.runtime, read_metadata(path), math.inf)
        _process["model"] = load_model(path, runtime=runtime)
    return _process["model"]


@app.task(
    name=TASK_NAME,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    throws=(JobFailed,),
)
def segment(self: Task, job: Any) -> dict[str, Any]:
    """Runs one job (design.md "Job"); returns the written paths and a summary of the result."""
    settings = current_settings()
    deliveries = count_delivery(self, settings)
    if deliveries > settings.max_deliveries:
        raise JobFailed(
            {
                "error": "too_many_deliveries",
                "message": (
                    f"the job was delivered {deliveries - 1} times and each time its worker process "
                    f"died (max_deliveries = {settings.max_deliveries}); input: {_input_of(job)}"
                ),
            }
        )
    try:
        model = process_model()
        parsed = parse_job(
            job,
            settings,
            model_names=(model.name,),
            tuned=model.postprocess,
            formats_known=FORMATS,
        )
        return run_job(self, parsed, model, settings)
    except TransientIOError as exc:
        if self.request.retries >= settings.max_retries:
            raise JobFailed(
                {
                    "error": exc.code,
                    "message": (f"{exc} (gave up after {settings.max_retries} retries)"),
                }
            ) from None
        delay = backoff_delay(
            self.request.retries, base=settings.retry_backoff, cap=settings.retry_backoff_max
        )
        raise self.retry(countdown=delay) from None
    except OcmlError as exc:
        raise JobFailed(exc.to_dict()) from None
    except SoftTimeLimitExceeded:
        raise JobFailed(
            {
                "error": "time_limit",
                "message": (
                    f"the job exceeded its soft time limit of {_soft_limit(self)} s; "
                    f"input: {_input_of(job)}"
                ),
            }
        ) from None


def run_job(task: Task, job: Job, model: Any, settings: Settings) -> dict[str, Any]:
    """Segments ``job.input`` and writes every requested format into ``job.output_dir``."""
    from ocml.pipeline.result import require_speech
    from ocml.pipeline.segment import segment_file
    from ocml.pipeline.writers import ensure_output_dir, write_outputs

    ensure_output_dir(job.output_dir)
    reporter = ProgressReporter(task, interval=settings.progress_interval)
    result = replace(
        segment_file(job.input, model, job.segment_params, progress=reporter), track=job.track
    )
    require_speech(result, no_speech=job.no_speech)
    paths = write_outputs(result, job.output_dir, job.input.stem, job.formats)
    document = result.to_dict()
    return {
        "outputs": {fmt: str(path) for fmt, path in paths.items()},
        "duration": document["input"]["duration"],
        "summary": document["summary"],
        "model": document["model"],
        "timing": document["timing"],
    }


class ProgressReporter:
    """Publishes the custom ``PROGRESS`` state at most every ``interval`` seconds."""

    def __init__(self, task: Task, *, interval: float) -> None:
        self.task = task
        self.interval = interval
        self.last = float("-inf")

    def __call__(self, processed_seconds: float, duration: float) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
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
    """How often this message (job id and retry number) has now been delivered, kept in Redis."""
    key = DELIVERY_KEY.format(id=task.request.id, retry=task.request.retries)
    client = task.app.backend.client
    for attempt in range(REDIS_ATTEMPTS - 1):
        try:
            return _increment(client, key, settings.result_expires)
        except (redis.ConnectionError, redis.TimeoutError):
            log.warning(
                "Redis unavailable while counting deliveries of %s; retrying", task.request.id
            )
            time.sleep(min(5.0, 0.1 * 2**attempt))
    return _increment(client, key, settings.result_expires)


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
