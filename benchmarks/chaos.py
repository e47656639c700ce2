"""Chaos: many jobs through a small worker fleet while processes, connections and Redis fail.

A private ``redis-server`` (append-only file, fsync always) and ``ocml worker`` main processes
with three pool processes in all (``--pools 2,1``: a worker with two, so it still waits on the
queue while it runs a job and a cut connection makes kombu restore that job's message, and one
with one) and the lease settings of ``config/default.yaml``; ``--jobs`` jobs on lecture-like
FLAC recordings of 1-60 minutes (``benchmarks/media.py``, hard-linked under one name per job,
mostly short ones; one in five is ``mp-<n>/presenter.flac``, the same name in its own folder,
as every Opencast media package has), submitted without ``-o``, so each lands in the folder its
input's path gives. An ``ocml watch`` runs on an inbox below the media root. While they run,
every ``--interval`` seconds on average one of these happens at random: a pool process running
a job is SIGKILLed; a whole worker (main process and pool) is SIGKILLed and started again a few
seconds later, as a host crash and reboot; a whole worker is paused (SIGSTOP) for longer than
``visibility_timeout``, so another worker runs its job, and resumed (SIGCONT); every client
connection is cut (``CLIENT KILL TYPE normal``); Redis is SIGKILLed and restarted; a message the
fleet cannot use (one of ``tests.worker_support.poison_messages``) is pushed into the queue; an
MP3 is copied into the watched inbox in three parts, the file closed between them, with pauses
shorter or longer than the watcher's settle time (a stalled upload).

At the end it prints jobs submitted / succeeded / failed / lost, runs per job (from the run
history the workers keep in Redis: the most runs of one job, and how many jobs had two runs
overlapping in time), result files written after their job's outcome was recorded, results that
name another input than their job's, orphan temporary files in the results, the poison messages
sent and recorded (``ocml:bad_messages``, and the ``bad_message`` failure of those naming a job),
the stalled uploads (their jobs, and any success on a cut-off file), and the longest time from a
worker's death to its jobs running again. Not part of ``make test``.

    python benchmarks/chaos.py [--jobs 200] [--pools 2,1] [--interval 12] [--port 6411]
        [--model default] [--chaos-minutes 12] [--max-minutes 20]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import soundfile as sf  # noqa: E402

from benchmarks.media import Recording, ensure  # noqa: E402
from ocml.config.settings import load_settings  # noqa: E402
from ocml.pipeline.writers import TEMP_PREFIX  # noqa: E402
from ocml.worker import client, runs  # noqa: E402
from ocml.worker.app import make_app  # noqa: E402
from tests.media import encode  # noqa: E402
from tests.worker_support import (  # noqa: E402
    OwnRedis,
    WatchProcess,
    WorkerProcess,
    poison_messages,
    write_settings,
)

MINUTES = (1, 2, 5, 10, 20, 30, 45, 60)
WEIGHTS = (30, 25, 20, 10, 6, 4, 3, 2)
"""Recording lengths and how often each is used: mostly short lectures, a few full hours."""
SAME_NAME_EVERY = 5
"""Every fifth job's input is ``mp-<n>/presenter.flac``."""
ACTIONS = (
    "kill_pool_process",
    "kill_worker",
    "pause_worker",
    "kill_connections",
    "restart_redis",
    "poison_message",
    "stalled_upload",
)
ACTION_WEIGHTS = (4, 1, 1, 3, 1, 3, 2)
SETTLE = 3.0
"""The watcher's settle time; stalled uploads pause 1 s (less) or 9 s (more) between parts."""


