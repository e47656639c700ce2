"""Operator commands for the queue: ``ocml worker``, ``submit``, ``status`` and ``watch``.

``cli.root`` registers ``COMMANDS`` on the ``ocml`` group. Each command takes ``--config``
(or ``$OCML_CONFIG``) and ``OCML_*`` overrides, the same settings the workers use.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ocml.cli import exits
from ocml.cli.options import (
    cli_settings,
    config_option,
    format_option,
    model_options,
    no_speech_option,
    param_options,
    preset_option,
    refuse_shared_results,
    track_identity,
    track_options,
)
from ocml.config.settings import CONFIG_ENV, Settings
from ocml.pipeline.errors import OcmlError
from ocml.pipeline.writers import FORMATS

if TYPE_CHECKING:  # Celery is imported when a command needs the broker, so --help stays quick
    from celery import Celery

USAGE_CODES = ("bad_params", "bad_preset", "bad_format", "bad_track")
"""Job checks that refuse the command line rather than the input: exit status 2, not 1."""


def _client(settings: Settings) -> Celery:
    """The client app, after checking that Redis answers (one line, exit 3 if not)."""
    from ocml.worker import client
    from ocml.worker.app import make_app

    with _reachable():
        client.check_redis(settings)
    return make_app(settings)


@contextmanager
def _reachable() -> Iterator[None]:
    """Turns "Redis cannot be reached" anywhere inside into one line and exit status 3."""
    from ocml.worker import client

    try:
        yield
    except client.RedisUnreachable as exc:
        raise exits.Failure("redis_unreachable", str(exc), status=exits.UNREACHABLE) from None
    except client.UNREACHABLE as exc:
        raise exits.Failure(
            "redis_unreachable", f"cannot reach Redis: {exc}", status=exits.UNREACHABLE
        ) from None


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
    from ocml.worker import preflight

    if config_path is not None:
        os.environ[CONFIG_ENV] = os.path.abspath(config_path)
    settings = cli_settings(config_path)
    try:
        preflight.check_worker_settings(settings)
    except preflight.SettingProblem as problem:
        raise exits.Failure(problem.setting, problem.problem, status=exits.USAGE) from None
    from ocml.worker.app import app

    argv = [
        "worker",
        f"--loglevel={loglevel}",
        "--events",
        f"--concurrency={concurrency or settings.concurrency or os.cpu_count() or 1}",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)


@exits.failures_on_stdout_with("--wait")
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
    "--properties",
    "properties_file",
    type=click.Path(dir_okay=False),
    help="With --wait and one FILE: write the finished job's outcome here as Java properties, "
    "ocml_job_id=<id> and ocml_speech_found=true|false (false: no speech, the result cuts "
    "nothing), for Opencast's execute-once with set-workflow-properties; docs/opencast.md.",
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
    properties_file: str | None,
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

    The post-processing options are those of `ocml segment` (--preset trim keeps one segment over
    the lecture: its sustained speech and the speech around it closer than --trim-bridge; tune it
    with --trim-min-speech, --trim-window and --trim-bridge);
    what is not given comes from the preset, the model's tuned values and the settings, checked
    here as the worker will resolve them.

    Without -o, each job's results go to <output_root>/<its path below the media roots,
    without the suffix>/, so inputs of the same name in different folders keep their own
    results; two inputs that would still write the same result file are refused, naming both.

    Each job expects the settings' model (name, version and digest), so only a worker serving
    that model runs it; --model-version accepts any build of a version, --any-model any model.

    With --wait, a job that failed, was lost twice or did not finish in time ends the command
    with exit status 1 and one line on stdout, ``ocml: failed: <code>: <message>``; every other
    failure prints such a line there too (status 2: a usage error, 3: Redis cannot be reached).

    \b
    For Opencast's execute-once (docs/opencast.md), with --wait and one FILE:
      --output cutting.smil         copies the result file there, speech or not;
      --properties ocml.properties  writes ocml_job_id=<id> and ocml_speech_found=true|false
                                    there, so that a later operation, only if speech was
                                    found, copies the result: ocml status JOB_ID --output F.
    """
    from ocml.worker import client

    settings = cli_settings(config_path)
    if output_file is not None:
        if not wait_ or len(files) != 1 or len(formats or settings.formats) != 1:
            raise click.UsageError("--output needs --wait, one FILE and one --format")
    if properties_file is not None and (not wait_ or len(files) != 1):
        raise click.UsageError("--properties needs --wait and one FILE")
    track = track_identity(
        track_id=track_id, track_flavor=track_flavor, track_src=track_src, inputs=len(files)
    )
    given_track = {k: v for k, v in vars(track).items() if v is not None}
    model, tuned = _job_model(settings, model_version=model_version, any_model=any_model)
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
    _check_jobs(files, jobs, settings, tuned=tuned, output_dir=output_dir)
    app = _client(settings)
    durations = [client.duration_of(job["input"]) for job in jobs]
    with _reachable():
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

    display = ProgressDisplay(display_names(files), tty=sys.stderr.isatty())
    try:
        with _reachable():
            statuses = client.wait(
                app,
                ids,
                on_update=display,
                timeout=timeout,
                lost_after=max(5.0, 2 * settings.lease_interval),
                on_lost=resubmit,
            )
    except KeyboardInterrupt:
        raise exits.Failure(
            "interrupted",
            f"interrupted (Ctrl-C) while waiting; the jobs go on: ocml status {' '.join(ids)}",
            status=exits.INTERRUPTED,
        ) from None
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
        exits.report(error["error"], error["message"], stdout=True)
    if failed:
        sys.exit(exits.FAILED)
    if output_file is not None:
        _copy_result(statuses[0]["result"], output_file)
    if properties_file is not None:
        _write(properties_file, outcome_properties(ids[0], statuses[0]["result"]))


