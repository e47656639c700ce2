"""A real X display for tests that drive a window as a person does: Xvfb, and xdotool's keys.

Debian's ``xvfb`` and ``xdotool`` provide the two programs (``make test`` installs them when they
are missing). Nothing here is a test itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

TOOLS = {"Xvfb": "xvfb", "xdotool": "xdotool"}


def require_tools() -> None:
    """A ``RuntimeError`` naming the Debian packages to install if Xvfb or xdotool is missing."""
    missing = [package for program, package in TOOLS.items() if shutil.which(program) is None]
    if missing:
        raise RuntimeError(
            f"these tests drive a real window: apt-get install {' '.join(missing)} "
            "(make test installs them)"
        )


@contextmanager
def virtual_display(*, size: tuple[int, int] = (1400, 900)) -> Iterator[str]:
    """An Xvfb server on a display number it picks itself; yields its ``DISPLAY`` (``":N"``)."""
    require_tools()
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{size[0]}x{size[1]}x24"]
        + ["-nolisten", "tcp"],
        pass_fds=[write],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        with os.fdopen(read, "rb") as pipe:
            number = pipe.readline().strip().decode()
        if not number:
            raise RuntimeError(f"Xvfb did not start (exit status {server.poll()})")
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def press_keys(
    display: str, window_class: str, keys: Sequence[str], *, timeout: float = 60.0
) -> None:
    """Wait for a window of ``window_class`` (SDL's is the program's name, e.g. ``ocml``), give it
    the keyboard focus and press ``keys`` (xdotool key names such as ``f``, ``shift+Left``) one
    after the other, as real key events (XTEST), a frame or more apart.

    The window is found by its class: this xdotool does not match titles SDL sets as UTF-8.
    """
    env = {**os.environ, "DISPLAY": display}

    def xdotool(*args: str) -> str:
        done = subprocess.run(
            ["xdotool", *args], env=env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"xdotool {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    window = xdotool("search", "--sync", "--class", window_class).split()[0]
    xdotool("windowfocus", "--sync", window)
    xdotool("key", "--delay", "120", *keys)
