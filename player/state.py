"""What the player is doing, as plain data: cursor, play state, zoom, labels, the quit prompt.

Keys become action names (``action_for``) and actions change a ``PlayerState`` (``handle``),
which answers with an effect the pygame loop carries out (restart audio, save, quit). Nothing
here needs a display, so the whole key behaviour is unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ocml.pipeline.times import to_ms
from ocml.player.labels import Labels
from ocml.player.timeline import detail_window, pipeline_grid

ZOOM_LEVELS = (2.0, 5.0, 10.0, 20.0, 30.0, 60.0)  # detail view spans, seconds

# pygame key names (pygame.key.name) → action; shifted variants under ("shift", name).
KEYS: dict[str | tuple[str, str], str] = {
    "space": "toggle_play",
    "left": "back_5",
    "right": "forward_5",
    ("shift", "left"): "back_1",
    ("shift", "right"): "forward_1",
    "n": "next_boundary",
    "p": "previous_boundary",
    "+": "zoom_in",
    "=": "zoom_in",
    "[+]": "zoom_in",
    "-": "zoom_out",
    "[-]": "zoom_out",
    "home": "home",
    "end": "end",
    "f": "flip",
    "x": "split",
    "s": "save",
    "v": "toggle_view",
    "q": "quit",
    "escape": "quit",
}
# While the "unsaved changes" prompt is open only these keys count.
PROMPT_KEYS = {
    "s": "save_and_quit",
    "y": "save_and_quit",
    "d": "discard_and_quit",
    "n": "cancel_quit",
    "escape": "cancel_quit",
}
STEPS = {"back_5": -5.0, "forward_5": 5.0, "back_1": -1.0, "forward_1": 1.0}


def action_for(key: str, *, shift: bool = False, prompting: bool = False) -> str | None:
    """The action a key (a ``pygame.key.name``) triggers, or None."""
    if prompting:
        return PROMPT_KEYS.get(key)
    if shift and ("shift", key) in KEYS:
        return KEYS[("shift", key)]
    return KEYS.get(key)


@dataclass
class PlayerState:
    """The player's state for one recording; ``handle`` applies an action and returns its effect.

    Effects: ``"seek"`` (cursor jumped: restart audio there), ``"play"``, ``"pause"``,
    ``"save"``, ``"quit"``, or None.
    """

    duration: float
    labels: Labels
    probabilities: np.ndarray | None = None
    threshold: float = 0.5
    cursor: float = 0.0
    playing: bool = False
    zoom: int = 2  # index into ZOOM_LEVELS
    view: str = "waveform"  # or "spectrogram"
    prompting: bool = False
    message: str = field(default="")
    view_start: float = 0.0

    def window(self) -> tuple[float, float]:
        """The detail view's time range: it pages along so the view does not scroll every frame."""
        span = min(self.span, self.duration)
        start = self.view_start
        if (
            not (start + 0.05 * span <= self.cursor <= start + 0.9 * span)
            or start + span > self.duration
        ):
            start = detail_window(self.cursor, span, self.duration)[0]
        self.view_start = start
        return start, start + span

    @property
    def span(self) -> float:
        """Seconds shown in the detail view."""
        return ZOOM_LEVELS[self.zoom]

    def probability(self, t: float | None = None) -> float | None:
        """The model's speech probability at ``t`` (default: the cursor), if probabilities exist."""
        if self.probabilities is None or len(self.probabilities) == 0:
            return None
        i = min(pipeline_grid().index(self.cursor if t is None else t), len(self.probabilities) - 1)
        return float(self.probabilities[i])

    def decision(self) -> tuple[bool, float | None]:
        """Speech or not at the cursor (from the labels), and the model's certainty in that."""
        speech = self.labels.is_speech(self.cursor)
        p = self.probability()
        return speech, None if p is None else (p if speech else 1.0 - p)

    def seek(self, t: float) -> str:
        """Move the cursor to ``t`` (clamped); stops at the end."""
        self.cursor = min(max(t, 0.0), self.duration)
        if self.cursor >= self.duration:
            self.playing = False
        return "seek"

    def handle(self, action: str | None) -> str | None:
        """Apply ``action``; return the effect the UI must carry out."""
        if action is None:
            return None
        if action in STEPS:
            return self.seek(self.cursor + STEPS[action])
        simple = {
            "next_boundary": lambda: self.seek(self.labels.next_boundary(self.cursor)),
            "previous_boundary": lambda: self.seek(self.labels.previous_boundary(self.cursor)),
            "home": lambda: self.seek(0.0),
            "end": lambda: self.seek(self.duration),
        }
        if action in simple:
            return simple[action]()
        return getattr(self, "_" + action)()

    def _toggle_play(self) -> str:
        if not self.playing and self.cursor >= self.duration:
            self.cursor = 0.0
        self.playing = not self.playing
        return "play" if self.playing else "pause"

    def _zoom_in(self) -> None:
        self.zoom = max(self.zoom - 1, 0)

    def _zoom_out(self) -> None:
        self.zoom = min(self.zoom + 1, len(ZOOM_LEVELS) - 1)

    def _toggle_view(self) -> None:
        self.view = "spectrogram" if self.view == "waveform" else "waveform"

    def _flip(self) -> None:
        self.labels.flip(self.cursor)
        self.message = "flipped " + (
            "to speech" if self.labels.is_speech(self.cursor) else "to non-speech"
        )

    def _split(self) -> None:
        self.labels.split(self.cursor)
        self.message = f"split at {format_time(self.cursor)}"

    def _save(self) -> str:
        return "save"

    def _quit(self) -> str | None:
        if self.labels.dirty:
            self.prompting = True
            self.playing = False
            return "pause"
        return "quit"

    def _save_and_quit(self) -> str:
        self.prompting = False
        return "save_and_quit"

    def _discard_and_quit(self) -> str:
        self.prompting = False
        return "quit"

    def _cancel_quit(self) -> None:
        self.prompting = False


def format_time(t: float) -> str:
    """``H:MM:SS.mmm`` (hours only when needed)."""
    ms = to_ms(max(t, 0.0))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h}:{m:02d}:{s:02d}.{ms:03d}" if h else f"{m:02d}:{s:02d}.{ms:03d}"