def _check_jobs(
    files: tuple[str, ...],
    jobs: list[dict[str, Any]],
    settings: Settings,
    *,
    tuned: Mapping[str, Any] | None,
    output_dir: str | None,
) -> None:
    """Checks every job as the worker will (parameters with the model's ``tuned`` values), then
    that no two write the same result file: a failure line before anything is queued (status 2
    for a bad parameter or format)."""
    from ocml.pipeline.writers import output_paths
    from ocml.worker.jobs import JobInvalid, parse_job

    outputs = []
    for name, job in zip(files, jobs):
        try:
            parsed = parse_job(job, settings, tuned=tuned, formats_known=FORMATS)
        except JobInvalid as exc:
            status = exits.USAGE if exc.code in USAGE_CODES else exits.FAILED
            raise exits.Failure(exc.code, str(exc), status=status) from None
        paths = output_paths(parsed.output_dir, parsed.input.stem, parsed.formats)
        outputs.append((name, [str(path) for path in paths.values()]))
    fix = (
        "submit them separately, each with its own -o DIR, or leave out -o"
        if output_dir is not None
        else "submit one of them with its own -o DIR"
    )
    refuse_shared_results(outputs, fix=fix)


def _job_model(
    settings: Settings, *, model_version: str | None, any_model: bool
) -> tuple[dict[str, str] | None, dict[str, Any] | None]:
    """The ``model`` each job expects and the tuned values its parameters are checked with:
    the settings' model in full, by name and ``model_version``, or none with ``any_model``.

    A model that cannot be read here (it lives on the worker hosts only) needs one of the two
    options (else a usage failure); with ``model_version`` the jobs then expect that version of
    any name.
    """
    from ocml.worker.jobs import read_model

    if model_version is not None and any_model:
        raise click.UsageError("--model-version and --any-model exclude each other")
    try:
        identity, tuned = read_model(settings)
    except OcmlError as exc:
        if any_model or model_version is not None:
            return (None if any_model else {"version": model_version}), None
        raise exits.Failure(
            exc.code,
            f"{exc}; the jobs could not say which model they expect: give --model-version "
            "VERSION or --any-model",
            status=exits.USAGE,
        ) from None
    return (None if any_model else identity.expectation(version=model_version)), tuned


def display_names(files: tuple[str, ...]) -> list[str]:
    """How the progress and closing lines name each input: its file name, or the path as given
    when another input has the same file name."""
    names = [Path(f).name for f in files]
    return [f if names.count(name) > 1 else name for f, name in zip(files, names)]


def _copy_result(result: dict[str, Any], output_file: str) -> None:
    """Copies the job's one result file to ``--output``; a failure line if that fails."""
    (source,) = result["outputs"].values()
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise exits.Failure("output_error", f"cannot read {source}: {exc.strerror}") from None
    _write(output_file, data)


