"""How the tests start ``ocml worker``: the real command plus two hooks that only tests have.

A pool process that is handed a job whose input file name contains ``CRASH_MARKER`` dies at once
(``os._exit``), after the delivery was counted and the job parsed, as a segfaulting decoder
would. The hook wraps ``worker.tasks.run_job`` in the main process, before the pool forks.

A pool process about to write the results of a job whose input name contains ``STALL_MARKER``,
while a file ``<input>.stall`` exists, removes that file and stops its whole worker (SIGSTOP to
its process group: main process and pool), as a host paused at the worst moment; the test sends
SIGCONT. Only one process can remove the file, so a later run of the job writes unhindered. The
hook wraps ``pipeline.writers.write_outputs``, which ``run_job`` looks up when it runs.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CRASH_MARKER = "CRASHME"
CRASH_STATUS = 70
STALL_MARKER = "STALLME"


def crash_on_marker(run_job: Callable[..., Any]) -> Callable[..., Any]:
    """``run_job`` that first kills its process when the job's input name has ``CRASH_MARKER``."""

    @functools.wraps(run_job)
    def run(task: Any, job: Any, model: Any, settings: Any, **options: Any) -> Any:
        if CRASH_MARKER in job.input.name:
            os._exit(CRASH_STATUS)
        return run_job(task, job, model, settings, **options)

    return run


def stall_on_marker(write_outputs: Callable[..., Any]) -> Callable[..., Any]:
    """``write_outputs`` that first stops its worker once for an input marked to stall."""

    @functools.wraps(write_outputs)
    def write(result: Any, *args: Any, **options: Any) -> Any:
        if STALL_MARKER in Path(result.input.path).name:
            try:
                os.unlink(f"{result.input.path}.stall")
            except FileNotFoundError:
                pass
            else:
                os.killpg(os.getpgid(0), signal.SIGSTOP)
        return write_outputs(result, *args, **options)

    return write


def main(argv: Sequence[str]) -> None:
    """``ocml worker ARGV`` with the test hooks installed, through the ``ocml`` group, so a
    refusal ends as the command line's would (one failure line and its exit status)."""
    from ocml.cli import root
    from ocml.pipeline import writers
    from ocml.worker import tasks

    tasks.run_job = crash_on_marker(tasks.run_job)
    writers.write_outputs = stall_on_marker(writers.write_outputs)
    root.main(["worker", *argv])
