"""``ocml watch``, the hot folder: real watcher processes, a real worker, and a Redis of our own
without persistence (port 6397 or ``OCML_TEST_OWN_REDIS_PORT``) that a test restarts to make it
lose everything, as a Redis restart without persistence does. The machine's Redis is not used.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from ocml.worker import client
from ocml.worker.app import make_app
from ocml.worker.watch import RECORD_KEY, Watcher, open_for_writing
from tests.media import encode, speechlike
from tests.worker_support import (
    SR,
    TEST_OWN_REDIS_PORT,
    OwnRedis,
    WatchProcess,
    fleet_place,
    ocml,
    recording,
    running_workers,
    settings_from,
    write_settings,
)

pytestmark = pytest.mark.fleet

PORT = TEST_OWN_REDIS_PORT
REDIS_URL = f"redis://127.0.0.1:{PORT}/0"


@pytest.fixture(scope="module")
def hot(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    """A worker on a private Redis without persistence; settings, media and results folders."""
    base = tmp_path_factory.mktemp("hot")
    server = OwnRedis(base, PORT, persist=False)
    server.start()
    place = fleet_place(base, redis_url=REDIS_URL, model=tiny_model_dir)
    try:
        with running_workers(place["config"], base, names=("h1",), concurrency=1):
            yield {**place, "server": server, "model": tiny_model_dir}
    finally:
        server.stop()


def folders(hot, name: str) -> tuple[Path, Path]:
    """A fresh inbox below the media root and the results folder its watcher writes into."""
    inbox = hot["media"] / name
    inbox.mkdir()
    return inbox, hot["output"] / name


def lecture_mp3(path: Path, seconds: float, *, seed: int) -> bytes:
    """The bytes of a speech-like MP3 (LAME, with its Info header) of ``seconds`` s."""
    bursts = [(t + 0.5, t + 3.5) for t in np.arange(0.0, seconds - 4.0, 5.0)]
    encode(path, speechlike(SR, seconds, bursts, seed=seed), SR, codec="mp3")
    data = path.read_bytes()
    path.unlink()
    return data


def kinds(lines: list[str]) -> list[str]:
    """The event of each watcher line: ``<job id> <event> <path>...``."""
    return [line.split()[1] for line in lines]


def result_of(results: Path, stem: str) -> dict:
    return json.loads((results / stem / f"{stem}.json").read_text())


def write_in_parts(path: Path, data: bytes, *, parts: int, pause: float) -> None:
    """Appends ``data`` to ``path`` in ``parts`` pieces, the file closed between them, as a
    copy that stalls now and then."""
    step = -(-len(data) // parts)
    for start in range(0, len(data), step):
        if start:
            time.sleep(pause)
        with open(path, "ab") as f:
            f.write(data[start : start + step])


def test_a_file_written_in_three_parts_gives_one_job_with_the_full_duration(hot, tmp_path):
    inbox, results = folders(hot, "parts")
    data = lecture_mp3(tmp_path / "x.mp3", 30.0, seed=1)
    watcher = WatchProcess(
        str(inbox), "-o", str(results), "--settle", "4", "--interval", "0.3", config=hot["config"]
    )
    try:
        write_in_parts(inbox / "lecture.mp3", data, parts=3, pause=1.0)
        watcher.wait_for(lambda line: " submitted " not in line)
        time.sleep(5)  # a second job would be submitted within the settle time
    finally:
        lines = watcher.stop()

    assert kinds(lines) == ["submitted", "done"], lines
    assert sorted(p.name for p in (results / "lecture").iterdir()) == [
        "lecture.json",
        "lecture.smil",
    ]
    source = result_of(results, "lecture")["input"]
    assert abs(source["duration"] - 30.0) < 0.05
    assert source["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_file_open_for_writing_is_not_submitted_until_it_is_closed(hot, tmp_path):
    """The writer pauses longer than the settle time with the file open: still not ready."""
    inbox, results = folders(hot, "open")
    data = lecture_mp3(tmp_path / "x.mp3", 20.0, seed=2)
    watcher = WatchProcess(
        str(inbox), "-o", str(results), "--settle", "1", "--interval", "0.2", config=hot["config"]
    )
    try:
        with open(inbox / "slow.mp3", "wb") as f:
            f.write(data[: len(data) // 3])
            f.flush()
            time.sleep(4)
            f.write(data[len(data) // 3 :])
        watcher.wait_for(lambda line: " submitted " not in line)
    finally:
        lines = watcher.stop()

    assert kinds(lines) == ["submitted", "done"], lines
    assert abs(result_of(results, "slow")["input"]["duration"] - 20.0) < 0.05


def test_a_stalled_upload_fails_truncated_and_its_completed_file_is_done(hot, tmp_path):
    """A copy that closes the file and stalls past the settle time is submitted cut off; the
    MP3's header shows it (input_truncated, nothing written), and the completed file is
    submitted again as a changed file."""
    inbox, results = folders(hot, "stalled")
    data = lecture_mp3(tmp_path / "x.mp3", 20.0, seed=3)
    watcher = WatchProcess(
        str(inbox), "-o", str(results), "--settle", "1", "--interval", "0.2", config=hot["config"]
    )
    try:
        (inbox / "stalled.mp3").write_bytes(data[: len(data) // 2])
        failed = watcher.wait_for(lambda line: " submitted " not in line)
        assert not (results / "stalled").exists()
        with open(inbox / "stalled.mp3", "ab") as f:
            f.write(data[len(data) // 2 :])
        watcher.wait_for(lambda line: " done " in line)
    finally:
        lines = watcher.stop()

    assert kinds(lines) == ["submitted", "failed", "submitted", "done"], lines
    assert ": input_truncated: " in failed
    assert abs(result_of(results, "stalled")["input"]["duration"] - 20.0) < 0.05


def test_a_replaced_file_gets_a_new_result_and_never_keeps_the_old_one(hot, tmp_path):
    inbox, results = folders(hot, "replaced")
    first = lecture_mp3(tmp_path / "x.mp3", 20.0, seed=4)
    second = lecture_mp3(tmp_path / "x.mp3", 12.0, seed=5)

    def put(data: bytes) -> None:  # as an uploader that renames a finished temporary file
        (inbox / ".talk.mp3.tmp").write_bytes(data)
        (inbox / ".talk.mp3.tmp").rename(inbox / "talk.mp3")

    watcher = WatchProcess(
        str(inbox), "-o", str(results), "--settle", "0.5", "--interval", "0.2", config=hot["config"]
    )
    try:
        put(first)
        watcher.wait_for(lambda line: " done " in line)
        old = result_of(results, "talk")
        put(second[: len(second) // 2])
        cut = watcher.wait_for(lambda line: " failed " in line)
        left_after_failure = sorted(p.name for p in (results / "talk").iterdir())
        put(second)
        watcher.wait_for(lambda line: " done " in line)
    finally:
        lines = watcher.stop()

    assert kinds(lines) == ["submitted", "done", "submitted", "failed", "submitted", "done"]
    assert ": input_truncated: " in cut
    assert left_after_failure == []
    assert sum("its old results were removed" in note for note in watcher.notes) == 1
    new = result_of(results, "talk")
    assert old["input"]["sha256"] == hashlib.sha256(first).hexdigest()
    assert new["input"]["sha256"] == hashlib.sha256(second).hexdigest()
    assert abs(new["input"]["duration"] - 12.0) < 0.05


def test_watch_refuses_folders_outside_its_roots_with_one_line(hot, tmp_path):
    outside = ocml("watch", str(tmp_path), "--once", config=hot["config"])
    inbox, _ = folders(hot, "roots")
    elsewhere = ocml("watch", str(inbox), "-o", str(tmp_path), "--once", config=hot["config"])

    assert outside.returncode == 1 and outside.stdout == ""
    (line,) = outside.stderr.splitlines()
    assert f"INBOX {tmp_path} lies outside media_roots ({hot['media']})" in line
    assert "path_outside_roots" in line
    assert elsewhere.returncode == 1 and elsewhere.stdout == ""
    (line,) = elsewhere.stderr.splitlines()
    assert f"--output-dir {tmp_path} lies outside output_root ({hot['output']})" in line


def test_open_for_writing_sees_a_writer_of_this_host(tmp_path):
    path = tmp_path / "upload.bin"
    path.write_bytes(b"x")
    st = path.stat()
    ident = (st.st_dev, st.st_ino)

    with open(path, "ab"):
        assert open_for_writing({ident}) == {ident}
    with open(path, "rb"):
        assert open_for_writing({ident}) == set()
    assert open_for_writing({ident}) == set()


def test_a_job_redis_forgot_is_reported_lost_and_submitted_again(hot, tmp_path):
    """No worker serves database 1 of the private Redis, so the job stays queued until that
    database is flushed; the watcher's clock is moved past the time a job may go unseen."""
    url = f"redis://127.0.0.1:{PORT}/1"
    config = write_settings(
        tmp_path / "db1.yaml",
        redis_url=url,
        media=hot["media"],
        output=hot["output"],
        model=hot["model"],
    )
    settings = settings_from(config)
    inbox, results = folders(hot, "forgotten")
    recording(inbox / "forgotten.wav", 2.0, seed=13)
    now = [0.0]
    watcher = Watcher(
        make_app(settings),
        settings,
        inbox,
        make_job=lambda path: client.build_job(path, output_dir=results / path.stem),
        settle=0,
        clock=lambda: now[0],
    )
    database = redis.Redis.from_url(url)
    try:
        (submitted,) = watcher.scan()
        database.flushdb()
        unseen = watcher.scan()
        now[0] += watcher.lost_after + 1
        lost, again = watcher.scan()
    finally:
        database.flushdb()
        database.close()

    assert submitted.kind == "submitted" and unseen == []
    assert (lost.kind, lost.job_id, lost.error["error"]) == ("lost", submitted.job_id, "job_lost")
    assert again.kind == "submitted" and again.job_id != submitted.job_id


