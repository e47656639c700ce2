"""Exit statuses and the one ``ocml: failed:`` line, run as an operator runs the commands.

Every case runs the installed console script in a real process. Redis is needed only where the
case says so: the cases refused before any work point at a port where nothing listens, which
also shows that they are refused before Redis is asked.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from ocml.cli import exits
from ocml.pipeline.errors import InputMissing, ParamsError
from tests.worker_support import (
    ROOT,
    TEST_OWN_REDIS_PORT,
    TEST_REDIS_URL,
    flush,
    media_and_results,
    recording,
    worker_env,
    write_settings,
)

BIN = Path(sys.executable).parent
CLOSED_URL = f"redis://127.0.0.1:{TEST_OWN_REDIS_PORT}/0"


def run(
    command: str, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Runs ``ocml`` or ``ocml-train`` with ``args`` (the environment without OCML_* settings)."""
    return subprocess.run(
        [str(BIN / command), *map(str, args)],
        cwd=ROOT,
        env={**worker_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def failure_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(exits.FAILED_PREFIX)]


def the_line(proc: subprocess.CompletedProcess, *, stdout: bool = False) -> str:
    """The one failure line, on the stream it belongs to; none on the other; no traceback."""
    where, other = (proc.stdout, proc.stderr) if stdout else (proc.stderr, proc.stdout)
    (line,) = failure_lines(where)
    assert failure_lines(other) == []
    assert "Traceback" not in proc.stdout + proc.stderr
    return line


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """Media with two media packages that each hold a ``presenter.wav``, results, settings
    pointing at a Redis that does not answer."""
    media, output = tmp_path / "media", tmp_path / "results"
    for seed, package in enumerate(("mp1", "mp2")):
        (media / package).mkdir(parents=True)
        recording(media / package / "presenter.wav", 2.0, seed=seed)
    output.mkdir()
    config = write_settings(
        tmp_path / "closed.yaml", redis_url=CLOSED_URL, media=media, output=output, model="default"
    )
    return {"media": media, "output": output, "config": config}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-p", "min_silence=abc"), "usage: Invalid value for --param: min_silence: not a number"),
        (("-f", "xml"), "usage: Invalid value for '-f' / '--format': 'xml': choose from"),
        (("--min-silence", "-1"), "bad_params: min_silence must lie in [0, 3600] seconds"),
        (("--preset", "loud"), "usage: Invalid value for '--preset': 'loud' is not one of"),
    ],
)
def test_segment_usage_errors_are_status_2_with_one_line(folders, args, message):
    proc = run("ocml", "segment", folders["media"] / "mp1" / "presenter.wav", *args)
    assert proc.returncode == exits.USAGE
    assert the_line(proc).startswith(f"ocml: failed: {message}")


def test_segment_refuses_two_inputs_with_one_result_before_loading_the_model(folders, tmp_path):
    one, two = (folders["media"] / p / "presenter.wav" for p in ("mp1", "mp2"))
    out = tmp_path / "out"
    # A model that does not exist: the refusal comes before the model is even looked at.
    refused = run("ocml", "segment", one, two, "-o", out, "--model", tmp_path / "no-model")
    twice = run("ocml", "segment", one, one, "--model", tmp_path / "no-model")

    assert refused.returncode == exits.USAGE
    assert the_line(refused) == (
        f"ocml: failed: results_collide: {one} and {two} would both write "
        f"{out / 'presenter.json'}; leave out -o to write each result beside its input, "
        "or give each its own -o DIR"
    )
    assert not out.exists()
    assert twice.returncode == exits.USAGE
    assert (
        the_line(twice)
        == f"ocml: failed: results_collide: {one} is given twice; give each input once"
    )


def test_segment_writes_same_named_inputs_beside_each_input(folders, tiny_model_dir):
    one, two = (folders["media"] / p / "presenter.wav" for p in ("mp1", "mp2"))
    done = run("ocml", "segment", one, two, "--model", tiny_model_dir, "-f", "json")

    assert done.returncode == exits.SUCCESS, done.stderr
    for path in (one, two):
        assert path.with_suffix(".json").is_file()
        assert str(path) in path.with_suffix(".json").read_text()


