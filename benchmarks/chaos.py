"""Chaos: many jobs through a small worker fleet while processes, connections and Redis fail.

A private ``redis-server`` (append-only file, fsync always) and ``ocml worker`` main processes
with three pool processes in all (``--pools 2,1``: a worker with two, so it still waits on the
queue while it runs a job and a cut connection makes kombu restore that job's message, and one
with one) and the lease settings of ``config/default.yaml``; ``--jobs`` jobs on lecture-like
FLAC recordings of 1-60 minutes (``benchmarks/media.py``, hard-linked under one name per job,
mostly short ones). While they run, every ``--interval`` seconds on average one of these happens
at random: a pool process running a job is SIGKILLed; a whole worker (main process and pool) is
SIGKILLed and started again a few seconds later, as a host crash and reboot; every client
connection is cut (``CLIENT KILL TYPE normal``); Redis is SIGKILLed and restarted.

At the end it prints jobs submitted / succeeded / failed / lost, runs per job (from the run
history the workers keep in Redis: the most runs of one job, and how many jobs had two runs
overlapping in time), orphan temporary files in the results and the longest time from a
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
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from benchmarks.media import Recording, ensure  # noqa: E402
from ocml.config.settings import load_settings  # noqa: E402
from ocml.pipeline.writers import TEMP_PREFIX  # noqa: E402
from ocml.worker import client, runs  # noqa: E402
from ocml.worker.app import make_app  # noqa: E402
from tests.worker_support import OwnRedis, WorkerProcess, write_settings  # noqa: E402

MINUTES = (1, 2, 5, 10, 20, 30, 45, 60)
WEIGHTS = (30, 25, 20, 10, 6, 4, 3, 2)
"""Recording lengths and how often each is used: mostly short lectures, a few full hours."""
ACTIONS = ("kill_pool_process", "kill_worker", "kill_connections", "restart_redis")
ACTION_WEIGHTS = (4, 1, 3, 1)


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
            path = self.media / f"job-{n:03d}-{minutes}min.flac"
            os.link(sources[minutes], path)
            made.append((client.build_job(path), minutes * 60.0))
        return made

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


def runs_of(history: list[dict[str, Any]], killed: dict[int, float]) -> list[tuple[float, float]]:
    """(start, end) of each run; a run without an end ends when its process was killed."""
    spans: dict[str, list[float]] = {}
    order = []
    for event in history:
        if event["event"] == "start":
            key = f"{event['run']}@{event['at']}"
            spans[key] = [event["at"], float("inf")]
            order.append((event["run"], key))
        elif event["event"] == "end":
            for run, key in reversed(order):
                if run == event["run"] and spans[key][1] == float("inf"):
                    spans[key][1] = event["at"]
                    break
    out = []
    for run, key in order:
        start, end = spans[key]
        if end == float("inf"):
            end = killed.get(runs.split_token(run)[1], end)
        out.append((start, end))
    return out


def overlapping(spans: list[tuple[float, float]]) -> bool:
    spans = sorted(spans)
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))


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
                worker.stop()
            chaos.server.kill()


def run(chaos: Chaos, started: float) -> None:
    """Starts the fleet, submits the jobs, injects faults until they are done, reports."""
    args = chaos.args
    jobs = chaos.jobs()
    chaos.server.start()
    for n in range(len(args.pools)):
        chaos.start_worker(f"c{n + 1}")
    for worker in chaos.workers.values():
        worker.wait_ready(chaos.settings, timeout=300)
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
        if all(s["state"] in ("SUCCESS", "FAILURE") for s in statuses):
            break
    report(chaos, ids, statuses, time.monotonic() - started)


def report(chaos: Chaos, ids: list[str], statuses: list[dict[str, Any]], elapsed: float) -> None:
    states = Counter(s["state"] for s in statuses)
    per_job = {job_id: runs.events(chaos.redis, job_id) for job_id in ids}
    spans = {job_id: runs_of(history, chaos.killed_pids) for job_id, history in per_job.items()}
    concurrent = [job_id for job_id, s in spans.items() if overlapping(s)]
    orphans = [
        str(path.relative_to(chaos.output))
        for path in chaos.output.rglob("*")
        if path.name.startswith(TEMP_PREFIX)
    ]
    waits = []
    for died, _node, jobs in chaos.host_deaths:
        for job_id in jobs:
            later = [e["at"] for e in per_job[job_id] if e["event"] == "start" and e["at"] > died]
            if later:
                waits.append(min(later) - died)
    rerun = []
    for killed, job_id in chaos.pool_kills:
        later = [e["at"] for e in per_job[job_id] if e["event"] == "start" and e["at"] > killed]
        if later:
            rerun.append(min(later) - killed)
    failures = Counter(s["error"]["error"] for s in statuses if s["state"] == "FAILURE")
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
    counts = Counter(len(x) for x in spans.values())
    print(
        f"runs per job: max {max(counts)}, distribution {dict(sorted(counts.items()))}; "
        f"jobs with two runs overlapping in time: {len(concurrent)} {concurrent[:5]}"
    )
    print(f"orphan temporary files: {len(orphans)} {orphans[:5]}")
    longest = f"{max(waits):.1f} s" if waits else "n/a"
    print(
        f"worker deaths: {len(chaos.host_deaths)}, jobs they held: {len(waits)}; "
        f"longest from death to running again: {longest}"
    )
    slowest = f"{max(rerun):.1f} s" if rerun else "n/a"
    print(
        f"pool processes killed mid-job: {len(rerun)}; longest until the job ran again: {slowest}"
    )
    print(json.dumps({"states": dict(states), "concurrent": len(concurrent)}))


if __name__ == "__main__":
    main()