def test_records_of_deleted_files_expire_and_those_of_present_files_stay(hot, tmp_path):
    inbox, results = folders(hot, "expiry")
    recording(inbox / "kept.wav", 3.0, seed=6)
    recording(inbox / "deleted.wav", 3.0, seed=7)
    short = write_settings(
        tmp_path / "short.yaml",
        redis_url=REDIS_URL,
        media=hot["media"],
        output=hot["output"],
        model=hot["model"],
        result_expires=5,
    )
    records = redis.Redis.from_url(REDIS_URL)
    kept, deleted = (RECORD_KEY.format(path=inbox / n) for n in ("kept.wav", "deleted.wav"))
    watcher = WatchProcess(
        str(inbox), "-o", str(results), "--settle", "0.3", "--interval", "0.2", config=short
    )
    try:
        watcher.wait_for(lambda line: " done " in line)
        watcher.wait_for(lambda line: " done " in line)
        assert 0 < records.ttl(kept) <= 5 and 0 < records.ttl(deleted) <= 5
        (inbox / "deleted.wav").unlink()
        time.sleep(7)
        assert records.exists(deleted) == 0
        assert records.exists(kept) == 1 and 0 < records.ttl(kept) <= 5
    finally:
        watcher.stop()
        records.close()


def test_a_running_watcher_keeps_watching_across_a_redis_restart(hot):
    inbox, results = folders(hot, "restart")
    recording(inbox / "before.wav", 3.0, seed=8)
    watcher = WatchProcess(
        str(inbox), "-o", str(results), "--settle", "0.3", "--interval", "0.2", config=hot["config"]
    )
    try:
        watcher.wait_for(lambda line: " done " in line)
        hot["server"].stop()
        recording(inbox / "after.wav", 3.0, seed=9)
        time.sleep(2)
        hot["server"].start()
        watcher.wait_for(lambda line: " done " in line)
    finally:
        lines = watcher.stop()

    assert kinds(lines) == ["submitted", "done", "submitted", "done"], lines
    assert [Path(line.split()[2]).name for line in lines] == ["before.wav"] * 2 + ["after.wav"] * 2
    assert any(
        note.startswith("cannot reach Redis at redis://127.0.0.1:") for note in watcher.notes
    )
    assert "Redis answers again; watching on" in watcher.notes