class Chaos:
    """The fleet, the jobs and the record of every fault injected."""

    def __init__(self, args: argparse.Namespace, base: Path) -> None:
        self.args = args
        self.base = base
        self.rng = random.Random(args.seed)
        self.media, self.output = base / "media", base / "results"
        self.media.mkdir()
        self.output.mkdir()
        self.server = OwnRedis(base, args.port)
        url = self.server.url
        defaults = load_settings(env={})
        self.config = write_settings(
            base / "settings.yaml",
            redis_url=url,
            media=self.media,
            output=self.output,
            model=args.model,
            visibility_timeout=defaults.visibility_timeout,
            lease_interval=defaults.lease_interval,
            unacked_restore_interval=defaults.unacked_restore_interval,
            max_deliveries=defaults.max_deliveries,
            time_limit_base=defaults.time_limit_base,
            time_limit_per_audio_second=defaults.time_limit_per_audio_second,
            time_limit_max=defaults.time_limit_max,
            time_limit_grace=defaults.time_limit_grace,
            progress_interval=defaults.progress_interval,
        )
        self.settings = load_settings(self.config, env={})
        self.app = make_app(self.settings)
        self.redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self.workers: dict[str, WorkerProcess] = {}
        self.killed_pids: dict[int, float] = {}
        self.host_deaths: list[tuple[float, str, list[str]]] = []
        self.pool_kills: list[tuple[float, str]] = []
        self.pauses: list[tuple[float, str, float]] = []
        self.poisons: list[tuple[str, str | None]] = []
        self.inbox = self.media / "inbox"
        self.inbox.mkdir()
        self.uploads: list[tuple[Path, float]] = []
        self.upload_data = b""
        self.full_upload = 0.0
        self.watcher: WatchProcess | None = None
        self.threads: list[threading.Thread] = []
        self.counts: Counter[str] = Counter()

    def start_worker(self, name: str) -> None:
        pools = self.args.pools[int(name[1:]) - 1]
        self.workers[name] = WorkerProcess(
            self.config, name=name, concurrency=pools, log=self.base / f"{name}.log"
        )

    def jobs(self) -> list[tuple[dict[str, Any], float]]:
        """One hard link per job to a cached recording, and the job for it."""
        sources = {m: ensure(Recording(m, 16000, 1, "flac", seed=m)) for m in MINUTES}
        made = []
        for n in range(self.args.jobs):
            minutes = self.rng.choices(MINUTES, WEIGHTS)[0]
            if n % SAME_NAME_EVERY == 0:
                (self.media / f"mp-{n:03d}").mkdir()
                path = self.media / f"mp-{n:03d}" / "presenter.flac"
            else:
                path = self.media / f"job-{n:03d}-{minutes}min.flac"
            os.link(sources[minutes], path)
            made.append((client.build_job(path), minutes * 60.0))
        return made

    def prepare_upload(self) -> None:
        """The MP3 that stalled uploads copy: a lecture minute, LAME-encoded with its Info header
        (which tells a cut-off copy)."""
        source = ensure(Recording(1, 16000, 1, "flac", seed=1))
        samples, rate = sf.read(source, dtype="float32")
        mp3 = encode(self.base / "upload.mp3", samples, rate, codec="mp3")
        self.upload_data = mp3.read_bytes()
        self.full_upload = len(samples) / rate
        mp3.unlink()

    def start_watcher(self) -> None:
        self.watcher = WatchProcess(
            str(self.inbox), "--settle", str(SETTLE), "--interval", "0.5", config=self.config
        )

    def in_background(self, action: Any) -> None:
        thread = threading.Thread(target=action)
        thread.start()
        self.threads.append(thread)

    def pause(self, worker: WorkerProcess, seconds: float) -> None:
        """SIGSTOP to the worker's process group, SIGCONT ``seconds`` later (if it still runs)."""
        os.killpg(worker.proc.pid, signal.SIGSTOP)

        def resume() -> None:
            time.sleep(seconds)
            try:
                os.killpg(worker.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

        self.in_background(resume)

    def upload(self, path: Path, pause: float) -> None:
        """Copies the MP3 to ``path`` in three parts, the file closed between them."""

        def copy() -> None:
            data = self.upload_data
            step = -(-len(data) // 3)
            for start in range(0, len(data), step):
                if start:
                    time.sleep(pause)
                with open(path, "ab") as handle:
                    handle.write(data[start : start + step])

        self.in_background(copy)

    def holders(self) -> dict[str, str]:
        """Job id → run lock token, for every job running now."""
        found = {}
        for key in self.redis.scan_iter(match=runs.RUN_KEY.format(id="*"), count=1000):
            token = self.redis.get(key)
            if token:
                found[key.decode().split(":", 2)[2]] = token.decode()
        return found

    def inject(self) -> None:
        """One fault, chosen at random; skipped (and not counted) when it has no target."""
        action = self.rng.choices(ACTIONS, ACTION_WEIGHTS)[0]
        try:
            held = self.holders()
        except redis.RedisError:
            return
        if action == "kill_pool_process" and held:
            job_id, token = self.rng.choice(sorted(held.items()))
            pid = runs.split_token(token)[1]
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            self.killed_pids[pid] = time.time()
            self.pool_kills.append((self.killed_pids[pid], job_id))
        elif action == "kill_worker" and held:
            node, _ = runs.split_token(self.rng.choice(sorted(held.values())))
            name = node.split("@")[0]
            worker = self.workers[name]
            now = time.time()
            for pid in worker.child_pids():
                self.killed_pids[pid] = now
            worker.kill()
            worker.stop()
            jobs = [job for job, token in held.items() if runs.split_token(token)[0] == node]
            self.host_deaths.append((now, node, jobs))
            time.sleep(self.rng.uniform(2.0, 6.0))
            self.start_worker(name)
        elif action == "pause_worker" and held:
            node, _ = runs.split_token(self.rng.choice(sorted(held.values())))
            worker = self.workers[node.split("@")[0]]
            seconds = self.settings.visibility_timeout + self.rng.uniform(5.0, 20.0)
            if worker.proc.poll() is not None:
                return
            self.pause(worker, seconds)
            self.pauses.append((time.time(), node, seconds))
        elif action == "poison_message":
            made = poison_messages(client.build_job(self.media / "never-there.flac"))
            kind = self.rng.choice(sorted(made))
            job_id, entry = made[kind]
            self.redis.lpush(self.app.conf.task_default_queue, entry)
            self.poisons.append((kind, job_id))
        elif action == "stalled_upload":
            path = self.inbox / f"upload-{len(self.uploads):02d}.mp3"
            pause = self.rng.choice((1.0, 3 * SETTLE))
            self.upload(path, pause)
            self.uploads.append((path, pause))
        elif action == "kill_connections":
            self.redis.execute_command("CLIENT", "KILL", "TYPE", "normal")
        elif action == "restart_redis":
            self.server.kill()
            time.sleep(self.rng.uniform(0.5, 3.0))
            self.server.start()
        else:
            return
        self.counts[action] += 1
        print(f"{time.strftime('%H:%M:%S')} {action}", flush=True)

    def statuses(self, ids: list[str]) -> list[dict[str, Any]] | None:
        try:
            return [client.job_status(self.app, job_id) for job_id in ids]
        except client.UNREACHABLE:
            return None

    def submit_all(self, jobs: list[tuple[dict[str, Any], float]]) -> list[str]:
        ids = []
        for job, duration in jobs:
            while True:
                try:
                    ids.append(client.submit(self.app, self.settings, job, duration=duration))
                    break
                except client.UNREACHABLE:
                    time.sleep(0.5)
        return ids


def runs_of(
    history: list[dict[str, Any]], killed: dict[int, float]
) -> list[tuple[float, float, bool]]:
    """(start, end, superseded) of each run; a run without an end ends when its process was
    killed; superseded: it stopped without writing, another run held the lock or had finished."""
    spans: dict[str, list[Any]] = {}
    order = []
    for event in history:
        if event["event"] == "start":
            key = f"{event['run']}@{event['at']}"
            spans[key] = [event["at"], float("inf"), False]
            order.append((event["run"], key))
        elif event["event"] == "end":
            for run, key in reversed(order):
                if run == event["run"] and spans[key][1] == float("inf"):
                    spans[key][1:] = [event["at"], event.get("outcome") == "superseded"]
                    break
    out = []
    for run, key in order:
        start, end, superseded = spans[key]
        if end == float("inf"):
            end = killed.get(runs.split_token(run)[1], end)
        out.append((start, end, superseded))
    return out


def overlapping(spans: list[tuple[float, float, bool]], *, superseded: bool) -> bool:
    """Whether two runs overlap in time: both ran to a write (``superseded`` False), or one of
    them stopped without writing when it found the other's lock or outcome (True)."""
    ordered = sorted(spans)
    return any(
        b[0] < a[1] and (a[2] or b[2]) == superseded
        for i, a in enumerate(ordered)
        for b in ordered[i + 1 :]
    )


def outcome_time(history: list[dict[str, Any]]) -> float | None:
    """When the job's outcome was recorded: the end of the run that succeeded or failed."""
    ends = [e["at"] for e in history if e.get("outcome") in ("succeeded", "failed")]
    return min(ends) if ends else None


def late_writes(status: dict[str, Any], history: list[dict[str, Any]]) -> list[str]:
    """The result files of a successful job last written after its outcome was recorded."""
    recorded = outcome_time(history)
    if status["state"] != "SUCCESS" or recorded is None:
        return []
    late = []
    for path in status["result"]["outputs"].values():
        try:
            if os.stat(path).st_mtime > recorded + 0.002:
                late.append(path)
        except FileNotFoundError:
            continue
    return late


def names_another_input(status: dict[str, Any], job: dict[str, Any]) -> bool:
    """Whether a successful job's result JSON names another input than its job's."""
    if status["state"] != "SUCCESS":
        return False
    document = json.loads(Path(status["result"]["outputs"]["json"]).read_text())
    return document["input"]["path"] != job["input"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument(
        "--pools",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[2, 1],
        help="pool processes of each worker",
    )
    parser.add_argument("--interval", type=float, default=12.0, help="mean s between faults")
    parser.add_argument("--port", type=int, default=6411)
    parser.add_argument("--model", default="default")
    parser.add_argument("--chaos-minutes", type=float, default=12.0)
    parser.add_argument("--max-minutes", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ocml-chaos-") as tmp:
        chaos = Chaos(args, Path(tmp))
        try:
            run(chaos, started)
        finally:
            for worker in chaos.workers.values():
                if worker.proc.poll() is None:
                    os.killpg(worker.proc.pid, signal.SIGCONT)
                worker.stop()
            if chaos.watcher is not None:
                chaos.watcher.stop()
            for thread in chaos.threads:
                thread.join()
            chaos.server.kill()


def run(chaos: Chaos, started: float) -> None:
    """Starts the fleet and the watcher, submits the jobs, injects faults until they and the
    stalled uploads are done, reports."""
    args = chaos.args
    jobs = chaos.jobs()
    chaos.prepare_upload()
    chaos.server.start()
    for n in range(len(args.pools)):
        chaos.start_worker(f"c{n + 1}")
    for worker in chaos.workers.values():
        worker.wait_ready(chaos.settings, timeout=300)
    chaos.start_watcher()
    print(f"{len(jobs)} jobs, {sum(d for _, d in jobs) / 3600:.1f} h of audio", flush=True)
    ids = chaos.submit_all(jobs)
    chaos_until = time.monotonic() + args.chaos_minutes * 60
    deadline = started + args.max_minutes * 60
    statuses: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        time.sleep(chaos.rng.expovariate(1.0 / args.interval))
        if time.monotonic() < chaos_until:
            chaos.inject()
        current = chaos.statuses(ids)
        if current is None:
            continue
        statuses = current
        done = Counter(s["state"] for s in statuses)
        print(f"{time.strftime('%H:%M:%S')} {dict(done)}", flush=True)
        if all(s["state"] in ("SUCCESS", "FAILURE") for s in statuses) and uploads_ended(chaos):
            break
    report(chaos, jobs, ids, statuses, time.monotonic() - started)


def upload_events(chaos: Chaos) -> dict[Path, list[tuple[str, str, str]]]:
    """The watcher's lines for each stalled upload: (job id, event, the rest of the line)."""
    events: dict[Path, list[tuple[str, str, str]]] = {path: [] for path, _ in chaos.uploads}
    for line in chaos.watcher.drain() if chaos.watcher else []:
        job_id, event, rest = (line.split(" ", 2) + ["", ""])[:3]
        path = Path(rest.split(": ", 1)[0])
        if path in events:
            events[path].append((job_id, event, rest))
    return events


def uploads_ended(chaos: Chaos) -> bool:
    """Whether every stalled upload is written and the job of its last version has ended."""
    if any(thread.is_alive() for thread in chaos.threads):
        return False
    for seen in upload_events(chaos).values():
        if not seen or seen[-1][1] == "submitted":
            return False
        if seen[-1][1] == "failed" and ": input_truncated: " in seen[-1][2]:
            return False
    return True


def report(
    chaos: Chaos,
    jobs: list[tuple[dict[str, Any], float]],
    ids: list[str],
    statuses: list[dict[str, Any]],
    elapsed: float,
) -> None:
    states = Counter(s["state"] for s in statuses)
    per_job = {job_id: runs.events(chaos.redis, job_id) for job_id in ids}
    # The watcher's jobs run through the same faults: their runs count too.
    for seen in upload_events(chaos).values():
        for job_id, event, _ in seen:
            if event == "submitted":
                per_job.setdefault(job_id, runs.events(chaos.redis, job_id))
    spans = {job_id: runs_of(history, chaos.killed_pids) for job_id, history in per_job.items()}
    concurrent = [j for j, s in spans.items() if overlapping(s, superseded=False)]
    stopped = [j for j, s in spans.items() if overlapping(s, superseded=True)]
    orphans = [
        str(path.relative_to(chaos.output))
        for path in chaos.output.rglob("*")
        if path.name.startswith(TEMP_PREFIX)
    ]
    waits = []
    for died, _node, held in chaos.host_deaths:
        for job_id in held:
            later = [
                e["at"] for e in per_job.get(job_id, []) if e["event"] == "start" and e["at"] > died
            ]
            if later:
                waits.append(min(later) - died)
    rerun = []
    for killed, job_id in chaos.pool_kills:
        later = [
            e["at"] for e in per_job.get(job_id, []) if e["event"] == "start" and e["at"] > killed
        ]
        if later:
            rerun.append(min(later) - killed)
    failures = Counter(s["error"]["error"] for s in statuses if s["state"] == "FAILURE")
    late = [p for s in statuses for p in late_writes(s, per_job[s["id"]])]
    mixed = [s["id"] for s, (job, _) in zip(statuses, jobs) if names_another_input(s, job)]
    same_name = [s for n, s in enumerate(statuses) if n % SAME_NAME_EVERY == 0]
    poison = poison_report(chaos)
    uploads = upload_report(chaos)
    late += uploads.pop("late")
    s = chaos.settings
    print(
        f"\nfleet: workers with {chaos.args.pools} pool processes, model {chaos.args.model}, "
        f"visibility_timeout {s.visibility_timeout:g} s, lease_interval {s.lease_interval:g} s, "
        f"unacked_restore_interval {s.unacked_restore_interval:g} s, "
        f"max_deliveries {s.max_deliveries}; {elapsed / 60:.1f} min"
    )
    print(f"faults: {dict(chaos.counts)}")
    print(
        f"jobs submitted {len(ids)}, succeeded {states['SUCCESS']}, failed {states['FAILURE']} "
        f"{dict(failures)}, lost {states['LOST']}, unfinished "
        f"{len(ids) - states['SUCCESS'] - states['FAILURE'] - states['LOST']}"
    )
    counts = Counter(len(spans[job_id]) for job_id in ids)
    print(
        f"runs per job: max {max(counts)}, distribution {dict(sorted(counts.items()))}; "
        f"jobs with two runs overlapping in time that both went on to write: {len(concurrent)} "
        f"{concurrent[:5]}; with a run that stopped without writing on finding the other "
        f"(a paused worker resumed): {len(stopped)} (the watcher's jobs included)"
    )
    print(f"result files written after their job's outcome was recorded: {len(late)} {late[:5]}")
    print(
        f"same-name inputs (mp-<n>/presenter.flac): {len(same_name)}, succeeded "
        f"{sum(x['state'] == 'SUCCESS' for x in same_name)}; results naming another input "
        f"than their job's: {len(mixed)} {mixed[:5]}"
    )
    print(f"orphan temporary files: {len(orphans)} {orphans[:5]}")
    print(
        f"poison messages sent {poison['sent']} ({poison['with_id']} naming a job), recorded "
        f"{poison['recorded']}; naming a job and failed bad_message: {poison['failed']}; "
        f"not recorded: {poison['missing']}; workers paused past their lease: "
        f"{len(chaos.pauses)}"
    )
    print(
        f"stalled uploads: {uploads['uploads']} ({uploads['long']} pausing longer than the "
        f"settle time), jobs {uploads['jobs']}, failed input_truncated "
        f"{uploads['truncated']}, done with the full duration {uploads['complete']}; "
        f"successes on a cut-off file: {uploads['cut_off_successes']}"
    )
    longest = f"{max(waits):.1f} s" if waits else "n/a"
    print(
        f"worker deaths: {len(chaos.host_deaths)}, jobs they held: {len(waits)}; "
        f"longest from death to running again: {longest}"
    )
    slowest = f"{max(rerun):.1f} s" if rerun else "n/a"
    print(
        f"pool processes killed mid-job: {len(rerun)}; longest until the job ran again: {slowest}"
    )
    summary = {
        "states": dict(states),
        "concurrent": len(concurrent),
        "late_writes": len(late),
        "orphans": len(orphans),
        "poison_missing": len(poison["missing"]),
    }
    print(json.dumps(summary))


def poison_report(chaos: Chaos) -> dict[str, Any]:
    """How many poison messages were sent, recorded in ``ocml:bad_messages`` and, for those
    naming a job, failed it with ``bad_message``; the kinds of those not recorded."""
    recorded = runs.bad_messages(chaos.redis)
    named = Counter(e["job_id"] for e in recorded if e["job_id"])
    unnamed = sum(e["job_id"] is None for e in recorded)
    with_id = [(kind, job_id) for kind, job_id in chaos.poisons if job_id]
    failed = 0
    missing = [kind for kind, job_id in with_id if not named[job_id]]
    for _, job_id in with_id:
        status = client.job_status(chaos.app, job_id)
        failed += status["state"] == "FAILURE" and status["error"]["error"] == "bad_message"
    without = [kind for kind, job_id in chaos.poisons if not job_id]
    missing += without[unnamed:]
    return {
        "sent": len(chaos.poisons),
        "with_id": len(with_id),
        "recorded": len(recorded),
        "failed": failed,
        "missing": missing,
    }


def upload_report(chaos: Chaos) -> dict[str, Any]:
    """The stalled uploads' jobs: how many failed as cut off, how many ended with a result of
    the whole file, how many succeeded on a cut-off file (must be none), and late writes."""
    counts: Counter[str] = Counter()
    late: list[str] = []
    for seen in upload_events(chaos).values():
        submitted = [job_id for job_id, event, _ in seen if event == "submitted"]
        counts["jobs"] += len(submitted)
        for job_id in submitted:
            status = client.job_status(chaos.app, job_id)
            if status["state"] == "FAILURE":
                counts["truncated"] += status["error"]["error"] == "input_truncated"
                continue
            if status["state"] != "SUCCESS":
                continue
            late += late_writes(status, runs.events(chaos.redis, job_id))
            if abs(status["result"]["duration"] - chaos.full_upload) < 0.05:
                counts["complete"] += 1
            else:
                counts["cut_off_successes"] += 1
    return {
        "uploads": len(chaos.uploads),
        "long": sum(pause > SETTLE for _, pause in chaos.uploads),
        "jobs": counts["jobs"],
        "truncated": counts["truncated"],
        "complete": counts["complete"],
        "cut_off_successes": counts["cut_off_successes"],
        "late": late,
    }


if __name__ == "__main__":
    main()
