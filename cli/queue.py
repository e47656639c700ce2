"""Operator commands for the queue: ``ocml worker``, ``submit``, ``status`` and ``watch``.

``cli.root`` registers ``COMMANDS`` on the ``ocml`` group. Each command takes ``--config``
(or ``$OCML_CONFIG``) and ``OCML_*`` overrides, the same settings the workers use.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from ocml.cli.options import (
    cli_settings,
    config_option,
    format_option,
    model_options,
    no_speech_option,
    param_options,
    preset_option,
    track_identity,
    track_options,
)
from ocml.config.settings import CONFIG_ENV, Settings
from ocml.pipeline.writers import FORMATS

FAILED_PREFIX = "ocml: failed:"
"""``submit --wait`` reports a failure as one stdout line: ``ocml: failed: <code>: <message>``
(Opencast's execute-once logs a command's output only at DEBUG, but shows its exit code)."""
UNREACHABLE_STATUS = 2
LINE_LIMIT = 300


def _client(config_path: str | None, *, wait_line: bool = False) -> tuple[Any, Settings]:
    """The client app and settings, after checking that Redis answers (one line, exit 2 if not)."""
    from ocml.worker import client
    from ocml.worker.app import make_app

    settings = cli_settings(config_path)
    with _reachable(wait_line=wait_line):
        client.check_redis(settings)
    return make_app(settings), settings


@contextmanager
def _reachable(*, wait_line: bool = False) -> Iterator[None]:
    """Turns "Redis cannot be reached" anywhere inside into one line and exit status 2."""
    from ocml.worker import client

    try:
        yield
    except client.RedisUnreachable as exc:
        _fail_line("redis_unreachable", str(exc), wait_line=wait_line, status=UNREACHABLE_STATUS)
    except client.UNREACHABLE as exc:
        text = f"cannot reach Redis: {exc}"
        _fail_line("redis_unreachable", text, wait_line=wait_line, status=UNREACHABLE_STATUS)


def _fail_line(code: str, message: str, *, wait_line: bool, status: int) -> None:
    """Ends the command with one line: on stdout as ``ocml: failed: code: message`` for
    ``submit --wait``, else the message on stderr."""
    from ocml.pipeline.errors import excerpt

    text = excerpt(" ".join(message.split()), LINE_LIMIT)
    if wait_line:
        click.echo(f"{FAILED_PREFIX} {code}: {text}")
    else:
        click.echo(text, err=True)
    sys.exit(status)


@click.command("worker")
@config_option
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    help="Worker processes (default: settings' concurrency, 0 there = one per core).",
)
@click.option("-n", "--hostname", help="Node name, e.g. ocml@%h (default: celery@<host>).")
@click.option(
    "-l",
    "--loglevel",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def worker(
    config_path: str | None, concurrency: int | None, hostname: str | None, loglevel: str
) -> None:
    """Run a worker that processes queued jobs until stopped (SIGTERM: finish, then exit).

    It first checks its settings (the model, the preset and parameters against the model, the
    formats, every media root readable, the output root writable) and refuses to start on the
    first that cannot work: one line, ``ocml: failed: <setting>: <problem>``, exit status 2.
    """
    from ocml.config.settings import SettingsError
    from ocml.worker import preflight
    from ocml.worker.app import app, current_settings

    if config_path is not None:
        os.environ[CONFIG_ENV] = os.path.abspath(config_path)
    try:
        settings = current_settings()
        preflight.check_worker_settings(settings)
    except SettingsError as exc:
        preflight.refuse(preflight.SettingProblem("settings", str(exc)))
    except preflight.SettingProblem as problem:
        preflight.refuse(problem)
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        "--events",
        f"--concurrency={concurrency or settings.concurrency or os.cpu_count() or 1}",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)


@click.command("submit")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--wait", "wait_", is_flag=True, help="Show progress, exit non-zero if a job failed.")
@format_option(FORMATS, default_help="default: the settings' formats")
@preset_option
@param_options
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False),
    help="Directory for the results (default: <output_root>/<file stem>).",
)
@click.option(
    "--output",
    "output_file",
    type=click.Path(dir_okay=False),
    help="With --wait, one FILE and one format: copy the result here.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    help="With --wait, give up after S s (default: scaled by the recording's duration, "
    "max_deliveries x (hard time limit + visibility_timeout)).",
)
@no_speech_option
@track_options
@model_options
@config_option
def submit(
    files: tuple[str, ...],
    wait_: bool,
    formats: tuple[str, ...],
    preset: str | None,
    params: dict[str, float],
    output_dir: str | None,
    output_file: str | None,
    timeout: float | None,
    no_speech: str,
    track_id: str | None,
    track_flavor: str | None,
    track_src: str | None,
    model_version: str | None,
    any_model: bool,
    config_path: str | None,
) -> None:
    """Queue FILE... for segmentation; prints one job id per line.

    The post-processing options are those of `ocml segment` (--preset trim keeps one segment from
    the first to the last sustained speech; tune it with --trim-min-speech and --trim-window);
    what is not given comes from the preset, the model's tuned values and the settings, checked
    here as the worker will resolve them.

    Each job expects the settings' model (name, version and digest), so only a worker serving
    that model runs it; --model-version accepts any build of a version, --any-model any model.

    With --wait, a job that failed, was lost twice or did not finish in time ends the command
    with exit status 1 and one line on stdout, ``ocml: failed: <code>: <message>``; when Redis
    cannot be reached, status 2.
    """
    from ocml.worker import client
    from ocml.worker.jobs import JobInvalid, parse_job

    app, settings = _client(config_path, wait_line=wait_)
    if output_file is not None:
        if not wait_ or len(files) != 1 or len(formats or settings.formats) != 1:
            raise click.UsageError("--output needs --wait, one FILE and one --format")
    track = track_identity(
        track_id=track_id, track_flavor=track_flavor, track_src=track_src, inputs=len(files)
    )
    given_track = {k: v for k, v in vars(track).items() if v is not None}
    model, tuned = _job_model(
        settings, model_version=model_version, any_model=any_model, wait_line=wait_
    )
    jobs = [
        client.build_job(
            f,
            output_dir=output_dir,
            formats=formats,
            preset=preset,
            params=params,
            no_speech=None if no_speech == "keep" else no_speech,
            track=given_track,
            model=model,
        )
        for f in files
    ]
    for job in jobs:
        try:
            parse_job(job, settings, tuned=tuned, formats_known=FORMATS)
        except JobInvalid as exc:
            _refuse_job(exc.code, str(exc), wait_line=wait_)
    durations = [client.duration_of(job["input"]) for job in jobs]
    with _reachable(wait_line=wait_):
        ids = [client.submit(app, settings, j, duration=d) for j, d in zip(jobs, durations)]
    for job_id in ids:
        click.echo(job_id)
    if not wait_:
        return
    if timeout is None:
        timeout = max(settings.wait_timeout(d) for d in durations)
    again = dict(zip(ids, zip(jobs, durations)))

    def resubmit(job_id: str) -> bool:
        """A lost job is submitted once more, under the same id."""
        if job_id not in again:
            return False
        job, duration = again.pop(job_id)
        client.submit(app, settings, job, job_id=job_id, duration=duration)
        click.echo(f"job {job_id} was lost (Redis has no trace of it); submitted again", err=True)
        return True

    names = [Path(f).name for f in files]
    display = ProgressDisplay(names, tty=sys.stderr.isatty())
    with _reachable(wait_line=True):
        statuses = client.wait(
            app,
            ids,
            on_update=display,
            timeout=timeout,
            lost_after=max(5.0, 2 * settings.lease_interval),
            on_lost=resubmit,
        )
    display.finish(statuses)
    failed = [s for s in statuses if s["state"] != "SUCCESS"]
    for status in failed:
        error = status.get("error") or {
            "error": "wait_timeout",
            "message": (
                f"job {status['id']} is still {status['state']} after {timeout:g} s "
                "(--timeout); it may still finish: ocml status " + status["id"]
            ),
        }
        click.echo(f"{FAILED_PREFIX} {error['error']}: {_one_line(error['message'])}")
    if failed:
        sys.exit(1)
    if output_file is not None:
        _copy_result(statuses[0]["result"], output_file)


def _refuse_job(code: str, message: str, *, wait_line: bool) -> NoReturn:
    """Ends ``submit`` before anything is queued: ``ocml: failed: code: message`` on stdout
    with ``--wait``, else ``Error: code: message``; exit status 1."""
    if wait_line:
        _fail_line(code, message, wait_line=True, status=1)
    raise click.ClickException(f"{code}: {message}")


def _job_model(
    settings: Settings, *, model_version: str | None, any_model: bool, wait_line: bool = False
) -> tuple[dict[str, str] | None, dict[str, Any] | None]:
    """The ``model`` each job expects and the tuned values its parameters are checked with:
    the settings' model in full, by name and ``model_version``, or none with ``any_model``.

    A model that cannot be read here (it lives on the worker hosts only) needs one of the two
    options; with ``model_version`` the jobs then expect that version of any name.
    """
    from ocml.pipeline.errors import OcmlError
    from ocml.worker.jobs import read_model

    if model_version is not None and any_model:
        raise click.UsageError("--model-version and --any-model exclude each other")
    try:
        identity, tuned = read_model(settings)
    except OcmlError as exc:
        if any_model or model_version is not None:
            return (None if any_model else {"version": model_version}), None
        _refuse_job(
            exc.code,
            f"{exc}; the jobs could not say which model they expect: give --model-version "
            "VERSION or --any-model",
            wait_line=wait_line,
        )
    return (None if any_model else identity.expectation(version=model_version)), tuned


def _one_line(message: str) -> str:
    from ocml.pipeline.errors import excerpt

    return excerpt(" ".join(message.split()), LINE_LIMIT)


def _copy_result(result: dict[str, Any], output_file: str) -> None:
    from ocml.pipeline.writers import atomic_write

    (source,) = result["outputs"].values()
    atomic_write(os.path.abspath(output_file), Path(source).read_bytes())


class ProgressDisplay:
    """One progress line per job on stderr: redrawn in place on a terminal, appended otherwise."""

    WIDTH = 30

    def __init__(self, names: list[str], *, tty: bool) -> None:
        self.names = names
        self.tty = tty
        self.drawn = 0
        self.last: list[str] = [""] * len(names)

    def __call__(self, statuses: list[dict[str, Any]]) -> None:
        lines = [self._line(name, s) for name, s in zip(self.names, statuses)]
        if self.tty:
            if self.drawn:
                click.echo(f"\x1b[{self.drawn}F", nl=False, err=True)
            for line in lines:
                click.echo(f"\x1b[2K{line}", err=True)
            self.drawn = len(lines)
            return
        for i, line in enumerate(lines):
            if line != self.last[i]:
                click.echo(line, err=True)
        self.last = lines

    def _line(self, name: str, status: dict[str, Any]) -> str:
        state = status["state"]
        percent = 100.0 if state == "SUCCESS" else status.get("progress", {}).get("percent", 0.0)
        if not self.tty:
            percent = 10 * int(percent // 10)
        filled = int(self.WIDTH * percent / 100)
        return (
            f"{name:<24.24} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {percent:5.1f}% {state}"
        )

    def finish(self, statuses: list[dict[str, Any]]) -> None:
        """One closing line per job: its result files or its error."""
        for name, status in zip(self.names, statuses):
            click.echo(f"{name}: {_describe(status)}", err=True)


def _describe(status: dict[str, Any]) -> str:
    if status["state"] == "SUCCESS":
        return "done: " + " ".join(status["result"]["outputs"].values())
    if "error" in status:
        return f"{status['state']} {status['error']['error']}: {status['error']['message']}"
    if "progress" in status:
        return f"{status['state']} {status['progress']['percent']:.1f}%"
    return status["state"]


@click.command("status")
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job.")
@config_option
def status(job_ids: tuple[str, ...], as_json: bool, config_path: str | None) -> None:
    """Show each JOB's state (QUEUED, STARTED, PROGRESS, SUCCESS, FAILURE, LOST ...), progress,
    result paths or error (exit 1 if any failed or is lost, 2 if Redis cannot be reached)."""
    from ocml.worker import client

    app, _ = _client(config_path)
    with _reachable():
        statuses = [client.job_status(app, job_id) for job_id in job_ids]
    for s in statuses:
        click.echo(json.dumps(s, sort_keys=True) if as_json else f"{s['id']} {_describe(s)}")
    if any(s["state"] in ("FAILURE", "LOST") for s in statuses):
        sys.exit(1)


@click.command("watch")
@click.argument("inbox", type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False),
    help="Put each file's results in DIR/<stem>/ (default: <output_root>/<stem>).",
)
@format_option(FORMATS, default_help="default: the settings' formats")
@preset_option
@param_options
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="Seconds between scans.",
)
@click.option(
    "--settle",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="A file counts as fully written once unchanged for this many seconds.",
)
@click.option("--once", is_flag=True, help="Scan twice, submit what is ready, exit.")
@model_options
@config_option
def watch(
    inbox: str,
    output_dir: str | None,
    formats: tuple[str, ...],
    preset: str | None,
    params: dict[str, float],
    interval: float,
    settle: float,
    once: bool,
    model_version: str | None,
    any_model: bool,
    config_path: str | None,
) -> None:
    """Hot folder: submit each new, fully written file in INBOX exactly once (restarts included).

    The jobs expect the settings' model as `ocml submit`'s do (--model-version, --any-model).
    """
    from ocml.worker import client
    from ocml.worker.jobs import JobInvalid, resolve_job_params

    app, settings = _client(config_path)
    model, tuned = _job_model(settings, model_version=model_version, any_model=any_model)
    try:  # every job would fail on a bad parameter: refuse it before watching
        resolve_job_params(settings, preset=preset, params=params, tuned=tuned)
    except JobInvalid as exc:
        raise click.ClickException(str(exc)) from None
    folder = Path(inbox)

    def make_job(path: Path) -> dict[str, Any]:
        target = None if output_dir is None else Path(output_dir) / path.stem
        return client.build_job(
            path, output_dir=target, formats=formats, preset=preset, params=params, model=model
        )

    previous = client.scan_inbox(folder)
    while True:
        time.sleep(interval)
        current = client.scan_inbox(folder)
        ready = client.settled(previous, current, now=time.time(), settle=settle)
        with _reachable():
            for path, job_id in client.submit_new(app, settings, folder, ready, make_job):
                click.echo(f"{job_id} {path}")
        previous = current
        if once:
            return


COMMANDS = [worker, submit, status, watch]