def test_after_redis_lost_its_data_nothing_is_submitted_again(hot):
    """Redis restarts without persistence: every record is gone, but the results are there."""
    inbox, results = folders(hot, "amnesia")
    names = [f"lecture-{i}.wav" for i in range(3)]
    for i, name in enumerate(names):
        recording(inbox / name, 3.0, seed=10 + i)
    once = ("watch", str(inbox), "-o", str(results), "--once", "--settle", "0", "--interval", "0.2")
    first = ocml(*once, config=hot["config"])
    ids = [line.split()[0] for line in first.stdout.splitlines() if " submitted " in line]
    statuses = client.wait(hot["app"], ids, timeout=120)
    assert [s["state"] for s in statuses] == ["SUCCESS"] * 3
    written = {p: p.stat().st_mtime_ns for p in results.rglob("*.json")}

    hot["server"].stop()
    hot["server"].start()
    records = redis.Redis.from_url(REDIS_URL)
    keys = [RECORD_KEY.format(path=inbox / name) for name in names]
    assert records.exists(*keys) == 0
    after_restart = ocml(*once, config=hot["config"])
    then = ocml(*once, config=hot["config"])

    assert after_restart.returncode == 0 and after_restart.stdout == ""
    notes = after_restart.stderr.splitlines()
    assert sorted(Path(note.split(":")[0]).name for note in notes) == names
    assert all("its result is already there" in note for note in notes)
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*.json")} == written
    assert all(records.ttl(key) > 0 for key in keys)
    assert then.returncode == 0 and then.stdout == "" and then.stderr == ""
    records.close()
