"""What Redis knows about a job besides Celery's state: its submission, its runs, its finish.

Kombu restores a worker's unacknowledged messages to the queue when the worker's broker
connection drops, and a dead host's after ``visibility_timeout``; Celery requeues a job whose
pool process died. Any of these can hand a job to a second process, so a process runs a job only
after it took the job's run lock:

- ``ocml:job:{id}``: written by the submitting client before the message is sent (``QUEUED``), so
  a queued job is told apart from one Redis never heard of (``LOST``).
- ``ocml:run:{id}``: the run lock, the token ``<node>|<pid>|<random>`` of the run holding it (one
  per run, so a process that resumes after losing its lock is told apart from a later run in the
  same process), taken atomically, expiring ``visibility_timeout`` seconds after the worker's
  last lease renewal (``worker.lease`` renews it with the message, by the ``<node>|<pid>|``
  prefix it knows), released when the run ends or its process dies.
- ``ocml:runs:{id}``: one JSON event per run start and end, for truthful messages and audits.
- ``ocml:finished:{id}``: the outcome, written before the lock is released, so a message that
  comes back after the job finished is acknowledged without running it again. It is written
  once, and only by the run holding the lock (``finish``); every result write is fenced the same
  way just before its final rename (``fence``), so a run that lost its lock — its host stopped
  past its lease while another run finished the job — never writes after the outcome.
- ``ocml:bad_messages``: the messages the fleet could not use (``worker.messages``), newest
  first, at most ``BAD_MESSAGES_KEPT``.
- ``ocml:pending``: the ids of submitted jobs that have not finished, by submission time. Redis
  hands a message to a worker with BRPOP, and kombu files it among the unacknowledged only when
  the reply arrives: a connection cut, a worker killed or a Redis killed in between loses the
  message. ``sweep`` finds pending jobs whose message is nowhere (not queued, not delivered) and
  that nobody runs, twice in a row, so a worker can send them again from their record.

Every key but the capped ``ocml:bad_messages`` expires after ``result_expires``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from ocml.pipeline.processes import process_exists

JOB_KEY = "ocml:job:{id}"
RUN_KEY = "ocml:run:{id}"
RUNS_KEY = "ocml:runs:{id}"
FINISHED_KEY = "ocml:finished:{id}"
PENDING_KEY = "ocml:pending"
MISSING_KEY = "ocml:pending:missing"
SWEEP_LOCK = "ocml:pending:sweep"
BAD_MESSAGES_KEY = "ocml:bad_messages"
BAD_MESSAGES_KEPT = 1000
"""The newest this many bad messages are kept (``worker.messages``), newest first."""
QUEUED = "QUEUED"

_OWNS = """
local function owns(holder, owner)
  return holder and owner ~= '' and string.sub(holder, 1, string.len(owner)) == owner
end
"""
"""Lua: whether the lock value ``holder`` belongs to ``owner``, a run token or a process prefix."""
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if (not current) or current == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, current or ''}
end
return {0, current, redis.call('PTTL', KEYS[1])}
"""
_RENEW = (
    _OWNS
    + """
if owns(redis.call('GET', KEYS[1]), ARGV[1]) then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
)
_RELEASE = (
    _OWNS
    + """
if owns(redis.call('GET', KEYS[1]), ARGV[1]) then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
)
_FENCE = (
    _OWNS
    + """
local done = redis.call('GET', KEYS[2])
local holder = redis.call('GET', KEYS[1])
if done then
  return {0, holder or '', done}
end
if holder and not owns(holder, ARGV[1]) then
  return {0, holder, ''}
end
if ARGV[2] ~= '0' then
  if holder then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  end
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
  redis.call('ZREM', KEYS[3], ARGV[5])
end
return {1, holder or '', ''}
"""
)
"""KEYS: run lock, finished, pending; ARGV: owner, lock ttl ms (0: leave the lock), outcome JSON
('': none), its expiry s, job id. Passes when no outcome is recorded and the lock is the owner's
or free (then taken, when a ttl is given: Redis lost it, and no other run has started)."""

T = TypeVar("T")


def run_token(node: str, pid: int) -> str:
    """A new run's lock token: ``<node>|<pid>|<random>`` for pool process ``pid`` of ``node``."""
    return f"{process_prefix(node, pid)}{secrets.token_hex(8)}"


def process_prefix(node: str, pid: int) -> str:
    """What every run token of pool process ``pid`` of worker ``node`` starts with: the owner
    its worker's main process names when it renews or frees that process's lock."""
    return f"{node}|{pid}|"


def split_token(token: str) -> tuple[str, int]:
    """(node, pid) of a run token; pid 0 when it names none."""
    node, _, rest = token.rpartition("|")
    node, _, pid = node.rpartition("|")
    return node, int(pid) if pid.isdigit() else 0


@dataclass(frozen=True)
class Claim:
    """The outcome of ``acquire``: taken or not, and who held the lock before (or holds it)."""

    taken: bool
    holder: str | None
    holder_ttl: float


