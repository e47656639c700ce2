"""The Celery app: Redis broker and result backend, JSON only, crash-safe delivery.

``app`` is what ``celery -A worker.app worker`` and ``ocml worker`` run; it reads its settings
from the environment (``OCML_CONFIG``, ``OCML_*``) the first time its configuration is needed.
``make_app(settings)`` builds a client-side app (submit, status, watch) from explicit settings.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from celery import Celery

from ocml.config.settings import Settings, load_settings
from ocml.worker.lease import LEASE_SETTING, RenewLeases


@functools.cache
def current_settings() -> Settings:
    """This process's settings, loaded once from ``$OCML_CONFIG`` and ``OCML_*`` variables."""
    return load_settings(env=os.environ)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery configuration for ``settings``: at-least-once delivery that survives crashes.

    Late acks plus ``task_reject_on_worker_lost`` requeue a job whose process died; one prefetched
    message per process keeps a crash from stranding queued jobs; ``visibility_timeout`` (broker
    and result backend alike, as Celery's Redis docs require) runs from a job's last lease
    renewal (``worker.lease``), and ``unacked_restore_interval`` makes every worker sweep for a
    dead host's jobs that often.
    """
    soft, hard = settings.time_limits(None)
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": settings.unacked_restore_interval,
            "unacked_restore_throttle": 1,
        },
        LEASE_SETTING: settings.lease_interval,
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
        # A Redis restart must not fail running jobs: states and results wait for it to return.
        "result_backend_always_retry": True,
        "result_backend_max_sleep_between_retries_ms": 2000,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_soft_time_limit": soft,
        "task_time_limit": hard,
        "task_track_started": True,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "result_extended": True,
        "result_expires": settings.result_expires,
        "worker_concurrency": settings.concurrency or os.cpu_count() or 1,
        # A message the fleet cannot use is acknowledged and recorded, never fatal.
        "worker_consumer": "ocml.worker.messages:GuardedConsumer",
        # Loading TensorFlow and the model in a fresh child takes seconds on a busy host.
        "worker_proc_alive_timeout": 120.0,
    }


CLIENT_TIMEOUT = 5.0
"""Seconds a client (submit, status, watch) waits for Redis before it reports it unreachable."""


def make_app(settings: Settings) -> Celery:
    """A Celery app configured from ``settings`` for submitting and querying jobs.

    Unlike a worker, a client does not retry Redis for ever: connections and commands time out
    after ``CLIENT_TIMEOUT`` s, and the error reaches the caller.
    """
    config = celery_config(settings)
    config.update(
        {
            "result_backend_always_retry": False,
            "redis_socket_connect_timeout": CLIENT_TIMEOUT,
            "redis_socket_timeout": CLIENT_TIMEOUT,
            "broker_connection_timeout": CLIENT_TIMEOUT,
            "broker_connection_retry": False,
            "broker_connection_max_retries": 1,
            "broker_transport_options": {
                **config["broker_transport_options"],
                "socket_connect_timeout": CLIENT_TIMEOUT,
                "socket_timeout": CLIENT_TIMEOUT,
            },
            "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0.5},
        }
    )
    client = Celery("ocml", set_as_current=False)
    client.conf.update(config)
    return client


app = Celery("ocml", include=["ocml.worker.tasks", "ocml.worker.preflight"])
app.add_defaults(lambda: celery_config(current_settings()))
app.steps["consumer"].add(RenewLeases)