def test_segment_reports_each_failed_file_on_one_line_and_exits_1(folders, tiny_model_dir):
    good = folders["media"] / "mp1" / "presenter.wav"
    missing = folders["media"] / "mp3" / "presenter.wav"
    proc = run("ocml", "segment", good, missing, "--model", tiny_model_dir, "-f", "json")

    assert proc.returncode == exits.FAILED
    assert the_line(proc).startswith(f"ocml: failed: input_missing: {missing}: no such file")


@pytest.mark.parametrize("wait", [False, True], ids=["plain", "wait"])
def test_submit_failures_before_any_work_have_their_status_and_one_line(folders, wait):
    media, config = folders["media"], folders["config"]
    one, two = media / "mp1" / "presenter.wav", media / "mp2" / "presenter.wav"
    flag = ("--wait",) if wait else ()

    def submit(*args: str | Path) -> subprocess.CompletedProcess:
        return run("ocml", "submit", *args, *flag, "--config", config)

    cases = {
        "directory": (submit(media / "mp1"), exits.USAGE, "usage: Invalid value for 'FILES...'"),
        "-o names a file": (
            submit(one, "-o", config),
            exits.USAGE,
            "usage: Invalid value for '-o' / '--output-dir'",
        ),
        "bad number": (
            submit(one, "-p", "min_silence=abc"),
            exits.USAGE,
            "usage: Invalid value for --param",
        ),
        "bad format": (submit(one, "-f", "xml"), exits.USAGE, "usage: Invalid value for '-f'"),
        "bad value": (submit(one, "--threshold", "5"), exits.USAGE, "bad_params: threshold"),
        "same results": (
            submit(one, two, "-o", folders["output"] / "x"),
            exits.USAGE,
            f"results_collide: {one} and {two} would both write "
            f"{folders['output'] / 'x' / 'presenter.json'}; submit them separately, each with "
            "its own -o DIR, or leave out -o",
        ),
        "missing input": (
            submit(media / "nope.wav"),
            exits.FAILED,
            f"input_missing: {media / 'nope.wav'}: no such file",
        ),
        "unreachable": (
            submit(one),
            exits.UNREACHABLE,
            f"redis_unreachable: cannot reach Redis at {CLOSED_URL}: ",
        ),
    }
    for name, (proc, status, start) in cases.items():
        assert proc.returncode == status, (name, proc.stderr)
        assert the_line(proc, stdout=wait).startswith(f"ocml: failed: {start}"), name


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("ocml", ("status", "some-job")),
        ("ocml", ("submit", "x.wav", "--wait")),
        ("ocml", ("watch", ".")),
        ("ocml", ("worker",)),
    ],
    ids=lambda value: value if isinstance(value, str) else value[0],
)
def test_a_malformed_broker_url_is_one_line_naming_the_variable(command, args):
    wait = "--wait" in args
    proc = run(command, *args, env={"OCML_BROKER_URL": "redis://:hunter2@host:notaport/0"})
    assert proc.returncode == exits.USAGE
    line = the_line(proc, stdout=wait)
    assert line.startswith("ocml: failed: bad_settings: environment variable OCML_BROKER_URL: ")
    assert "the port 'notaport' is not a number" in line
    assert "hunter2" not in proc.stdout + proc.stderr


def test_ocml_train_and_plot_end_with_one_line_and_their_status(folders, tmp_path):
    recipe = run("ocml-train", "synth", tmp_path / "synth", "--recipe", tmp_path / "none.yaml")
    media = folders["media"] / "mp1" / "presenter.wav"
    plot = run("ocml", "plot", media, "-r", folders["config"], "-o", tmp_path / "x.png")

    assert recipe.returncode == exits.USAGE
    assert the_line(recipe).startswith("ocml: failed: bad_recipe: ")
    assert plot.returncode == exits.FAILED
    assert the_line(plot).startswith(f"ocml: failed: invalid_result: {folders['config']}: ")