def acquire(
    client: redis.Redis, job_id: str, token: str, *, ttl: float, replace: str | None = None
) -> Claim:
    """Takes the run lock of ``job_id`` if it is free or held by ``replace`` (a dead process)."""
    key = RUN_KEY.format(id=job_id)
    reply = client.eval(_ACQUIRE, 1, key, token, int(ttl * 1000), replace or "")
    holder = _text(reply[1]) or None
    if int(reply[0]) == 1:
        return Claim(True, holder, 0.0)
    return Claim(False, holder, max(0.0, int(reply[2]) / 1000))


def renew(client: redis.Redis, held: Iterable[tuple[str, str]], *, ttl: float) -> int:
    """Extends the locks ``(job id, owner)`` still held by their owner (a run token or a
    ``process_prefix``); returns how many."""
    pipe = client.pipeline(transaction=False)
    count = 0
    for job_id, token in held:
        pipe.eval(_RENEW, 1, RUN_KEY.format(id=job_id), token, int(ttl * 1000))
        count += 1
    return sum(int(r) for r in pipe.execute()) if count else 0


def release(client: redis.Redis, job_id: str, owner: str) -> bool:
    """Frees the lock if ``owner`` (a run token or a ``process_prefix``) still holds it (never
    someone else's)."""
    return bool(client.eval(_RELEASE, 1, RUN_KEY.format(id=job_id), owner))


def holder(client: redis.Redis, job_id: str) -> str | None:
    return _text(client.get(RUN_KEY.format(id=job_id))) or None


def local_process_gone(token: str, node: str) -> bool:
    """True if ``token`` names a process of worker ``node`` (this host) that no longer runs."""
    holder_node, pid = split_token(token)
    if holder_node != node or pid <= 0:
        return False
    if not process_exists(pid):
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def add_event(client: redis.Redis, job_id: str, event: dict[str, Any], *, expires: int) -> None:
    """Appends ``event`` (plus the time) to the job's run history."""
    key = RUNS_KEY.format(id=job_id)
    pipe = client.pipeline()
    pipe.rpush(key, json.dumps({**event, "at": round(time.time(), 3)}))
    pipe.expire(key, expires)
    pipe.execute()


def events(client: redis.Redis, job_id: str) -> list[dict[str, Any]]:
    """The job's run history, oldest first."""
    return [json.loads(raw) for raw in client.lrange(RUNS_KEY.format(id=job_id), 0, -1)]


def last_run(client: redis.Redis, job_id: str, owner: str) -> str | None:
    """The token of the latest run of ``job_id`` started by ``owner`` (a ``process_prefix``)."""
    started = [e["run"] for e in events(client, job_id) if e["event"] == "start"]
    return next((run for run in reversed(started) if run.startswith(owner)), None)


