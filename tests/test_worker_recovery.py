"""Recovery against a Redis of our own (port 6397 or ``OCML_TEST_OWN_REDIS_PORT``, AOF on): a
Redis restart, a dead worker host, a job that runs longer than the visibility timeout on a
live one, and a worker paused past its lease that resumes after another finished its job.

This module starts and restarts its own ``redis-server`` so the machine's Redis is never touched.
Its workers run a deliberately slow model (an untrained wide convolution, ~45x real time on one
thread), so that jobs last seconds, not milliseconds, and outlive the 3 s visibility timeout.
They have two pool processes each, so a worker running a job still waits on the queue: cutting
its broker connection then makes kombu restore the running job's message, as in production.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis

from ocml.worker import client, runs
from ocml.worker.tasks import DELIVERY_KEY
from tests.worker_bootstrap import STALL_MARKER
from tests.worker_support import (
    TEST_OWN_REDIS_PORT,
    OwnRedis,
    fleet_place,
    progress_status,
    recording,
    running_workers,
)

pytestmark = pytest.mark.fleet

PORT = TEST_OWN_REDIS_PORT
VISIBILITY = 3.0
REDIS_URL = f"redis://127.0.0.1:{PORT}/0"


@pytest.fixture(scope="module")
def slow_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SavedModel that is slow on purpose: Conv1D 64 → 1024 → 1024 → 1 channels, kernel 9."""
    import keras

    from ocml.models.export import export_savedmodel
    from ocml.pipeline.features import FeatureConfig
    from ocml.pipeline.threads import set_inference_threads

    set_inference_threads(1)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 64))
    x = keras.layers.Conv1D(1024, 9, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv1D(1024, 9, padding="same", activation="relu")(x)
    x = keras.layers.Conv1D(1, 9, padding="same", activation="sigmoid")(x)
    model = keras.Model(inputs, keras.layers.Reshape((-1,))(x), name="slow_conv")
    return export_savedmodel(
        model,
        tmp_path_factory.mktemp("models") / "slow",
        name="slow",
        version="0.0.1",
        architecture="slow_conv",
        features=FeatureConfig(),
        context_frames=12,
    )


@pytest.fixture(scope="module")
def recovery(tmp_path_factory: pytest.TempPathFactory, slow_model_dir: Path):
    base = tmp_path_factory.mktemp("recovery")
    server = OwnRedis(base, PORT)
    server.start()
    place = fleet_place(
        base,
        redis_url=REDIS_URL,
        model=slow_model_dir,
        time_limit_max=300.0,
        time_limit_grace=3.0,
        visibility_timeout=VISIBILITY,
        lease_interval=0.5,
    )
    try:
        with running_workers(place["config"], base, names=("r1", "r2"), concurrency=2) as workers:
            yield {**place, "server": server, "workers": workers}
    finally:
        server.stop()


def test_jobs_queued_across_a_redis_restart_all_complete(recovery):
    app, settings, media = recovery["app"], recovery["settings"], recovery["media"]
    paths = [recording(media / f"queued-{i}.wav", 20.0 if i < 2 else 3.0, seed=i) for i in range(8)]
    ids = [client.submit(app, settings, client.build_job(p)) for p in paths]

    recovery["server"].stop()
    time.sleep(1.0)
    recovery["server"].start()
    statuses = client.wait(app, ids, timeout=120)

    assert [s["state"] for s in statuses] == ["SUCCESS"] * len(ids)
    for path in paths:
        assert (recovery["output"] / path.stem / f"{path.stem}.json").is_file()


def test_a_job_running_longer_than_the_visibility_timeout_is_delivered_once(recovery):
    app, settings, media = recovery["app"], recovery["settings"], recovery["media"]
    path = recording(media / "long-job.wav", 800.0, seed=5)
    started = time.monotonic()
    job_id = client.submit(app, settings, client.build_job(path))
    (final,) = client.wait(app, [job_id], timeout=120)
    elapsed = time.monotonic() - started

    assert final["state"] == "SUCCESS", final
    assert elapsed > 2 * VISIBILITY, f"the job took {elapsed:.1f} s: too short to show the lease"
    assert int(app.backend.client.get(DELIVERY_KEY.format(id=job_id, retry=0))) == 1


def test_job_of_a_dead_worker_host_is_redelivered_to_the_other(recovery):
    app, settings, media, output = (recovery[k] for k in ("app", "settings", "media", "output"))
    path = recording(media / "host-crash.wav", 300.0, seed=9)
    job_id = client.submit(app, settings, client.build_job(path))
    status = progress_status(app, job_id)
    victim = next(w for w in recovery["workers"] if status["progress"]["pid"] in w.child_pids())

    victim.kill()
    killed = time.monotonic()
    (final,) = client.wait(app, [job_id], timeout=90)
    recovered = time.monotonic() - killed

    assert final["state"] == "SUCCESS", final
    # Redelivered after the lease expired, not after the longest allowed job's time limit.
    assert recovered < settings.time_limit_max, f"took {recovered:.1f} s after the kill"
    assert int(app.backend.client.get(DELIVERY_KEY.format(id=job_id, retry=0))) == 2
    assert sorted(p.name for p in (output / "host-crash").iterdir()) == [
        "host-crash.json",
        "host-crash.smil",
    ]


def _restored_in_logs(workers) -> int:
    return sum(w.log.read_text().count("unacknowledged message(s)") for w in workers)


def test_a_cut_broker_connection_does_not_start_a_running_job_again(recovery):
    app, settings, media = recovery["app"], recovery["settings"], recovery["media"]
    path = recording(media / "blip.wav", 800.0, seed=11)
    job_id = client.submit(app, settings, client.build_job(path))
    progress_status(app, job_id)
    restored_before = _restored_in_logs(recovery["workers"])
    killer = redis.Redis(port=PORT)
    for _ in range(3):
        killer.execute_command("CLIENT", "KILL", "TYPE", "normal")
        progress_status(app, job_id)

    (final,) = client.wait(app, [job_id], timeout=120)

    assert final["state"] == "SUCCESS", final
    # kombu did put the running job's message back on the queue ...
    assert _restored_in_logs(recovery["workers"]) > restored_before
    # ... and yet the job ran once, and the restored copies did not count as deliveries.
    history = runs.events(app.backend.client, job_id)
    assert [e["event"] for e in history] == ["start", "end"]
    assert history[1]["outcome"] == "succeeded"
    assert int(app.backend.client.get(DELIVERY_KEY.format(id=job_id, retry=0))) == 1


def test_an_output_directory_swapped_for_a_symlink_mid_job_gets_nothing(recovery, tmp_path):
    app, settings, media, output = (recovery[k] for k in ("app", "settings", "media", "output"))
    path = recording(media / "swapped.wav", 300.0, seed=12)
    target = output / "swapped"
    job_id = client.submit(app, settings, client.build_job(path, output_dir=target))
    progress_status(app, job_id)
    target.rename(output / "swapped-away")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target.symlink_to(elsewhere, target_is_directory=True)

    (final,) = client.wait(app, [job_id], timeout=120)

    assert final["state"] == "FAILURE"
    assert final["error"]["error"] == "path_changed"
    assert str(target) in final["error"]["message"]
    assert list(elsewhere.iterdir()) == []
    assert list((output / "swapped-away").iterdir()) == []


def _stopped(worker) -> bool:
    if worker.proc.poll() is not None:
        return False
    with open(f"/proc/{worker.proc.pid}/stat", encoding="ascii") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0] == "T"


