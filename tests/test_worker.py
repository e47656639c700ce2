"""The Celery worker against a real Redis with two real worker processes (no eager mode).

Two ``ocml worker`` main processes with one pool process each serve Redis DB 13 (or
``OCML_TEST_REDIS_DB``), flushed here.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocml.pipeline.result import validate
from ocml.worker import client, runs
from ocml.worker.jobs import TASK_NAME
from ocml.worker.tasks import DELIVERY_KEY, backoff_delay
from tests.media import speechlike, write_wav
from tests.test_opencast_workflows import (
    PLACEHOLDER,
    VARIABLE,
    condition,
    defaults,
    operations,
    sets_properties,
)
from tests.worker_bootstrap import CRASH_MARKER
from tests.worker_support import (
    ROOT,
    TEST_REDIS_URL,
    fleet_place,
    flush,
    ocml,
    poison_messages,
    progress_status,
    recording,
    running_workers,
    worker_env,
)

pytestmark = pytest.mark.fleet

REDIS_URL = TEST_REDIS_URL


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    """(settings path, settings, client app, media dir, output dir) with two workers running."""
    place = fleet_place(tmp_path_factory.mktemp("fleet"), redis_url=REDIS_URL, model=tiny_model_dir)
    flush(REDIS_URL)
    with running_workers(place["config"], place["base"], names=("w1", "w2"), concurrency=1) as w:
        yield {**place, "workers": w}
    flush(REDIS_URL)


def deliveries(app, job_id: str, retry: int = 0) -> int:
    value = app.backend.client.get(DELIVERY_KEY.format(id=job_id, retry=retry))
    return int(value or 0)


def test_twenty_jobs_on_two_processes_each_done_exactly_once(fleet):
    app, settings, media, output = fleet["app"], fleet["settings"], fleet["media"], fleet["output"]
    paths = [recording(media / f"twenty-{i:02d}.wav", 3.0 + i % 3, seed=i) for i in range(20)]
    ids = [client.submit(app, settings, client.build_job(p)) for p in paths]

    statuses = client.wait(app, ids, timeout=120)

    assert [s["state"] for s in statuses] == ["SUCCESS"] * 20
    assert [deliveries(app, job_id) for job_id in ids] == [1] * 20
    for path, status in zip(paths, statuses):
        folder = output / path.stem
        assert sorted(p.name for p in folder.iterdir()) == [
            f"{path.stem}.json",
            f"{path.stem}.smil",
        ]
        document = json.loads((folder / f"{path.stem}.json").read_text())
        validate(document)
        assert document["input"]["path"] == str(path)
        assert status["result"]["outputs"]["json"] == str(folder / f"{path.stem}.json")


def test_same_job_twice_gives_byte_identical_segments(fleet):
    app, settings, media, output = fleet["app"], fleet["settings"], fleet["media"], fleet["output"]
    path = recording(media / "again.wav", 25.0, seed=5)
    outputs = []
    for run in ("first", "second"):
        job = client.build_job(path, output_dir=output / run)
        (status,) = client.wait(app, [client.submit(app, settings, job)], timeout=60)
        assert status["state"] == "SUCCESS"
        document = json.loads(Path(status["result"]["outputs"]["json"]).read_text())
        outputs.append(
            (
                json.dumps(document["segments"]).encode(),
                Path(status["result"]["outputs"]["smil"]).read_bytes(),
            )
        )
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0][0])


def _bad_jobs(media: Path, output: Path, outside: Path) -> dict[str, tuple[object, str]]:
    good = recording(media / "fine.wav", 2.0)
    (media / "escape.wav").symlink_to(outside / "secret.wav")
    (output / "escape-dir").symlink_to(outside, target_is_directory=True)
    (media / "folder.wav").mkdir()
    (media / "garbage.wav").write_bytes(b"RIFF not really a wave file" * 10)
    g = str(good)
    return {
        "malformed json": ('{"input": "' + g + '", ', "bad_job"),
        "not an object": ([g], "bad_job"),
        "no input": ({"formats": ["json"]}, "bad_job"),
        "relative path": ({"input": "media/fine.wav"}, "bad_job"),
        "unknown key": ({"input": g, "colour": "red"}, "unknown_key"),
        "outside roots": ({"input": str(outside / "secret.wav")}, "path_outside_roots"),
        "dot-dot escape": ({"input": f"{media}/../outside/secret.wav"}, "path_outside_roots"),
        "symlink escape": ({"input": str(media / "escape.wav")}, "path_outside_roots"),
        "output outside": ({"input": g, "output_dir": str(outside / "r")}, "path_outside_roots"),
        "output symlink escape": (
            {"input": g, "output_dir": str(output / "escape-dir" / "r")},
            "path_outside_roots",
        ),
        "missing file": ({"input": str(media / "nope.wav")}, "input_missing"),
        "directory": ({"input": str(media / "folder.wav")}, "input_not_a_file"),
        "unsupported format": ({"input": g, "formats": ["mp4"]}, "bad_format"),
        "formats not a list": ({"input": g, "formats": "json"}, "bad_job"),
        "unknown preset": ({"input": g, "preset": "loud"}, "bad_preset"),
        "negative duration": ({"input": g, "params": {"min_silence": -5}}, "bad_params"),
        "threshold above one": ({"input": g, "params": {"threshold": 7}}, "bad_params"),
        "huge duration": ({"input": g, "params": {"min_speech": 1e12}}, "bad_params"),
        "param not a number": ({"input": g, "params": {"pad": "lots"}}, "bad_params"),
        "unknown param": ({"input": g, "params": {"loudness": 1}}, "bad_params"),
        "unknown model": ({"input": g, "model": "enormous"}, "unknown_model"),
        "unreadable media": ({"input": str(media / "garbage.wav")}, "input_unreadable"),
        "300-character name": ({"input": f"{media}/{'n' * 300}.wav"}, "name_too_long"),
        "output name too long": (
            {"input": g, "output_dir": f"{output}/{'d' * 256}"},
            "name_too_long",
        ),
        "integer beyond float": ({"input": g, "params": {"min_silence": 10**400}}, "bad_params"),
        "non-UTF-8 file name": ({"input": f"{media}/lecture-\udcff.wav"}, "bad_file_name"),
    }


def test_every_kind_of_bad_job_fails_at_once_with_its_code(fleet, tmp_path):
    app, media, output = fleet["app"], fleet["media"], fleet["output"]
    outside = media.parent / "outside"
    outside.mkdir()
    recording(outside / "secret.wav", 2.0)
    cases = _bad_jobs(media, output, outside)
    ids = {name: app.send_task(TASK_NAME, args=[job]).id for name, (job, _) in cases.items()}
    good_id = client.submit(app, fleet["settings"], client.build_job(media / "fine.wav"))

    statuses = dict(zip(ids, client.wait(app, list(ids.values()), timeout=60)))
    (good,) = client.wait(app, [good_id], timeout=60)

    assert {name: (s["state"], s["error"]["error"]) for name, s in statuses.items()} == {
        name: ("FAILURE", code) for name, (_, code) in cases.items()
    }
    assert all(s["error"]["message"] for s in statuses.values())
    assert "the limit is 255 bytes" in statuses["300-character name"]["error"]["message"]
    assert max(len(s["error"]["message"]) for s in statuses.values()) < 1000
    assert [deliveries(app, ids[name], retry=1) for name in cases] == [0] * len(cases)
    assert good["state"] == "SUCCESS"
    assert not (outside / "r").exists()


def test_a_failed_job_is_logged_once_at_warning_with_its_code(fleet):
    app, settings, media = fleet["app"], fleet["settings"], fleet["media"]
    path = media / "not-audio.wav"
    path.write_bytes(b"RIFF but no wave data" * 20)
    job_id = client.submit(app, settings, client.build_job(path))

    (status,) = client.wait(app, [job_id], timeout=60)

    assert status["state"] == "FAILURE" and status["error"]["error"] == "input_unreadable"
    logs = "".join(worker.log.read_text() for worker in fleet["workers"])
    lines = [line for line in logs.splitlines() if job_id in line]
    failed = [line for line in lines if f"job {job_id} failed: input_unreadable: " in line]
    assert len(failed) == 1 and "WARNING/" in failed[0] and str(path) in failed[0], lines
    assert not [line for line in lines if "raised expected" in line], lines


def test_a_job_that_kills_its_process_every_time_fails_after_max_deliveries(fleet):
    app, settings, media = fleet["app"], fleet["settings"], fleet["media"]
    path = recording(media / f"{CRASH_MARKER}-lecture.wav", 2.0)
    job_id = client.submit(app, settings, client.build_job(path))

    (status,) = client.wait(app, [job_id], timeout=90)

    assert status["state"] == "FAILURE"
    assert status["error"]["error"] == "too_many_deliveries"
    message = status["error"]["message"]
    assert "started 2 times and no run finished (max_deliveries = 2)" in message
    assert message.count("its worker process died") == 2
    assert deliveries(app, job_id) == settings.max_deliveries + 1
    (after,) = client.wait(
        app,
        [client.submit(app, settings, client.build_job(recording(media / "after-crash.wav", 2.0)))],
        timeout=90,
    )
    assert after["state"] == "SUCCESS"


def test_sigkilled_process_mid_job_is_redelivered_and_completed_once(fleet):
    app, settings, media, output = fleet["app"], fleet["settings"], fleet["media"], fleet["output"]
    path = recording(media / "long-lecture.wav", 600.0, seed=3)
    job_id = client.submit(app, settings, client.build_job(path))
    status = progress_status(app, job_id)
    assert status["progress"]["percent"] < 100
    os.kill(status["progress"]["pid"], signal.SIGKILL)

    (final,) = client.wait(app, [job_id], timeout=120)

    assert final["state"] == "SUCCESS"
    assert deliveries(app, job_id) == 2
    folder = output / path.stem
    assert sorted(p.name for p in folder.iterdir()) == ["long-lecture.json", "long-lecture.smil"]
    document = json.loads((folder / "long-lecture.json").read_text())
    validate(document)
    assert document["input"]["duration"] == pytest.approx(600.0)


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    import random

    rng = random.Random(1)
    delays = [backoff_delay(n, base=2.0, cap=60.0, rng=rng) for n in range(8)]
    for n, delay in enumerate(delays):
        ceiling = min(60.0, 2.0 * 2**n)
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays}) == len(delays)


def test_ocml_submit_wait_end_to_end(fleet, tmp_path):
    media, output, config = fleet["media"], fleet["output"], fleet["config"]
    first = recording(media / "cli-one.wav", 4.0, seed=7)
    second = recording(media / "cli-two.wav", 6.0, seed=8)

    done = ocml(
        "submit",
        str(first),
        str(second),
        "--wait",
        "-o",
        str(output / "cli"),
        "--format",
        "json,smil",
        "--min-silence",
        "3",
        "-p",
        "pad=0.2",
        config=config,
    )

    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert len(ids) == 2
    assert sorted(p.name for p in (output / "cli").iterdir()) == [
        "cli-one.json",
        "cli-one.smil",
        "cli-two.json",
        "cli-two.smil",
    ]
    assert "100.0% SUCCESS" in done.stderr
    params = json.loads((output / "cli" / "cli-one.json").read_text())["params"]
    assert (params["min_silence"], params["pad_before"], params["pad_after"]) == (3.0, 0.2, 0.2)
    shown = ocml("status", *ids, "--json", config=config)
    assert shown.returncode == 0, shown.stderr
    assert [json.loads(line)["state"] for line in shown.stdout.splitlines()] == ["SUCCESS"] * 2

    single = ocml(
        "submit",
        str(first),
        "--wait",
        "--format",
        "smil",
        "--min-silence",
        "3",
        "--pad",
        "0.2",
        "--output",
        str(output / "cut"),
        config=config,
    )
    assert single.returncode == 0, single.stderr
    assert (output / "cut").read_bytes() == (output / "cli" / "cli-one.smil").read_bytes()

    refused = ocml("submit", str(media / "garbage-cli.wav"), "--wait", config=config)
    assert refused.returncode == 1
    assert refused.stdout.startswith("ocml: failed: input_missing: ")
    assert len(refused.stdout.splitlines()) == 1
    (media / "garbage-cli.wav").write_bytes(b"\x00" * 1000)
    failed = ocml("submit", str(media / "garbage-cli.wav"), "--wait", config=config)
    assert failed.returncode == 1
    job_id, line = failed.stdout.splitlines()
    assert line.startswith("ocml: failed: input_unreadable: ")
    assert "garbage-cli.wav" in line and "garbage-cli.wav" in failed.stderr


def test_ocml_submit_passes_preset_no_speech_and_track_to_the_worker(fleet, tmp_path):
    media, output, config = fleet["media"], fleet["output"], fleet["config"]
    talk = recording(media / "oc-talk.wav", 20.0, seed=9)
    src = "https://oc.example/files/mediapackage/mp-9/track-3/presenter.mp4"
    trimmed = ocml(
        "submit",
        str(talk),
        "--wait",
        "--preset",
        "trim",
        "--format",
        "smil",
        "--output",
        str(output / "oc-talk.smil"),
        "-o",
        str(output / "oc"),
        "--track-id",
        "track-3",
        "--track-flavor",
        "presenter/source",
        "--track-src",
        src,
        config=config,
    )
    assert trimmed.returncode == 0, trimmed.stderr
    smil = (output / "oc-talk.smil").read_text()
    assert smil.count("<par ") == 1
    assert f'name="track-src" value="{src}"' in smil and 'value="track-3"' in smil

    quiet = media / "oc-empty-room.wav"
    write_wav(quiet, speechlike(16000, 5.0, [], seed=3), 16000)
    failed = ocml("submit", str(quiet), "--wait", "--no-speech", "fail", config=config)
    assert failed.returncode == 1
    assert "no_speech" in failed.stdout + failed.stderr
    assert not (output / "oc-empty-room").exists() or not any((output / "oc-empty-room").iterdir())
    refused = ocml("submit", str(talk), str(quiet), "--track-id", "x", config=config)
    assert refused.returncode == 2 and "need exactly one input, got 2" in refused.stderr


SMIL_ROUTE = ROOT / "docs" / "opencast" / "ocml-smil.xml"


def execute_service_params(params: str, filled: dict[str, str], *, track: Path) -> str:
    """``params`` with ``#{name}`` from ``filled`` and every ``#{flavor(...)}`` as ``track``."""
    return PLACEHOLDER.sub(lambda m: filled.get(m[1], str(track)), params)


