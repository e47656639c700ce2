"""Queue throughput: N recordings through a P-process worker vs. segmenting them in one process.

    python benchmarks/throughput.py --model PATH [--count 40] [--minutes 10] [--processes 2]

Reports jobs per hour and aggregate x-real-time of a P-process worker, and the queue's per-job
overhead: the wall time of the same files through a ONE-process worker minus their time in one
``ocml segment``-like process (both write JSON and SMIL), per job and as a share of the processing
time (target: under 5 %). One process against one process, because a pipeline process already
keeps two cores busy (decode, features and inference in three threads). Uses Redis DB 12 at
127.0.0.1:6379 (flushed).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SR = 16000


def make_recording(path: Path, minutes: float, seed: int) -> Path:
    """Speech-rate tone bursts (0.5-3 s on, 0.3-2 s off) over faint noise, 16 kHz mono FLAC."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * SR)
    out = (0.003 * rng.standard_normal(n)).astype(np.float32)
    t = 0
    while t < n:
        length = int(rng.uniform(0.5, 3.0) * SR)
        f0 = rng.uniform(100, 220)
        k = np.arange(min(length, n - t)) / SR
        voice = sum(np.sin(2 * np.pi * f0 * h * k) / h for h in range(1, 8))
        out[t : t + len(k)] += (0.2 * voice * (0.5 - 0.5 * np.cos(2 * np.pi * 4 * k))).astype(
            np.float32
        )
        t += length + int(rng.uniform(0.3, 2.0) * SR)
    sf.write(path, out, SR, format="FLAC")
    return path


def in_process(paths: list[Path], model_path: str | None, out_dir: Path) -> float:
    """Seconds to segment and write every file in this process (what ``ocml segment`` does)."""
    from ocml.pipeline.model import load_model
    from ocml.pipeline.segment import segment_file, tuned_params
    from ocml.pipeline.threads import set_inference_threads
    from ocml.pipeline.writers import write_outputs

    set_inference_threads(1)
    model = load_model(model_path)
    params = tuned_params(model)
    out_dir.mkdir()
    started = time.perf_counter()
    for path in paths:
        write_outputs(segment_file(path, model, params), out_dir, path.stem, ("json", "smil"))
    return time.perf_counter() - started


def through_queue(paths: list[Path], settings_file: Path, processes: int, log: Path) -> float:
    """Wall seconds from the first submit to the last finished job on a fresh worker."""
    from ocml.config.settings import load_settings
    from ocml.worker import client
    from ocml.worker.app import make_app

    settings = load_settings(settings_file, env={})
    app = make_app(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCML_")}
    env["PYTHONPATH"] = str(ROOT)
    code = "import sys; from ocml.cli.queue import worker; worker(sys.argv[1:])"
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                "--config",
                str(settings_file),
                "-c",
                str(processes),
                "-n",
                "bench@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while log.read_text().count("model ready") < processes:
            if proc.poll() is not None:
                raise RuntimeError(log.read_text()[-2000:])
            time.sleep(0.5)
        started = time.perf_counter()
        ids = [client.submit(app, settings, client.build_job(p)) for p in paths]
        statuses = client.wait(app, ids, poll=0.25)
        elapsed = time.perf_counter() - started
        failed = [s for s in statuses if s["state"] != "SUCCESS"]
        if failed:
            raise RuntimeError(f"{len(failed)} jobs failed: {failed[0]}")
        return elapsed
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="SavedModel directory (default: the shipped model)")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds, alternating the ways of running; the fastest of each counts",
    )
    args = parser.parse_args()

    import redis

    redis.Redis.from_url(args.redis).flushdb()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        media, results = base / "media", base / "results"
        media.mkdir()
        results.mkdir()
        paths = [
            make_recording(media / f"rec-{i:03d}.flac", args.minutes, i) for i in range(args.count)
        ]
        settings_file = base / "settings.yaml"
        settings_file.write_text(
            yaml.safe_dump(
                {
                    "broker_url": args.redis,
                    "result_backend": args.redis,
                    "media_roots": [str(media)],
                    "output_root": str(results),
                    "model": args.model or "default",
                    "formats": ["json", "smil"],
                }
            )
        )
        local = single = fleet = float("inf")
        for round_ in range(args.repeat):
            local = min(local, in_process(paths, args.model, base / f"local-{round_}"))
            single = min(single, through_queue(paths, settings_file, 1, base / "worker-1.log"))
            fleet = min(
                fleet, through_queue(paths, settings_file, args.processes, base / "worker-n.log")
            )
    audio = args.count * args.minutes * 60
    overhead = single - local
    print(f"{args.count} recordings x {args.minutes:g} min, fastest of {args.repeat} rounds")
    print(f"one process, no queue : {local:8.1f} s  ({audio / local:7.1f}x real time)")
    print(f"queue, 1 process      : {single:8.1f} s  ({audio / single:7.1f}x real time)")
    print(
        f"queue, {args.processes} processes    : {fleet:8.1f} s  ({audio / fleet:7.1f}x real time "
        f"aggregate, {args.count / fleet * 3600:8.0f} jobs/hour)"
    )
    print(
        f"queue overhead        : {overhead / args.count:8.3f} s per job "
        f"({100 * overhead / local:5.1f} % of processing time)"
    )


if __name__ == "__main__":
    main()