def test_a_run_resumed_after_another_finished_its_job_writes_nothing(recovery):
    app, settings, media, output = (recovery[k] for k in ("app", "settings", "media", "output"))
    path = recording(media / f"{STALL_MARKER}-paused.wav", 60.0, seed=13)
    Path(f"{path}.stall").touch()
    folder = output / path.stem
    # A worker of its own, so that two run whatever the tests before this one killed.
    with running_workers(recovery["config"], recovery["base"], names=("r3",), concurrency=1) as (
        extra,
    ):
        fleet = [*recovery["workers"], extra]
        job_id = client.submit(app, settings, client.build_job(path))
        deadline = time.monotonic() + 120
        while not (paused := [w for w in fleet if _stopped(w)]):
            assert time.monotonic() < deadline, client.job_status(app, job_id)
            time.sleep(0.1)
        (victim,) = paused
        try:
            # The paused worker's lease and run lock expire; another worker runs the job.
            (final,) = client.wait(app, [job_id], timeout=120)
            assert final["state"] == "SUCCESS", final
            written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
        finally:
            os.killpg(victim.proc.pid, signal.SIGCONT)
        history = runs.events(app.backend.client, job_id)
        while [e.get("outcome") for e in history if e["event"] == "end"] != [
            "succeeded",
            "superseded",
        ]:
            assert time.monotonic() < deadline, history
            time.sleep(0.2)
            history = runs.events(app.backend.client, job_id)

    succeeded = next(e for e in history if e.get("outcome") == "succeeded")
    superseded = next(e for e in history if e.get("outcome") == "superseded")
    assert runs.split_token(superseded["run"])[0] == victim.name
    assert succeeded["run"] != superseded["run"]
    # The resumed run reached its write after the outcome was recorded, and wrote nothing.
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written
    assert sorted(written) == [f"{path.stem}.json", f"{path.stem}.smil"]
    assert max(written.values()) <= succeeded["at"] * 1e9
    assert "is recorded by another run; this run stops" in victim.log.read_text()
    assert client.job_status(app, job_id)["result"] == final["result"]
