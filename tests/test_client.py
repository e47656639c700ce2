"""Clients without workers: a job's state from submission on, lost jobs, an unreachable Redis.

Each test starts its own ``redis-server`` without persistence on this checkout's private port
(``OCML_TEST_OWN_REDIS_PORT``, free between test modules), or points at that port while nothing
listens there, so restarting or missing Redis touches no other test or checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocml.pipeline.model_metadata import default_model_path, read_metadata
from ocml.pipeline.postprocess import SegmentParams
from ocml.worker import client
from ocml.worker.app import make_app
from tests.worker_support import (
    ROOT,
    TEST_OWN_REDIS_PORT,
    OwnRedis,
    media_and_results,
    ocml,
    recording,
    settings_from,
    worker_env,
    write_settings,
)

VOLATILE_PORT = CLOSED_PORT = TEST_OWN_REDIS_PORT


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    return media_and_results(tmp_path)


@pytest.fixture
def volatile(tmp_path: Path):
    """A Redis that forgets everything when it restarts, as one without persistence does."""
    server = OwnRedis(tmp_path, VOLATILE_PORT, persist=False)
    server.start()
    yield server
    server.kill()


def test_a_queued_job_is_queued_and_a_job_redis_forgot_is_lost(volatile, folders, tmp_path):
    media, output = folders
    config = write_settings(
        tmp_path / "s.yaml", redis_url=volatile.url, media=media, output=output, model="default"
    )
    settings = settings_from(config)
    app = make_app(settings)
    job_id = client.submit(app, settings, client.build_job(recording(media / "q.wav", 2.0)))

    assert client.job_status(app, job_id)["state"] == "QUEUED"
    volatile.kill()
    volatile.start()
    lost = client.job_status(app, job_id)
    shown = ocml("status", job_id, config=config)

    assert lost["state"] == "LOST"
    assert lost["error"]["error"] == "job_lost"
    assert shown.returncode == 1
    assert shown.stdout.startswith(f"{job_id} LOST job_lost: Redis has no trace of job {job_id}")


@pytest.mark.slow
def test_submit_wait_submits_a_lost_job_once_more_then_fails_with_one_line(
    volatile, folders, tmp_path
):
    media, output = folders
    config = write_settings(
        tmp_path / "s.yaml", redis_url=volatile.url, media=media, output=output, model="default"
    )
    settings = settings_from(config)
    app = make_app(settings)
    path = recording(media / "lost.wav", 2.0)
    waiting = subprocess.Popen(
        [str(Path(sys.executable).with_name("ocml")), "submit", str(path), "--wait"]
        + ["--config", str(config)],
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        job_id = waiting.stdout.readline().strip()
        assert client.job_status(app, job_id)["state"] == "QUEUED"
        volatile.kill()
        volatile.start()
        while "was lost" not in (line := waiting.stderr.readline()):
            assert line, "ocml submit --wait ended without submitting the lost job again"
        assert client.job_status(app, job_id)["state"] == "QUEUED"
        volatile.kill()
        volatile.start()
        out, _ = waiting.communicate(timeout=120)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()

    assert waiting.returncode == 1
    assert out.splitlines() == [  # after the job id, read above
        f"ocml: failed: job_lost: Redis has no trace of job {job_id}: it is not queued, "
        "running or finished (lost when Redis restarted without persistence, expired after "
        "result_expires, or never submitted)",
    ]


def test_clients_fail_with_one_line_and_status_3_when_redis_cannot_be_reached(folders, tmp_path):
    media, output = folders
    url = f"redis://:hunter2@127.0.0.1:{CLOSED_PORT}/3"
    config = write_settings(
        tmp_path / "s.yaml", redis_url=url, media=media, output=output, model="default"
    )
    path = recording(media / "any.wav", 2.0)
    expected = (
        "ocml: failed: redis_unreachable: "
        f"cannot reach Redis at redis://127.0.0.1:{CLOSED_PORT}/3: "
    )

    status = ocml("status", "some-job", config=config)
    queued = ocml("submit", str(path), config=config)
    waited = ocml("submit", str(path), "--wait", config=config)

    assert (status.returncode, queued.returncode, waited.returncode) == (3, 3, 3)
    for done in (status, queued):
        assert done.stdout == ""
        (line,) = done.stderr.splitlines()
        assert line.startswith(expected)
    (line,) = waited.stdout.splitlines()
    assert line.startswith(expected)
    assert "hunter2" not in status.stderr + queued.stderr + waited.stdout


def test_submit_checks_params_against_the_values_the_worker_will_use(volatile, folders, tmp_path):
    media, output = folders
    config = write_settings(
        tmp_path / "s.yaml", redis_url=volatile.url, media=media, output=output, model="default"
    )
    path = recording(media / "tuned.wav", 2.0)
    # The shipped model's tuned neg_threshold (0.24 in 3.2.0) differs from the preset's (0.35):
    # submit judges a threshold by the one the worker will use, so just above the tuned value is
    # accepted (the preset's would refuse it) and just below is refused.
    tuned = read_metadata(default_model_path())["postprocess"]["neg_threshold"]
    assert tuned < SegmentParams().neg_threshold
    refused = ocml("submit", str(path), "-p", f"threshold={tuned - 0.03:.2f}", config=config)
    accepted = ocml("submit", str(path), "-p", f"threshold={tuned + 0.01:.2f}", config=config)

    assert refused.returncode == 2
    assert (
        refused.stderr.startswith("ocml: failed: bad_params: ")
        and "neg_threshold" in refused.stderr
    )
    assert refused.stdout == ""
    assert accepted.returncode == 0, accepted.stderr


def test_submit_refuses_a_file_name_that_is_not_utf8_in_one_line(volatile, folders, tmp_path):
    media, output = folders
    config = write_settings(
        tmp_path / "s.yaml", redis_url=volatile.url, media=media, output=output, model="default"
    )
    name = os.fsdecode(b"lecture-\xff.wav")
    os.rename(recording(media / "plain.wav", 2.0), media / name)

    refused = ocml("submit", str(media / name), config=config)

    assert refused.returncode == 1
    (line,) = refused.stderr.splitlines()
    assert line.startswith("ocml: failed: bad_file_name: input ")
    assert "is not valid UTF-8 (byte b'\\xff' at character" in line


def test_submit_outside_the_roots_names_the_setting_to_change(volatile, folders, tmp_path):
    media, output = folders
    config = write_settings(
        tmp_path / "s.yaml", redis_url=volatile.url, media=media, output=output, model="default"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = recording(elsewhere / "talk.wav", 2.0)

    refused = ocml("submit", str(path), config=config)
    wrong_output = ocml(
        "submit", str(recording(media / "talk.wav", 2.0)), "-o", str(elsewhere), config=config
    )

    assert refused.returncode == 1
    (line,) = refused.stderr.splitlines()
    assert line.startswith(f"ocml: failed: path_outside_roots: input {path} lies outside")
    assert f"media_roots = {media};" in line and "OCML_MEDIA_ROOTS=DIR:DIR" in line
    (line,) = wrong_output.stderr.splitlines()
    assert f"output_dir {elsewhere} lies outside the allowed directories, output_root" in line
    assert "OCML_OUTPUT_ROOT=DIR" in line


def test_status_output_copies_nothing_from_a_job_that_has_not_succeeded(
    volatile, folders, tmp_path
):
    media, output = folders
    config = write_settings(
        tmp_path / "s.yaml", redis_url=volatile.url, media=media, output=output, model="default"
    )
    settings = settings_from(config)
    job_id = client.submit(
        make_app(settings), settings, client.build_job(recording(media / "w.wav", 2.0))
    )
    target = tmp_path / "cutting.smil"

    queued = ocml("status", job_id, "--output", str(target), config=config)
    two = ocml("status", job_id, "other-job", "--output", str(target), config=config)
    unwaited = ocml("submit", str(media / "w.wav"), "--properties", str(target), config=config)

    assert queued.returncode == 1
    assert queued.stdout == f"{job_id} QUEUED\n"
    assert queued.stderr.splitlines() == [
        f"ocml: failed: not_finished: job {job_id} is QUEUED: no result to copy to --output "
        "yet; nothing was written"
    ]
    assert two.returncode == 2
    assert two.stderr.endswith("ocml: failed: usage: --output needs exactly one JOB_ID, got 2\n")
    assert unwaited.returncode == 2 and unwaited.stdout == ""
    assert "ocml: failed: usage: --properties needs --wait and one FILE" in unwaited.stderr
    assert not target.exists()


def test_a_watched_file_gets_its_results_folder_from_its_path_below_the_inbox(tmp_path):
    inbox = tmp_path / "inbox"
    files = [inbox / "a" / "presenter.mp4", inbox / "b" / "presenter.mp4", inbox / "talk.wav"]

    folders = [client.result_folder(path, inbox=inbox) for path in files]
    clashes = client.result_clashes(
        [*files, inbox / "talk.flac", inbox / "a" / "talk.wav"], inbox=inbox
    )

    assert folders == [Path("a/presenter"), Path("b/presenter"), Path("talk")]
    assert clashes == {
        inbox / "talk.wav": inbox / "talk.flac",
        inbox / "talk.flac": inbox / "talk.wav",
    }
