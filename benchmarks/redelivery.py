"""How long a dead worker host's job waits before another worker runs it again.

Two one-process workers on one Redis (DB 10 at 127.0.0.1:6379, flushed); one job on a long
recording; as soon as it reports progress, the worker holding it is SIGKILLed with its pool
process (a host crash), and the script times how long until the job runs again on the other
worker and until it succeeds. The lease settings default to config/default.yaml's.

    python benchmarks/redelivery.py [--visibility S] [--lease S] [--restore S] [--minutes 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ocml.config.settings import load_settings  # noqa: E402
from ocml.worker import client  # noqa: E402
from tests.worker_support import (  # noqa: E402
    fleet_place,
    flush,
    progress_status,
    recording,
    running_workers,
)

REDIS_URL = "redis://127.0.0.1:6379/10"


def main() -> None:
    defaults = load_settings(env={})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visibility", type=float, default=defaults.visibility_timeout)
    parser.add_argument("--lease", type=float, default=defaults.lease_interval)
    parser.add_argument("--restore", type=float, default=defaults.unacked_restore_interval)
    parser.add_argument("--minutes", type=float, default=60.0, help="recording length")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()

    flush(REDIS_URL)
    with tempfile.TemporaryDirectory() as tmp:
        place = fleet_place(
            Path(tmp),
            redis_url=REDIS_URL,
            model=args.model,
            visibility_timeout=args.visibility,
            lease_interval=args.lease,
            unacked_restore_interval=args.restore,
            time_limit_max=3600.0,
        )
        base, config, media = place["base"], place["config"], place["media"]
        app, settings = place["app"], place["settings"]
        path = recording(media / "host-crash.wav", args.minutes * 60)
        with running_workers(config, base, names=("a", "b"), concurrency=1) as workers:
            job_id = client.submit(app, settings, client.build_job(path))
            pid = progress_status(app, job_id, timeout=120)["progress"]["pid"]
            victim = next(w for w in workers if pid in w.child_pids())
            victim.kill()
            killed = time.monotonic()
            progress_status(app, job_id, timeout=args.visibility * 3 + 600, other_than_pid=pid)
            again = time.monotonic() - killed
            (final,) = client.wait(app, [job_id], timeout=3600)
            done = time.monotonic() - killed
    flush(REDIS_URL)
    print(
        f"visibility_timeout {args.visibility:g} s, lease_interval {args.lease:g} s, "
        f"unacked_restore_interval {args.restore:g} s, {args.minutes:g}-min recording"
    )
    print(f"running again {again:.1f} s after the host died; {final['state']} {done:.1f} s after")


if __name__ == "__main__":
    main()
