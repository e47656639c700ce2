"""Run an iterator in a background thread so decoding overlaps inference."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def prefetch(items: Iterable[T], *, depth: int | Callable[[], int] = 2) -> Iterator[T]:
    """Yield ``items`` while a worker thread produces up to ``depth`` of them ahead.

    numpy's FFT and matmul, PyAV's decoder and TensorFlow release the GIL, so on two cores the
    producer (decode + features) and the consumer (inference) really run in parallel. An
    exception in the producer is re-raised in the consumer, in order. Closing the generator early
    stops the producer after at most ``depth`` more items and closes ``items`` in the producer's
    thread (a decoder is never closed under the thread that is using it).

    ``depth`` may be a callable, asked again before each item is queued (and after the consumer
    takes one): the producer may run far ahead while the consumer cannot start yet (a model still
    loading) and stays close behind once it can, so what waits in the queue does not depend on
    how long the stream is.
    """
    limit = depth if callable(depth) else lambda: depth
    if limit() < 1:
        raise ValueError(f"depth must be at least 1, got {limit()!r}")
    slots: queue.Queue = queue.Queue()  # bounded by `room`, so a put never blocks
    room = threading.Condition()
    stop = threading.Event()

    source = iter(items)

    def produce() -> None:
        try:
            for item in source:
                with room:
                    room.wait_for(lambda: stop.is_set() or slots.qsize() < max(1, limit()))
                if stop.is_set():
                    return
                slots.put(item)
        except BaseException as exc:  # re-raised in the consumer thread
            slots.put(_Failure(exc))
        else:
            slots.put(_DONE)
        finally:  # a source stopped early is closed here, in the thread that ran it
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="ocml-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            with room:
                room.notify()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        with room:
            room.notify()
        thread.join()


class _Failure:
    """An exception raised by the producer, carried through the queue."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
