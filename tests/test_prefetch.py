"""The background-thread iterator that overlaps decoding, features and inference."""

from __future__ import annotations

import threading
import time

import pytest

from ocml.pipeline.prefetch import prefetch


def test_yields_every_item_in_order() -> None:
    assert list(prefetch(iter(range(1000)), depth=3)) == list(range(1000))


def test_runs_the_producer_in_another_thread_at_most_depth_ahead() -> None:
    produced: list[int] = []
    threads: set[str] = set()

    def items():
        for k in range(10):
            threads.add(threading.current_thread().name)
            produced.append(k)
            yield k

    stream = prefetch(items(), depth=2)
    assert next(stream) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert len(produced) == 4  # one handed out, two queued, one waiting for room
    assert threads == {"ocml-prefetch"}
    assert list(stream) == list(range(1, 10))


def test_a_callable_depth_lets_the_producer_run_ahead_only_while_it_says_so() -> None:
    """Far ahead while the consumer is not ready (a model loading), then close behind: the queue
    drains to the smaller depth and stays there."""
    produced: list[int] = []
    ready = threading.Event()

    def items():
        for k in range(200):
            produced.append(k)
            yield k

    stream = prefetch(items(), depth=lambda: 2 if ready.is_set() else 50)
    assert next(stream) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 52 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert len(produced) == 52  # one handed out, 50 queued, one waiting for room
    ready.set()
    taken = 1
    for item in stream:
        assert item == taken
        taken += 1
        if taken > 60:
            assert len(produced) - taken <= 2  # queued behind it, plus one waiting for room
    assert taken == 200


def test_producer_exception_reaches_the_consumer_after_earlier_items() -> None:
    def items():
        yield 1
        yield 2
        raise ValueError("broken block at 2")

    got = []
    with pytest.raises(ValueError, match="broken block at 2"):
        for item in prefetch(items()):
            got.append(item)
    assert got == [1, 2]


def test_closing_early_stops_the_producer() -> None:
    produced: list[int] = []

    def items():
        for k in range(10_000):
            produced.append(k)
            yield k

    stream = prefetch(items(), depth=2)
    assert next(stream) == 0
    stream.close()
    count = len(produced)
    time.sleep(0.1)
    assert len(produced) == count < 10
    assert not any(t.name == "ocml-prefetch" for t in threading.enumerate())


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="0"):
        list(prefetch([1], depth=0))
