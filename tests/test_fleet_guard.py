"""Misconfigured workers in a real fleet: bad settings refuse to start; a job a worker cannot
run for a reason of its own (no media mount, another model) is left to a worker that can, and
fails with the real error after ``max_handoffs`` refusals; ``submit`` refuses what a worker would.

Real ``ocml worker`` processes on the machine's Redis (DB 13 or ``OCML_TEST_REDIS_DB``, flushed
here). A host without the media mount is a worker in a mount namespace of its own, where an
empty tmpfs hides the media folder. Model X is the tiny test model; model Y is the same network
tuned differently and versioned 0.0.2 (threshold 0.8, neg_threshold 0.7), as a re-tuned copy
on one host would be.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ocml.cli import exits
from ocml.pipeline.model_metadata import directory_sha256
from ocml.worker import client, runs
from ocml.worker.app import make_app
from ocml.worker.fleet import WORKERS_KEY
from ocml.worker.handoff import REFUSERS_KEY
from ocml.worker.jobs import TASK_NAME, read_model
from tests.worker_support import (
    ROOT,
    TEST_REDIS_URL,
    WorkerProcess,
    can_hide_mounts,
    flush,
    model_copy,
    ocml,
    recording,
    running_workers,
    settings_from,
    under_tmpfs,
    worker_env,
    write_settings,
)

pytestmark = pytest.mark.fleet

REDIS_URL = TEST_REDIS_URL
Y_TUNING = {"threshold": 0.8, "neg_threshold": 0.7}
needs_namespaces = pytest.mark.skipif(
    not can_hide_mounts(), reason="needs user or mount namespaces (unshare) to hide a mount"
)


@pytest.fixture(scope="module")
def model_y(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return model_copy(
        tiny_model_dir,
        tmp_path_factory.mktemp("models") / "tiny-y",
        version="0.0.2",
        postprocess=Y_TUNING,
    )


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, model_y: Path):
    """Media and result folders and one settings file per model (X, Y) on them."""
    base = tmp_path_factory.mktemp("guard")
    media, output = base / "media", base / "results"
    media.mkdir()
    output.mkdir()
    common = {"redis_url": REDIS_URL, "media": media, "output": output}
    return {
        "base": base,
        "media": media,
        "output": output,
        "x": write_settings(base / "x.yaml", model=tiny_model_dir, **common),
        "y": write_settings(base / "y.yaml", model=model_y, **common),
    }


def history(app, job_id: str) -> list[dict]:
    return runs.events(app.backend.client, job_id)


def refusers(app, job_id: str) -> dict[str, int]:
    """How often each worker refused the job."""
    raw = app.backend.client.hgetall(REFUSERS_KEY.format(id=job_id))
    return {node.decode(): int(times) for node, times in raw.items()}


def ran_on(app, job_id: str) -> list[str]:
    return [event["node"] for event in history(app, job_id) if event["event"] == "start"]


def queued_job(app, job_id: str) -> dict:
    return json.loads(runs.queued_record(app.backend.client, job_id)["job"])


def model_of(config: Path) -> Path:
    return settings_from(config).model_path


def queue_length(app) -> int:
    return int(app.backend.client.llen("celery"))


# --- start-up checks -------------------------------------------------------------------------


def refusal(worker: WorkerProcess) -> tuple[int, str]:
    """The exit status and whole output of a worker expected to refuse to start."""
    try:
        status = worker.proc.wait(timeout=60)
    finally:
        worker.stop()
    return status, worker.log.read_text()


def test_a_worker_with_unworkable_params_refuses_to_start_in_one_line(place):
    flush(REDIS_URL)
    settings = settings_from(place["x"])
    app = make_app(settings)
    waiting = client.submit(
        app, settings, client.build_job(recording(place["media"] / "waits.wav", 2.0))
    )

    worker = WorkerProcess(
        place["x"],
        name="badparams",
        concurrency=1,
        log=place["base"] / "badparams.log",
        env={"OCML_PARAMS": "{threshold: 5}"},
    )
    status, output = refusal(worker)

    assert status == 2
    (line,) = output.splitlines()
    assert line.startswith("ocml: failed: params: threshold ")
    assert "5" in line
    assert client.job_status(app, waiting)["state"] == "QUEUED"
    assert queue_length(app) == 1


def test_a_worker_without_its_media_root_refuses_to_start(place):
    missing = place["base"] / "not-mounted"
    config = write_settings(
        place["base"] / "missing-media.yaml",
        redis_url=REDIS_URL,
        media=missing,
        output=place["output"],
        model=model_of(place["x"]),
    )
    worker = WorkerProcess(config, name="nomedia", concurrency=1, log=place["base"] / "nomedia.log")

    status, output = refusal(worker)

    assert (status, output) == (2, f"ocml: failed: media_roots: {missing} does not exist\n")


@needs_namespaces
def test_a_worker_whose_output_root_is_read_only_refuses_to_start(place):
    worker = WorkerProcess(
        place["x"],
        name="rooutput",
        concurrency=1,
        log=place["base"] / "rooutput.log",
        prefix=under_tmpfs(place["output"], read_only=True),
    )

    status, output = refusal(worker)

    assert (status, output) == (
        2,
        f"ocml: failed: output_root: {place['output']} is not writable: Read-only file system\n",
    )


def test_celery_run_directly_refuses_the_same_settings(place):
    env = {**worker_env(), "OCML_CONFIG": str(place["x"]), "OCML_PARAMS": "{threshold: 5}"}
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "ocml.worker.app", "worker", "-c", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("ocml: failed:")]
    assert len(lines) == 1 and lines[0].startswith("ocml: failed: params: threshold ")


# --- a worker that cannot see the media --------------------------------------------------------


@pytest.fixture(scope="class")
def blind_fleet(place):
    """Workers ``blind`` (the media folder hidden by an empty tmpfs) and ``seeing``, model X."""
    config = write_settings(
        place["base"] / "blind-fleet.yaml",
        redis_url=REDIS_URL,
        media=place["media"],
        output=place["output"],
        model=model_of(place["x"]),
    )
    flush(REDIS_URL)
    settings = settings_from(config)
    with running_workers(
        config,
        place["base"],
        names=("blind", "seeing"),
        concurrency=1,
        prefixes={"blind": under_tmpfs(place["media"])},
    ):
        yield {"config": config, "settings": settings, "app": make_app(settings)}
    flush(REDIS_URL)


@needs_namespaces
class TestAWorkerWithoutTheMediaMount:
    """A fleet where one worker misses the media mount."""

    def test_jobs_it_cannot_see_run_on_the_worker_that_can(self, blind_fleet, place):
        app, settings = blind_fleet["app"], blind_fleet["settings"]
        paths = [recording(place["media"] / f"seen-{i}.wav", 2.0, seed=i) for i in range(3)]
        ids = [client.submit(app, settings, client.build_job(p)) for p in paths]

        statuses = client.wait(app, ids, timeout=120)

        assert [s["state"] for s in statuses] == ["SUCCESS"] * 3, statuses
        assert [ran_on(app, job_id) for job_id in ids] == [["seeing@test"]] * 3
        refused = [e for job_id in ids for e in history(app, job_id) if e["event"] == "handoff"]
        assert refused, "the blind worker took none of the jobs"
        assert {(e["node"], e["reason"]) for e in refused} == {("blind@test", "input_missing")}
        assert {node for job_id in ids for node in refusers(app, job_id)} == {"blind@test"}

    def test_a_job_whose_input_no_worker_sees_fails_input_missing_once_all_refused(
        self, blind_fleet, place
    ):
        app, settings = blind_fleet["app"], blind_fleet["settings"]
        gone = place["media"] / "nowhere.wav"
        job_id = client.submit(app, settings, client.build_job(gone), duration=2.0)

        (status,) = client.wait(app, [job_id], timeout=120)

        assert status["state"] == "FAILURE"
        assert status["error"] == {"error": "input_missing", "message": f"{gone}: no such file"}
        assert set(refusers(app, job_id)) == {"blind@test", "seeing@test"}
        assert [e["event"] for e in history(app, job_id)] == ["handoff", "start", "end"]
        assert history(app, job_id)[-1]["outcome"] == "failed"

    def test_a_job_for_a_model_no_worker_serves_fails_model_mismatch(self, blind_fleet, place):
        path = recording(place["media"] / "for-y.wav", 2.0, seed=9)
        identity_x, _ = read_model(settings_from(place["x"]))
        identity_y, _ = read_model(settings_from(place["y"]))

        done = ocml("submit", str(path), "--wait", config=place["y"])

        assert done.returncode == 1, done.stderr
        job_id, line = done.stdout.splitlines()
        assert line == (
            "ocml: failed: model_mismatch: the job expects model name tiny, version 0.0.2, "
            f"sha256 {identity_y.sha256}; this worker serves name tiny, version 0.0.1, "
            f"sha256 {identity_x.sha256} (differs in version, sha256)"
        )
        assert set(refusers(blind_fleet["app"], job_id)) == {"blind@test", "seeing@test"}
        assert not (place["output"] / "for-y").exists()


def test_a_running_worker_is_recorded_as_alive_until_it_stops(place):
    flush(REDIS_URL)
    backend = make_app(settings_from(place["x"])).backend.client
    with running_workers(place["x"], place["base"], names=("alive",), concurrency=1):
        seen = backend.zscore(WORKERS_KEY, "alive@test")
        (now, _) = backend.time()
    assert seen is not None and now - 60 <= seen <= now
    assert backend.zscore(WORKERS_KEY, "alive@test") is None


# --- a fleet serving two models ------------------------------------------------------------------


@pytest.fixture(scope="class")
def mixed_fleet(place):
    """Worker ``x`` serves model X, worker ``y`` model Y."""
    flush(REDIS_URL)
    settings = settings_from(place["x"])
    with running_workers(
        place["x"],
        place["base"],
        names=("x", "y"),
        concurrency=1,
        configs={"y": place["y"]},
    ):
        yield {"app": make_app(settings), "settings": settings}
    flush(REDIS_URL)


class TestAFleetServingTwoModels:
    """A fleet where one worker serves another model."""

    def test_each_job_runs_on_the_worker_with_the_model_it_expects(self, mixed_fleet, place):
        app, media, output = mixed_fleet["app"], place["media"], place["output"]
        for_x = [recording(media / f"for-x-{i}.wav", 2.0, seed=i) for i in range(3)]
        for_y = [recording(media / f"for-y-{i}.wav", 2.0, seed=i) for i in range(3)]
        x_digest = directory_sha256(model_of(place["x"]))
        y_digest = directory_sha256(model_of(place["y"]))

        by_x = ocml("submit", *map(str, for_x), "--wait", config=place["x"])
        by_y = ocml("submit", *map(str, for_y), "--wait", config=place["y"])
        by_version = ocml(
            "submit", str(for_x[0]), "-o", str(output / "v2"), "--model-version", "0.0.2",
            "--wait", config=place["x"],
        )  # fmt: skip

        for done in (by_x, by_y, by_version):
            assert done.returncode == 0, done.stdout + done.stderr
        x_ids, y_ids, (v_id,) = (d.stdout.split() for d in (by_x, by_y, by_version))
        assert [ran_on(app, i) for i in x_ids] == [["x@test"]] * 3
        assert [ran_on(app, i) for i in [*y_ids, v_id]] == [["y@test"]] * 4
        assert queued_job(app, x_ids[0])["model"] == {
            "name": "tiny",
            "version": "0.0.1",
            "sha256": x_digest,
        }
        assert queued_job(app, v_id)["model"] == {"name": "tiny", "version": "0.0.2"}
        recorded = [
            json.loads((output / p.stem / f"{p.stem}.json").read_text())["model"]["sha256"]
            for p in (*for_x, *for_y)
        ]
        assert recorded == [x_digest] * 3 + [y_digest] * 3

    def test_a_job_without_a_model_runs_on_either(self, mixed_fleet, place):
        app = mixed_fleet["app"]
        path = recording(place["media"] / "any-model.wav", 2.0, seed=3)

        done = ocml("submit", str(path), "--any-model", "--wait", config=place["x"])

        assert done.returncode == 0, done.stderr
        (job_id,) = done.stdout.split()
        assert "model" not in queued_job(app, job_id)
        assert ran_on(app, job_id) in (["x@test"], ["y@test"])
        assert refusers(app, job_id) == {}

    def test_submit_refuses_what_the_worker_would_with_the_same_message(self, mixed_fleet, place):
        app, media = mixed_fleet["app"], place["media"]
        path = recording(media / "strict.wav", 2.0, seed=4)
        identity_y, _ = read_model(settings_from(place["y"]))
        # Sent straight to the queue, past submit's check: the worker's verdict.
        worker_verdicts = [
            app.send_task(TASK_NAME, args=[job]).id
            for job in (
                {"input": str(path), "params": {"threshold": 5}},
                {
                    "input": str(path),
                    "params": {"threshold": 0.5},
                    "model": identity_y.expectation(),
                },
            )
        ]
        errors = [s["error"] for s in client.wait(app, worker_verdicts, timeout=60)]
        before = queue_length(app), app.backend.client.zcard(runs.PENDING_KEY)

        too_high = ocml("submit", str(path), "--threshold", "5", "--wait", config=place["x"])
        under_y = ocml("submit", str(path), "--threshold", "0.5", "--wait", config=place["y"])
        under_x = ocml("submit", str(path), "--threshold", "0.5", "--wait", config=place["x"])

        assert [e["error"] for e in errors] == ["bad_params", "bad_params"]
        assert "neg_threshold (0.7) must not exceed threshold (0.5)" in errors[1]["message"]
        for done, error in zip((too_high, under_y), errors):
            assert done.returncode == exits.USAGE
            assert done.stdout == f"ocml: failed: bad_params: {error['message']}\n"
        assert (queue_length(app), app.backend.client.zcard(runs.PENDING_KEY)) == before
        assert under_x.returncode == 0, under_x.stdout + under_x.stderr
