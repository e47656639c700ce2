"""`ocml play` where a person meets it: a real X window (Xvfb) driven by key presses (xdotool), on
a machine without a sound device, with a result of another recording, and without a display."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.media import speechlike, write_wav
from tests.results import write_result
from tests.xdisplay import press_keys, virtual_display

pytestmark = pytest.mark.slow  # a real X server and player processes, about 70 s
SR = 16000
DURATION = 60.0
SPEECH = [(5.0, 20.0), (30.0, 45.0)]
OTHER_DURATION = 180.0
OTHER_SPEECH = [(5.0, 20.0), (60.0, 90.0), (120.0, 170.0)]
OCML = Path(sys.executable).with_name("ocml")
PLAYED = 2.0  # seconds between play and pause


@pytest.fixture
def lectures(tmp_path: Path) -> Path:
    """A 60 s lecture with its result, and a 180 s recording with its own result beside it."""
    media = write_wav(tmp_path / "lecture.wav", speechlike(SR, DURATION, SPEECH, seed=5), SR)
    write_result(tmp_path / "lecture.json", SPEECH, duration=DURATION, media=media)
    other = write_wav(
        tmp_path / "other.wav", speechlike(SR, OTHER_DURATION, OTHER_SPEECH, seed=6), SR
    )
    write_result(tmp_path / "other.json", OTHER_SPEECH, duration=OTHER_DURATION, media=other)
    return tmp_path


def player(*args: str | Path, env: dict[str, str]) -> subprocess.Popen:
    """``ocml play ARGS`` started as a user starts it, with ``env`` added to the environment."""
    return subprocess.Popen(
        [OCML, "play", *map(str, args)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def drive(display: str, proc: subprocess.Popen, *steps: list[str] | float) -> tuple[str, str]:
    """Press each list of keys in the player's window, sleep each number of seconds between them,
    and return what the player printed once it has quit."""
    try:
        for step in steps:
            if isinstance(step, float):
                time.sleep(step)
            else:
                press_keys(display, "ocml", step)
        return proc.communicate(timeout=60)
    finally:
        proc.kill()


@pytest.mark.parametrize(
    "audio, expected",
    [
        pytest.param({"SDL_AUDIODRIVER": "alsa"}, "ALSA: Couldn't open audio device", id="alsa"),
        pytest.param({"SDL_AUDIODRIVER": "nosuchdriver"}, "nosuchdriver", id="unknown-driver"),
    ],
)
def test_without_a_sound_device_it_plays_silently_and_says_so_once(
    lectures: Path, tmp_path: Path, audio: dict[str, str], expected: str
) -> None:
    no_card = tmp_path / "alsa.conf"  # ALSA with no device defined, as on a server
    no_card.write_text("")
    media = lectures / "lecture.wav"
    with virtual_display() as display:
        env = {"DISPLAY": display, "SDL_VIDEODRIVER": "x11", "ALSA_CONFIG_PATH": str(no_card)}
        proc = player(media, "--result", lectures / "lecture.json", "--at", "22", env=env | audio)
        started = time.monotonic()
        # play 22 s → ~24 s, pause, split there and make the rest of the pause speech, save, quit
        out, err = drive(display, proc, ["space"], PLAYED, ["space", "x", "f", "s", "q"])
        most = time.monotonic() - started
    assert proc.returncode == 0, err
    notes = [line for line in err.splitlines() if "no sound device" in line]
    assert len(notes) == 1 and expected in notes[0], err
    assert "Traceback" not in err and "ALSA lib" not in err
    saved = json.loads((lectures / "lecture.labels.json").read_text())
    [(first, first_end), (split, end)] = saved["speech"]
    assert (first, first_end, end) == (5.0, 20.0, 45.0)
    # the silent clock moved on while playing (key events may lag under load), never past real time
    assert PLAYED / 2 <= split - 22.0 <= most, (split, most)
    assert f"corrected labels: {lectures / 'lecture.labels.json'}" in out


def test_a_result_of_another_recording_is_refused_naming_both(lectures: Path) -> None:
    media, other = lectures / "lecture.wav", lectures / "other.json"
    refused = subprocess.run(
        [OCML, "play", media, "--result", other], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2, refused.stderr
    [line] = refused.stderr.splitlines()
    assert line.startswith("ocml: failed: result_mismatch: ")
    assert str(other) in line and str(media) in line and "--force" in line
    assert "180.0 s" in line and "60.0 s" in line
    assert not list(lectures.glob("*.labels.*"))


def test_with_force_it_shows_another_recordings_result_but_never_saves_it(
    lectures: Path,
) -> None:
    media = lectures / "lecture.wav"
    with virtual_display() as display:
        env = {"DISPLAY": display, "SDL_VIDEODRIVER": "x11", "SDL_AUDIODRIVER": "dummy"}
        proc = player(media, "--result", lectures / "other.json", "--force", env=env)
        # flip, save (refused), quit: asked about the unsaved change, save and quit (refused, so
        # the player stays), quit again and discard
        out, err = drive(display, proc, ["f", "s", "q", "s", "q", "d"])
    assert proc.returncode == 0, err
    assert not list(lectures.glob("lecture.labels.*")) and "corrected labels" not in out


def test_without_a_display_it_fails_with_one_line(lectures: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("SDL_VIDEODRIVER", None)
    done = subprocess.run(
        [OCML, "play", lectures / "lecture.wav", "--result", lectures / "lecture.json"],
        env={**env, "SDL_AUDIODRIVER": "dummy"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("ocml: failed: no_display: no display to open the player window on")
    assert "DISPLAY not set" in line and "--screenshot" in line