def unfinished_runs(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The start events of runs that never recorded an end, each with the reason it is known by."""
    starts: dict[str, dict[str, Any]] = {}
    for event in history:
        if event["event"] == "start":
            starts[event["run"]] = dict(event)
        elif event["event"] == "end" and event["run"] in starts:
            if event.get("outcome") == "process_died":
                starts[event["run"]]["lost"] = (
                    f"its worker process died (exit code {event.get('exitcode')})"
                )
            else:
                del starts[event["run"]]
    return list(starts.values())


def describe_run(run: dict[str, Any]) -> str:
    when = time.strftime("%H:%M:%S", time.gmtime(run["at"]))
    how = run.get(
        "lost",
        "no end was recorded: its worker host died or lost Redis for longer than "
        "visibility_timeout",
    )
    return f"{when} UTC on {run['node']} (pid {run['pid']}): {how}"


@dataclass(frozen=True)
class Fenced:
    """The answer of ``fence`` and ``finish``: whether the caller may go on, who holds the job's
    run lock now, and the job's outcome when one is recorded."""

    ok: bool
    holder: str | None
    outcome: dict[str, Any] | None

    def reason(self) -> str:
        """Why a refused caller may not write, for its log and its run's end."""
        if self.outcome is not None:
            return f"the job's outcome ({self.outcome.get('state')}) is recorded by another run"
        return f"another process ({self.holder}) now runs the job"


def fence(
    client: redis.Redis,
    job_id: str,
    owner: str,
    *,
    ttl: float = 0.0,
    outcome: dict[str, Any] | None = None,
    expires: int = 0,
) -> Fenced:
    """In one step in Redis: passes only while no outcome is recorded for ``job_id`` and its run
    lock is held by ``owner`` (a run token or a ``process_prefix``; ``""``: nobody) or free.

    With ``ttl`` it extends the lock by that many seconds, taking it if free (Redis lost it);
    with ``outcome`` it records it (what ``finish`` does). A run calls it just before each
    result write and to record its outcome, so it never writes after another run's outcome.
    """
    reply = client.eval(
        _FENCE,
        3,
        RUN_KEY.format(id=job_id),
        FINISHED_KEY.format(id=job_id),
        PENDING_KEY,
        owner,
        int(ttl * 1000),
        "" if outcome is None else json.dumps(outcome),
        expires,
        job_id,
    )
    recorded = _text(reply[2])
    return Fenced(
        ok=int(reply[0]) == 1,
        holder=_text(reply[1]) or None,
        outcome=json.loads(recorded) if recorded else None,
    )


def finish(
    client: redis.Redis, job_id: str, outcome: dict[str, Any], *, owner: str, expires: int
) -> Fenced:
    """Records the job's outcome (``{"state": "SUCCESS", "result": ...}`` or ``FAILURE``) unless
    one is recorded already or another run holds the lock (``fence``)."""
    return fence(client, job_id, owner, outcome=outcome, expires=expires)


def add_bad_message(client: redis.Redis, entry: dict[str, Any]) -> None:
    """Puts ``entry`` (a message the fleet could not use) first in the capped list."""
    pipe = client.pipeline()
    pipe.lpush(BAD_MESSAGES_KEY, json.dumps(entry))
    pipe.ltrim(BAD_MESSAGES_KEY, 0, BAD_MESSAGES_KEPT - 1)
    pipe.execute()


def bad_messages(client: redis.Redis) -> list[dict[str, Any]]:
    """The recorded bad messages, newest first."""
    return [json.loads(raw) for raw in client.lrange(BAD_MESSAGES_KEY, 0, -1)]


def finished(client: redis.Redis, job_id: str) -> dict[str, Any] | None:
    raw = client.get(FINISHED_KEY.format(id=job_id))
    return None if raw is None else json.loads(raw)


def mark_queued(client: redis.Redis, job_id: str, record: dict[str, Any], *, expires: int) -> None:
    """The submitting client's record of a job it is about to send; with the fields ``job``
    (its JSON), ``soft`` and ``hard`` (time limits) a lost message can be sent again."""
    key = JOB_KEY.format(id=job_id)
    now = time.time()
    pipe = client.pipeline()
    pipe.hset(key, mapping={"state": QUEUED, "submitted": now, **record})
    pipe.expire(key, expires)
    pipe.zadd(PENDING_KEY, {job_id: now})
    pipe.zremrangebyscore(PENDING_KEY, 0, now - expires)
    pipe.execute()


def queued_record(client: redis.Redis, job_id: str) -> dict[str, str] | None:
    raw = client.hgetall(JOB_KEY.format(id=job_id))
    return {_text(k): _text(v) for k, v in raw.items()} or None


def message_ids(raw_messages: Iterable[bytes], *, delivered: bool) -> set[str]:
    """Task ids of kombu's Redis messages: queued (the message) or delivered ([message, ...])."""
    ids = set()
    for raw in raw_messages:
        try:
            data = json.loads(raw)
            message = data[0] if delivered else data
            ids.add(message["headers"]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            continue
    return ids


def sweep(
    backend: redis.Redis,
    broker: redis.Redis,
    *,
    queue: str,
    delivered_key: str,
    older_than: float,
) -> list[str]:
    """Pending jobs submitted ``older_than`` s ago or earlier whose message is neither queued nor
    delivered, that no process runs and that have not finished — in this sweep and the one
    before (a message is briefly in neither place while a worker takes it)."""
    pending = [_text(i) for i in backend.zrangebyscore(PENDING_KEY, 0, time.time() - older_than)]
    missing: list[str] = []
    if pending:
        snapshot = broker.pipeline(transaction=True)
        snapshot.lrange(queue, 0, -1)
        snapshot.hvals(delivered_key)
        queued, delivered = snapshot.execute()
        present = message_ids(queued, delivered=False) | message_ids(delivered, delivered=True)
        candidates = [job_id for job_id in pending if job_id not in present]
        check = backend.pipeline(transaction=False)
        for job_id in candidates:
            check.exists(RUN_KEY.format(id=job_id), FINISHED_KEY.format(id=job_id))
        missing = [j for j, found in zip(candidates, check.execute()) if not found]
    before = {_text(i) for i in backend.smembers(MISSING_KEY)}
    lost = [job_id for job_id in missing if job_id in before]
    first_seen = [job_id for job_id in missing if job_id not in before]
    update = backend.pipeline()
    update.delete(MISSING_KEY)
    if first_seen:
        update.sadd(MISSING_KEY, *first_seen)
    update.execute()
    return lost


def with_retries(
    action: Callable[[], T], *, attempts: int, on_error: Callable[[Exception], None]
) -> T:
    """``action()``, retried with backoff (0.1 s doubling to 5 s) while Redis is unreachable."""
    for attempt in range(attempts - 1):
        try:
            return action()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            on_error(exc)
            time.sleep(min(5.0, 0.1 * 2**attempt))
    return action()


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