def run_smil_route(
    track: Path, *, event: str, config: Path, output: Path, workspace: Path
) -> tuple[dict[str, str], dict[str, bytes]]:
    """Runs ocml-smil.xml's execute-once operations for an event whose presenter track is
    ``track``, as Opencast does: ``if`` and ``${...}`` from the workflow properties (the defaults,
    analyze-mediapackage's, those read from a set-workflow-properties output), ``#{...}`` as the
    Execute Service fills them in. Returns the properties and the bytes attached per flavor."""
    properties = {**defaults(SMIL_ROUTE), "presenter_source_exists": "true"}
    attached: dict[str, bytes] = {}
    for op, cfg in operations(SMIL_ROUTE):
        truth = {name: value == "true" for name, value in properties.items()}
        if op.get("id") != "execute-once" or not condition(op.get("if"), truth):
            continue
        out = workspace / cfg["output-filename"]
        params = VARIABLE.sub(lambda m: properties[m[1]], cfg["params"])
        params = execute_service_params(params, {"id": event, "out": str(out)}, track=track)
        params = params.replace("/srv/ocml-results", str(output))
        params = params.replace("/etc/opencast-ml/settings.yaml", str(config))
        done = subprocess.run(
            [str(Path(sys.executable).with_name("ocml")), *shlex.split(params)],
            env=worker_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (params, done.stdout, done.stderr)
        if sets_properties(cfg):
            lines = out.read_text(encoding="utf-8").splitlines()
            properties.update(line.split("=", 1) for line in lines)
        else:
            attached[cfg["target-flavor"]] = out.read_bytes()
        out.unlink()
    return properties, attached


def test_ocml_smil_xml_attaches_the_smil_only_when_there_is_speech(fleet, tmp_path):
    app, media, output, config = fleet["app"], fleet["media"], fleet["output"], fleet["config"]
    talk = recording(media / "route-talk.wav", 20.0, seed=4)
    quiet = media / "route-empty-room.wav"
    write_wav(quiet, speechlike(16000, 5.0, [], seed=3), 16000)
    run = dict(config=config, output=output, workspace=tmp_path)

    spoken, cuts = run_smil_route(talk, event="mp-talk", **run)
    silent, nothing = run_smil_route(quiet, event="mp-empty", **run)

    assert spoken["ocml_speech_found"] == "true"
    assert cuts == {"smil/cutting": (output / "mp-talk" / "route-talk.smil").read_bytes()}
    assert b"<par " in cuts["smil/cutting"]
    assert silent["ocml_speech_found"] == "false"
    assert nothing == {}
    whole = (output / "mp-empty" / "route-empty-room.smil").read_text()
    assert whole.count("<par ") == 1, "ocml still writes its SMIL; the workflow leaves it out"
    for properties in (spoken, silent):
        assert client.job_status(app, properties["ocml_job_id"])["state"] == "SUCCESS"

    both = ocml(
        "submit", str(talk), "--wait", "-f", "json,smil", "-o", str(output / "both"), config=config
    )
    job_id = both.stdout.splitlines()[0]
    several = ocml("status", job_id, "--output", str(tmp_path / "one.smil"), config=config)
    assert several.returncode == 2
    assert several.stderr.splitlines()[-1] == (
        f"ocml: failed: several_outputs: job {job_id} wrote 2 result files (json, smil); "
        "--output copies a job's one file: submit it with one --format"
    )
    assert not (tmp_path / "one.smil").exists()


def submissions(stdout: str) -> tuple[list[str], list[str]]:
    """A ``watch --once`` run's ``submitted`` lines, and the ``done`` lines of those of its jobs
    that ended before its second scan (a 2 s job on a warm worker may)."""
    lines = stdout.splitlines()
    submitted = [line for line in lines if line.split()[1] == "submitted"]
    ids = {line.split()[0] for line in submitted}
    ended = [line for line in lines if line not in submitted]
    assert all(line.split()[1] == "done" and line.split()[0] in ids for line in ended), stdout
    return submitted, ended


def test_ocml_watch_submits_each_settled_file_once_across_restarts(fleet, tmp_path):
    media, output, config, app = fleet["media"], fleet["output"], fleet["config"], fleet["app"]
    inbox = media / "inbox"
    inbox.mkdir()
    recording(inbox / "w-one.wav", 2.0, seed=1)
    recording(inbox / "w-two.wav", 2.0, seed=2)
    (inbox / "w-three.wav.part").write_bytes(b"still uploading")
    watch = (
        "watch",
        str(inbox),
        "--once",
        "--settle",
        "0",
        "--interval",
        "0.2",
        "-o",
        str(output / "watched"),
    )

    first = ocml(*watch, config=config)
    again = ocml(*watch, config=config)

    assert first.returncode == 0, first.stderr
    lines, _ = submissions(first.stdout)
    assert [line.split()[1] for line in lines] == ["submitted", "submitted"]
    assert sorted(Path(line.split()[2]).name for line in lines) == ["w-one.wav", "w-two.wav"]
    assert again.returncode == 0 and again.stdout == ""
    statuses = client.wait(app, [line.split()[0] for line in lines], timeout=60)
    assert [s["state"] for s in statuses] == ["SUCCESS", "SUCCESS"]
    assert (output / "watched" / "w-one" / "w-one.json").is_file()


def test_ocml_submit_keeps_the_results_of_inputs_of_the_same_name_apart(fleet):
    media, output, config = fleet["media"], fleet["output"], fleet["config"]
    paths = []
    for seed, package in enumerate(("same-a", "same-b")):
        (media / package).mkdir()
        paths.append(recording(media / package / "lecture.wav", 3.0 + seed, seed=seed))

    done = ocml("submit", *map(str, paths), "--wait", config=config)

    assert done.returncode == 0, done.stderr
    for path in paths:
        folder = output / path.parent.name / "lecture"
        document = json.loads((folder / "lecture.json").read_text())
        assert document["input"]["path"] == str(path)
        assert f"{path}: done: {folder / 'lecture.json'} {folder / 'lecture.smil'}" in done.stderr


def test_ocml_watch_keeps_the_results_of_files_of_the_same_name_apart(fleet):
    media, output, config, app = fleet["media"], fleet["output"], fleet["config"], fleet["app"]
    inboxes = [media / "inbox-a", media / "inbox-b"]
    for seed, inbox in enumerate(inboxes):
        inbox.mkdir()
        recording(inbox / "presenter.wav", 2.0, seed=seed)
    recording(inboxes[0] / "talk.wav", 2.0, seed=3)
    recording(inboxes[0] / "talk.flac", 2.0, seed=4)
    watch = ("--once", "--settle", "0", "--interval", "0.2")

    watched = [ocml("watch", str(inbox), *watch, config=config) for inbox in inboxes]

    for inbox, done in zip(inboxes, watched):
        assert done.returncode == 0, done.stderr
        (line,), _ = submissions(done.stdout)
        job_id, kind, path = line.split()
        assert (kind, path) == ("submitted", str(inbox / "presenter.wav"))
        (status,) = client.wait(app, [job_id], timeout=60)
        assert status["result"]["outputs"]["json"] == str(
            output / inbox.name / "presenter" / "presenter.json"
        )
    assert sorted(watched[0].stderr.splitlines()) == [
        f"{inboxes[0] / name}: not submitted: results_collide: {inboxes[0] / other} is in the "
        f"folder too: their results would share the folder talk/ (the same name without the "
        "suffix); rename one"
        for name, other in (("talk.flac", "talk.wav"), ("talk.wav", "talk.flac"))
    ]


def test_a_message_of_a_job_that_succeeded_is_acknowledged_without_running_it(fleet):
    app, settings, media = fleet["app"], fleet["settings"], fleet["media"]
    job = client.build_job(recording(media / "twice-sent.wav", 3.0, seed=4))
    job_id = client.submit(app, settings, job)
    (first,) = client.wait(app, [job_id], timeout=60)
    assert first["state"] == "SUCCESS"

    app.send_task(TASK_NAME, args=[job], task_id=job_id)
    note = f"job {job_id} has finished (SUCCESS): message acknowledged, not run"
    while not any(note in w.log.read_text() for w in fleet["workers"]):
        assert client.job_status(app, job_id)["state"] == "SUCCESS"
        time.sleep(0.1)

    history = runs.events(app.backend.client, job_id)
    assert [(e["event"], e.get("outcome")) for e in history] == [
        ("start", None),
        ("end", "succeeded"),
    ]
    assert deliveries(app, job_id) == 1
    assert client.job_status(app, job_id)["result"] == first["result"]


def test_names_up_to_the_filesystem_limit_work_and_failed_jobs_leave_no_new_directory(fleet):
    app, settings, media, output = fleet["app"], fleet["settings"], fleet["media"], fleet["output"]
    stem = "s" * 240  # + ".cutmarks.json" = 254 bytes: the longest output name fits
    path = recording(media / f"{stem}.wav", 2.0)
    good = client.build_job(path, formats=["json", "smil", "cutmarks"])
    (media / "broken.wav").write_bytes(b"RIFF not really a wave file" * 10)
    bad = client.build_job(media / "broken.wav", output_dir=output / "new" / "deeper")

    done, failed = client.wait(
        app, [client.submit(app, settings, good), client.submit(app, settings, bad)], timeout=60
    )

    assert done["state"] == "SUCCESS", done
    assert sorted(p.name for p in (output / stem).iterdir()) == [
        f"{stem}.cutmarks.json",
        f"{stem}.json",
        f"{stem}.smil",
    ]
    assert failed["error"]["error"] == "input_unreadable"
    assert not (output / "new").exists()


def test_a_job_whose_message_the_broker_lost_is_sent_again(fleet):
    app, settings, media = fleet["app"], fleet["settings"], fleet["media"]
    job = client.build_job(recording(media / "message-lost.wav", 2.0, seed=6))
    job_id = "lost-in-transit"
    # Recorded as submitted, but its message never reaches the queue: as when a worker's
    # connection is cut between Redis's BRPOP and the reply.
    client.record_job(app, settings, job, job_id=job_id)

    (status,) = client.wait(app, [job_id], timeout=60)

    assert status["state"] == "SUCCESS", status
    note = f"job {job_id}: its message was lost by the broker; sent again"
    assert sum(w.log.read_text().count(note) for w in fleet["workers"]) == 1
    assert deliveries(app, job_id) == 1


def test_messages_the_fleet_cannot_use_are_acknowledged_and_recorded(fleet):
    app, settings, media, config = fleet["app"], fleet["settings"], fleet["media"], fleet["config"]
    job = client.build_job(recording(media / "after-poison.wav", 2.0, seed=21))
    poisons = poison_messages(job)
    broker = app.backend.client
    recorded_before = len(runs.bad_messages(broker))
    for _, entry in poisons.values():
        broker.lpush(app.conf.task_default_queue, entry)
    good_id = client.submit(app, settings, job)

    (good,) = client.wait(app, [good_id], timeout=60)
    with_id = {name: job_id for name, (job_id, _) in poisons.items() if job_id}
    statuses = dict(zip(with_id, client.wait(app, list(with_id.values()), timeout=60)))
    deadline = time.monotonic() + 30
    while len(runs.bad_messages(broker)) < recorded_before + len(poisons):
        assert time.monotonic() < deadline, runs.bad_messages(broker)
        time.sleep(0.2)

    assert good["state"] == "SUCCESS", good
    assert {name: (s["state"], s["error"]["error"]) for name, s in statuses.items()} == {
        name: ("FAILURE", "bad_message") for name in with_id
    }
    recorded = runs.bad_messages(broker)[: len(poisons)]
    assert sorted(e["job_id"] for e in recorded if e["job_id"]) == sorted(with_id.values())
    assert sum(e["job_id"] is None for e in recorded) == len(poisons) - len(with_id)
    assert {e["worker"] for e in recorded} <= {w.name for w in fleet["workers"]}
    assert all(e["reason"] and e["at"] for e in recorded)
    by_id = {e["job_id"]: e for e in recorded}
    assert by_id[with_id["body [1, 2]"]]["reason"] == (
        "its body must be [args, kwargs, embed], got [1, 2]"
    )
    assert "header 'timelimit'" in statuses["timelimit 'x'"]["error"]["message"]
    # Acknowledged, not restored: none is left queued or unacknowledged, no worker died.
    entries = {entry for _, entry in poisons.values()}
    assert not entries & set(map(bytes.decode, broker.lrange(app.conf.task_default_queue, 0, -1)))
    tags = [_delivery_tag(entry) for entry in entries]
    assert not any(broker.hexists("unacked", tag) for tag in tags if tag)
    assert all(w.proc.poll() is None for w in fleet["workers"])
    assert not any("Unrecoverable error" in w.log.read_text() for w in fleet["workers"])

    # A worker started afterwards stays up and serves.
    with running_workers(config, fleet["base"], names=("w3",), concurrency=1) as (late,):
        again = client.build_job(recording(media / "after-poison-2.wav", 2.0, seed=22))
        (status,) = client.wait(app, [client.submit(app, settings, again)], timeout=60)
        assert status["state"] == "SUCCESS", status
        assert late.proc.poll() is None

    shown = ocml("status", "--bad-messages", config=config)
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout.splitlines()) == len(runs.bad_messages(broker))
    timelimit_id = with_id["timelimit 'x'"]
    assert f" {timelimit_id} " in shown.stdout
    as_json = ocml("status", "--bad-messages", "--json", config=config)
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == runs.bad_messages(broker)
    usage = ocml("status", config=config)
    assert usage.returncode == 2
    assert usage.stderr.splitlines()[-1].startswith("ocml: failed: usage: ")


def _delivery_tag(entry: str) -> str | None:
    try:
        return json.loads(entry)["properties"]["delivery_tag"]
    except (ValueError, KeyError, TypeError):
        return None
