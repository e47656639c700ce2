"""How the tests start ``ocml worker``: the real command plus a crash hook that only tests have.

A pool process that is handed a job whose input file name contains ``CRASH_MARKER`` dies at once
(``os._exit``), after the delivery was counted and the job parsed, as a segfaulting decoder
would. The hook wraps ``worker.tasks.run_job`` in the main process, before the pool forks.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

CRASH_MARKER = "CRASHME"
CRASH_STATUS = 70


def crash_on_marker(run_job: Callable[..., Any]) -> Callable[..., Any]:
    """``run_job`` that first kills its process when the job's input name has ``CRASH_MARKER``."""

    @functools.wraps(run_job)
    def run(task: Any, job: Any, model: Any, settings: Any, **options: Any) -> Any:
        if CRASH_MARKER in job.input.name:
            os._exit(CRASH_STATUS)
        return run_job(task, job, model, settings, **options)

    return run


def main(argv: Sequence[str]) -> None:
    """``ocml worker ARGV`` with the crash hook installed, through the ``ocml`` group, so a
    refusal ends as the command line's would (one failure line and its exit status)."""
    from ocml.cli import root
    from ocml.worker import tasks

    tasks.run_job = crash_on_marker(tasks.run_job)
    root.main(["worker", *argv])
