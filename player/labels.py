"""Editable speech/non-speech labels of one recording, and the label files ``ocml-train`` reads.

A recording is cut into pieces at sorted boundaries; each piece is speech or not. Flipping,
splitting and moving boundaries edit that partition; exports merge adjacent speech pieces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ocml.pipeline.labels import (
    CORRECTED_SUFFIXES,
    render_audacity_labels,
    render_labels_json,
)
from ocml.pipeline.writers import atomic_write

MIN_PIECE = 0.01  # seconds: a moved boundary keeps at least one frame to each neighbour


@dataclass
class Labels:
    """A partition of ``[0, duration]`` into pieces, each speech (True) or non-speech (False).

    ``edges`` holds the piece boundaries including 0 and ``duration``; ``speech[i]`` labels the
    piece ``edges[i]..edges[i+1]``. ``dirty`` tells whether an edit happened since the last save.
    """

    duration: float
    edges: list[float]
    speech: list[bool]
    dirty: bool = field(default=False)

    @classmethod
    def from_intervals(cls, intervals: list[tuple[float, float]], *, duration: float) -> Labels:
        """Labels from sorted, non-overlapping speech intervals within ``[0, duration]``."""
        if duration <= 0:
            raise ValueError(f"duration must be positive, got {duration!r}")
        edges, speech = [0.0], []
        for start, end in intervals:
            start, end = max(0.0, float(start)), min(duration, float(end))
            if end <= start:
                continue
            if start > edges[-1]:
                edges.append(start)
                speech.append(False)
            elif speech and speech[-1]:
                edges[-1] = max(edges[-1], end)
                continue
            edges.append(end)
            speech.append(True)
        if edges[-1] < duration:
            edges.append(duration)
            speech.append(False)
        return cls(duration=duration, edges=edges, speech=speech)

    def intervals(self) -> list[tuple[float, float]]:
        """Speech intervals, adjacent speech pieces merged."""
        out: list[tuple[float, float]] = []
        for i, is_speech in enumerate(self.speech):
            if not is_speech:
                continue
            start, end = self.edges[i], self.edges[i + 1]
            if out and out[-1][1] == start:
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
        return out

    def piece_at(self, t: float) -> int:
        """Index of the piece containing time ``t`` (clamped into the recording)."""
        for i in range(len(self.speech)):
            if t < self.edges[i + 1]:
                return i
        return len(self.speech) - 1

    def is_speech(self, t: float) -> bool:
        """Whether time ``t`` lies in a speech piece."""
        return self.speech[self.piece_at(t)]

    def boundaries(self) -> list[float]:
        """Inner boundaries (excluding 0 and the duration), sorted."""
        return self.edges[1:-1]

    def next_boundary(self, t: float) -> float:
        """The first inner boundary after ``t``, or the end of the recording."""
        return next((b for b in self.boundaries() if b > t + 1e-6), self.duration)

    def previous_boundary(self, t: float) -> float:
        """The last inner boundary before ``t``, or the start of the recording."""
        return next((b for b in reversed(self.boundaries()) if b < t - 1e-6), 0.0)

    def flip(self, t: float) -> None:
        """Toggle speech/non-speech of the piece under ``t``."""
        i = self.piece_at(t)
        self.speech[i] = not self.speech[i]
        self.dirty = True

    def split(self, t: float) -> None:
        """Cut the piece under ``t`` in two at ``t`` (both keep its label)."""
        i = self.piece_at(t)
        if t - self.edges[i] < MIN_PIECE or self.edges[i + 1] - t < MIN_PIECE:
            return
        self.edges.insert(i + 1, t)
        self.speech.insert(i + 1, self.speech[i])
        self.dirty = True

    def nearest_boundary(self, t: float, *, tolerance: float) -> int | None:
        """Index into ``edges`` of the inner boundary closest to ``t`` within ``tolerance``."""
        best = None
        for i in range(1, len(self.edges) - 1):
            if abs(self.edges[i] - t) <= tolerance and (
                best is None or abs(self.edges[i] - t) < abs(self.edges[best] - t)
            ):
                best = i
        return best

    def move_boundary(self, index: int, t: float) -> float:
        """Move inner boundary ``edges[index]`` to ``t``, kept between its neighbours; returns it."""
        if not 0 < index < len(self.edges) - 1:
            raise IndexError(f"no inner boundary {index!r}")
        low, high = self.edges[index - 1] + MIN_PIECE, self.edges[index + 1] - MIN_PIECE
        new = min(max(t, low), high)
        if new != self.edges[index]:
            self.edges[index] = new
            self.dirty = True
        return new


def label_paths(stem: Path) -> tuple[Path, Path]:
    """Where corrected labels go: ``STEM.labels.txt`` (Audacity) and ``STEM.labels.json``, the
    names training looks for first (``pipeline.labels.CORRECTED_SUFFIXES``)."""
    js, txt = (stem.with_name(stem.name + suffix) for suffix in CORRECTED_SUFFIXES)
    return txt, js


def save_labels(labels: Labels, stem: Path) -> tuple[Path, Path]:
    """Write both label files atomically next to ``stem`` and mark ``labels`` clean."""
    txt, js = label_paths(stem)
    intervals = labels.intervals()
    atomic_write(txt, render_audacity_labels(intervals))
    atomic_write(js, render_labels_json(intervals, duration=labels.duration))
    labels.dirty = False
    return txt, js


def difference(
    a: list[tuple[float, float]], b: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Parts of merged intervals ``a`` not covered by merged intervals ``b`` (e.g. misses)."""
    out: list[tuple[float, float]] = []
    j = 0
    for start, end in a:
        while j < len(b) and b[j][1] <= start:
            j += 1
        k, cur = j, start
        while k < len(b) and b[k][0] < end:
            if b[k][0] > cur:
                out.append((cur, b[k][0]))
            cur = max(cur, b[k][1])
            k += 1
        if cur < end:
            out.append((cur, end))
    return out