def as_from_a_terminal() -> None:
    """In the child before exec: SIGINT unblocked and at its default, as a shell gives a command.

    A child inherits its parent's blocked and ignored signals. In one whole-suite run in four the
    command never saw the test's SIGINT (its stacks showed it polling on); alone it always did.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ended_or_dumped(proc: subprocess.Popen, timeout: float = 60.0) -> tuple[str, str]:
    """The output of ``proc`` once it ends; if it does not, every thread's stack (SIGABRT under
    PYTHONFAULTHANDLER) in the failure, so a hang after Ctrl-C says where it hangs."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"{proc.args[1]} still running {timeout:g} s after SIGINT:\n{out}\n{err}")


def test_interrupted_submit_wait_and_watch_exit_130_with_one_line(tmp_path):
    media, output = media_and_results(tmp_path)
    path = recording(media / "waiting.wav", 2.0)
    config = write_settings(
        tmp_path / "s.yaml", redis_url=TEST_REDIS_URL, media=media, output=output, model="default"
    )
    flush(TEST_REDIS_URL)  # no worker serves this database: the job stays queued
    commands = {
        "submit": ["submit", str(path), "--wait"],
        "watch": ["watch", str(media), "--interval", "0.1", "--settle", "0.2"],
    }
    procs = {
        name: subprocess.Popen(
            [str(BIN / "ocml"), *args, "--config", str(config)],
            cwd=ROOT,
            env={**worker_env(), "PYTHONFAULTHANDLER": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=as_from_a_terminal,
        )
        for name, args in commands.items()
    }
    try:
        job_id = procs["submit"].stdout.readline().strip()
        procs["watch"].stdout.readline()  # it submitted the file: started, now waiting on it
        time.sleep(0.5)
        for proc in procs.values():
            proc.send_signal(signal.SIGINT)
        ended = {name: (proc, *ended_or_dumped(proc)) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        flush(TEST_REDIS_URL)

    submitted, out, err = ended["submit"]
    assert submitted.returncode == exits.INTERRUPTED
    assert failure_lines(out) == [
        "ocml: failed: interrupted: interrupted (Ctrl-C) while waiting; the jobs go on: "
        f"ocml status {job_id}"
    ]
    watched, out, err = ended["watch"]
    assert watched.returncode == exits.INTERRUPTED
    assert failure_lines(err) == ["ocml: failed: interrupted: interrupted (Ctrl-C)"]


def test_an_unusable_evaluation_report_is_one_line_from_the_one_handler(tmp_path):
    """`export --metrics` reads the report in the library; the command does not catch anything."""
    report = tmp_path / "dev.json"
    report.write_text('{"data": "dev"}')
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    args = ["--data", tmp_path, "--metrics", report]
    proc = run("ocml-train", "export", run_dir, tmp_path / "out", *args)
    assert proc.returncode == exits.FAILED
    assert the_line(proc).startswith(f"ocml: failed: bad_input: {report}: not an evaluation report")


def _group_raising(error: Exception) -> exits.Group:
    @click.group(cls=exits.Group)
    @click.option("-v", "--verbose", is_flag=True, expose_value=False)
    def group() -> None:
        """A root group as `ocml` and `ocml-train` have it."""

    @group.command()
    def boom() -> None:
        raise error

    return group


@pytest.mark.parametrize(
    "error,line,status",
    [
        (ParamsError("threshold must lie in [0, 1], got 5"), "bad_params: threshold", exits.USAGE),
        (InputMissing("no such file", path="a.wav"), "input_missing: a.wav: no such", exits.FAILED),
        (PermissionError(13, "Permission denied", "out"), "os_error: [Errno 13]", exits.FAILED),
        (ZeroDivisionError("division by zero"), "internal_error: ZeroDivisionError", exits.FAILED),
    ],
)
def test_the_group_turns_expected_errors_and_bugs_into_one_line(capsys, error, line, status):
    with pytest.raises(SystemExit) as ended:
        _group_raising(error).main(["boom"], prog_name="ocml")
    err = capsys.readouterr().err
    assert ended.value.code == status
    (reported,) = failure_lines(err)
    assert reported.startswith(f"{exits.FAILED_PREFIX} {line}")
    assert "Traceback" not in err


def test_a_bug_keeps_its_traceback_with_the_root_groups_verbose_flag():
    with pytest.raises(ZeroDivisionError):
        _group_raising(ZeroDivisionError("division by zero")).main(["-v", "boom"], prog_name="ocml")