def _write(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically; a failure line if that fails."""
    from ocml.pipeline.writers import atomic_write

    try:
        atomic_write(os.path.abspath(path), data)
    except OcmlError as exc:
        raise exits.Failure(exc.code, str(exc)) from None


OUTCOME_PROPERTIES = ("ocml_job_id", "ocml_speech_found")
"""The workflow properties ``submit --properties`` sets, in the order it writes them."""


def outcome_properties(job_id: str, result: Mapping[str, Any]) -> bytes:
    """A finished job's id and whether it found speech, as the Java properties file Opencast's
    execute-once reads with set-workflow-properties (``key=value`` lines)."""
    found = not result["summary"]["no_speech"]
    values = dict(zip(OUTCOME_PROPERTIES, (job_id, str(found).lower())))
    return "".join(f"{key}={value}\n" for key, value in values.items()).encode("ascii")


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
@click.argument("job_ids", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job or message.")
@click.option(
    "--bad-messages",
    is_flag=True,
    help="Instead of jobs, the messages workers could not use and dropped, newest first.",
)
@click.option(
    "--output",
    "output_file",
    type=click.Path(dir_okay=False),
    help="With one JOB_ID of a job that succeeded and wrote one result file: copy that file "
    "here, as submit --output does.",
)
@config_option
def status(
    job_ids: tuple[str, ...],
    as_json: bool,
    bad_messages: bool,
    output_file: str | None,
    config_path: str | None,
) -> None:
    """Show each JOB's state (QUEUED, STARTED, PROGRESS, SUCCESS, FAILURE, LOST ...), progress,
    result paths or error (exit 1 if any failed or is lost, 3 if Redis cannot be reached).

    With --output FILE, also copy the one job's result file to FILE (exit 1 and nothing written
    while the job has not succeeded; 2 when it wrote several files): Opencast's ocml-smil.xml
    attaches the SMIL this way after `submit --properties` told it that there is speech.

    With --bad-messages, the messages the workers acknowledged and dropped because they could
    not use them (a malformed body or headers, not JSON, an unknown task; the last 1000), one
    line each: time (UTC), job id (- for none), worker, reason. Give job ids or --bad-messages.
    """
    from ocml.worker import client

    if bool(job_ids) == bad_messages:
        raise click.UsageError("give one or more JOB_IDS, or --bad-messages")
    if output_file is not None and len(job_ids) != 1:
        raise click.UsageError(f"--output needs exactly one JOB_ID, got {len(job_ids)}")
    app = _client(cli_settings(config_path))
    if bad_messages:
        with _reachable():
            entries = client.bad_messages(app)
        for entry in entries:
            click.echo(json.dumps(entry, sort_keys=True) if as_json else _bad_message_line(entry))
        return
    with _reachable():
        statuses = [client.job_status(app, job_id) for job_id in job_ids]
    for s in statuses:
        click.echo(json.dumps(s, sort_keys=True) if as_json else f"{s['id']} {_describe(s)}")
    if any(s["state"] in ("FAILURE", "LOST") for s in statuses):
        sys.exit(exits.FAILED)
    if output_file is not None:
        _copy_result(_one_result(statuses[0]), output_file)


def _one_result(status: Mapping[str, Any]) -> dict[str, Any]:
    """The result of a job that succeeded with one result file, for ``status --output``; a
    failure line for one still under way (status 1) or with several files (status 2)."""
    job_id, state = status["id"], status["state"]
    if state != "SUCCESS":
        raise exits.Failure(
            "not_finished",
            f"job {job_id} is {state}: no result to copy to --output yet; nothing was written",
        )
    outputs = status["result"]["outputs"]
    if len(outputs) != 1:
        raise exits.Failure(
            "several_outputs",
            f"job {job_id} wrote {len(outputs)} result files ({', '.join(outputs)}); --output "
            "copies a job's one file: submit it with one --format",
            status=exits.USAGE,
        )
    return status["result"]


def _bad_message_line(entry: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry["at"]))
    reason = " ".join(str(entry["reason"]).split())
    return f"{when} {entry.get('job_id') or '-'} {entry.get('worker')}: {reason}"


@click.command("watch")
@click.argument("inbox", type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False),
    help="Put each file's results in DIR/<its path below INBOX, without the suffix>/ "
    "(default: <output_root>/<its path below the media roots, without the suffix>/).",
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
    help="A file is ready once its size and mtime have not changed for this many seconds "
    "and no process on this host has it open for writing.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Scan, wait the settle time (at least --interval), scan again, submit what is ready "
    "and exit, without waiting for the outcomes.",
)
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
    """Hot folder: submit each file in INBOX once it is fully written, and again when it changes.

    Prints a line on stdout for each job: `<job id> submitted <path>`, then as it ends
    `<job id> done <path>` or `<job id> failed <path>: <code>: <message>`. Each file's version
    and job are kept in Redis, and a file whose result (JSON) already names it with the same
    sha256 is not submitted again, so neither a restart of the watcher nor a Redis that lost
    its data submits a file twice. A changed file's old results are removed before its new job.
    INBOX must lie below media_roots and DIR below output_root. Files whose names differ only
    in their suffix (talk.mp4, talk.wav) would share a results folder: neither is submitted
    while both are in INBOX, and one line names them.

    The jobs expect the settings' model as `ocml submit`'s do (--model-version, --any-model).
    """
    from ocml.worker import client
    from ocml.worker.jobs import JobInvalid, resolve_job_params
    from ocml.worker.watch import Watcher

    settings = cli_settings(config_path)
    model, tuned = _job_model(settings, model_version=model_version, any_model=any_model)
    try:  # every job would fail on a bad parameter: refuse it before watching
        resolve_job_params(settings, preset=preset, params=params, tuned=tuned)
    except JobInvalid as exc:
        raise exits.Failure(exc.code, str(exc), status=exits.USAGE) from None
    folder = Path(os.path.realpath(inbox))
    _check_below(folder, settings.media_roots, setting="media_roots", what="INBOX")
    if output_dir is not None:
        results = Path(os.path.realpath(output_dir))
        _check_below(results, (settings.output_root,), setting="output_root", what="--output-dir")
    app = _client(settings)

    def make_job(path: Path) -> dict[str, Any]:
        target = None
        if output_dir is not None:
            target = Path(output_dir) / client.result_folder(path, inbox=folder)
        return client.build_job(
            path, output_dir=target, formats=formats, preset=preset, params=params, model=model
        )

    watcher = Watcher(app, settings, folder, make_job=make_job, settle=settle, tuned=tuned)
    if once:
        with _reachable():
            _scan(watcher)
            time.sleep(max(interval, settle))
            _scan(watcher)
        return
    outage = RedisOutage(app.conf.result_backend)
    while True:
        try:
            _scan(watcher)
            outage.over()
        except client.UNREACHABLE as exc:
            outage.began(exc)
        time.sleep(interval)


def _check_below(path: Path, roots: tuple[Path, ...], *, setting: str, what: str) -> None:
    """Refuses to watch when every job would fail ``path_outside_roots``: one line naming the
    setting and the folder."""
    if any(path.is_relative_to(os.path.realpath(root)) for root in roots):
        return
    allowed = ", ".join(str(root) for root in roots)
    raise click.ClickException(
        f"{what} {path} lies outside {setting} ({allowed}): every job would fail with "
        f"path_outside_roots; choose a folder below {setting} or add it to {setting} in the "
        "settings"
    )


def _scan(watcher: Any) -> None:
    """One scan of the hot folder, each event on one line (jobs on stdout, notes on stderr)."""
    for event in watcher.scan():
        click.echo(**_event_line(event))


def _event_line(event: Any) -> dict[str, Any]:
    """``click.echo`` arguments for one `worker.watch.Event`."""
    path = event.path
    if event.kind in ("submitted", "done"):
        return {"message": f"{event.job_id} {event.kind} {path}"}
    error = event.error or {"error": "unknown", "message": ""}
    reason = f"{error['error']}: {' '.join(str(error['message']).split())}"
    if event.kind in ("failed", "lost"):
        return {"message": f"{event.job_id} {event.kind} {path}: {reason}"}
    notes = {
        "present": f"{path}: its result is already there ({event.detail}); not submitted again",
        "refused": f"{path}: not submitted: {reason}",
        "replaced": f"{path}: changed since its last job; its old results were removed "
        f"({event.detail})",
    }
    return {"message": notes.get(event.kind, f"{path}: {event.detail}"), "err": True}


class RedisOutage:
    """A watcher waits out a Redis outage of up to ``limit`` s (a restart), saying so on
    stderr; a longer one ends it with the one-line report and exit status 3."""

    def __init__(self, url: str, *, limit: float = 60.0) -> None:
        self.url = url
        self.limit = limit
        self.since: float | None = None

    def began(self, exc: Exception) -> None:
        from ocml.worker.client import redis_location

        now = time.monotonic()
        reason = f"cannot reach Redis at {redis_location(self.url)}: {exc}"
        if self.since is None:
            self.since = now
            click.echo(f"{' '.join(reason.split())}; retrying for {self.limit:g} s", err=True)
        elif now - self.since > self.limit:
            raise exits.Failure("redis_unreachable", reason, status=exits.UNREACHABLE)

    def over(self) -> None:
        if self.since is not None:
            click.echo("Redis answers again; watching on", err=True)
        self.since = None


COMMANDS = [worker, submit, status, watch]
