"""Run an iterator in a background thread so decoding overlaps inference."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def prefetch(items: Iterable[T], *, depth: int = 2) -> Iterator[T]:
    """Yield ``items`` while a worker thread produces up to ``depth`` of them ahead.

    numpy's FFT and matmul, PyAV's decoder and TensorFlow release the GIL, so on two cores the
    producer (decode + features) and the consumer (inference) really run in parallel. An
    exception in the producer is re-raised in the consumer, in order. Closing the generator early
    stops the producer after at most ``depth`` more items and closes ``items`` in the producer's
    thread (a decoder is never closed under the thread that is using it).
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth!r}")
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    source = iter(items)

    def produce() -> None:
        try:
            for item in source:
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
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                slots.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


class _Failure:
    """An exception raised by the producer, carried through the queue."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
