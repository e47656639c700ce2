"""Keeping TensorFlow's and LiteRT's C++ start-up lines off stderr: `native_noise_filtered`."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

_NATIVE_NOISE = re.compile(
    rb"(WARNING: All log messages before absl|[IWE]\d{4} \d\d:|INFO: Created TensorFlow Lite)"
    rb"[^\n]*\n?"
)
"""Start-up lines that TensorFlow's and LiteRT's C++ code writes to stderr whatever we ask; found
anywhere in a line, since one may land in the middle of a line Python is writing piecewise."""


@dataclass
class _Redirection:
    """fd 2's original, saved while it points at the filter's pipe, and the thread that reads it."""

    saved: int | None = None
    forwarder: threading.Thread | None = None
    done: bool = False


@contextlib.contextmanager
def native_noise_filtered() -> Iterator[None]:
    """Drop TensorFlow's and LiteRT's start-up lines (`_NATIVE_NOISE`) from file descriptor 2
    while the block runs.

    The block may run in a background thread (model loading) while the main thread reports on
    stderr, so fd 2 goes through a pipe whose other lines a thread passes on, not to /dev/null.
    Should the process exit meanwhile, an atexit hook (registered before fd 2 is touched, and
    waiting for a redirection under way) restores fd 2 and passes on what is left. It never
    flushes ``sys.stderr`` itself: from this thread that would race the main thread's writes
    (``TextIOWrapper`` is not thread-safe); text still buffered simply reaches fd 2 later,
    through the pipe or directly.
    """
    lock = threading.Lock()
    state = _Redirection()

    def forward(read: int, saved: int) -> None:
        with os.fdopen(read, "rb") as pipe:
            for line in pipe:
                kept = _NATIVE_NOISE.sub(b"", line)
                if kept:
                    os.write(saved, kept)

    def restore() -> None:
        with lock:
            if state.saved is not None and state.forwarder is not None:
                os.dup2(state.saved, 2)  # closes the pipe's last write end
                state.forwarder.join()  # ... so the forwarder passes on the rest and ends
                os.close(state.saved)
            state.saved = None
            state.done = True

    atexit.register(restore)
    with lock:
        if not state.done:
            saved = os.dup(2)
            read, write = os.pipe()
            os.dup2(write, 2)
            os.close(write)
            forwarder = threading.Thread(
                target=forward, args=(read, saved), name="ocml-stderr", daemon=True
            )
            forwarder.start()
            state.saved, state.forwarder = saved, forwarder
    try:
        yield
    finally:
        atexit.unregister(restore)
        restore()
