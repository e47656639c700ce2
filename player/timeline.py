"""Screen geometry of the player: where each panel sits and how times map to pixels.

Pure arithmetic, no pygame, so layout and hit-testing are unit-tested without a display.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ocml.pipeline.features import PIPELINE_FEATURES, FrameGrid


@functools.cache
def pipeline_grid() -> FrameGrid:
    """The frames of the pipeline's features, which every result's probabilities lie on.

    ``load_model`` refuses models with other features, so a result file needs no grid of its own.
    """
    return PIPELINE_FEATURES.grid


@dataclass(frozen=True)
class Rect:
    """An axis-aligned screen rectangle (pixels)."""

    x: int
    y: int
    w: int
    h: int

    def contains(self, px: int, py: int) -> bool:
        """Whether pixel ``(px, py)`` lies inside."""
        return self.x <= px < self.x + self.w and self.y <= py < self.y + self.h


@dataclass(frozen=True)
class Axis:
    """A linear map between times ``t0..t1`` and pixel columns ``x0..x0+width``."""

    t0: float
    t1: float
    x0: int
    width: int

    def x(self, t: float) -> int:
        """The pixel column of time ``t``."""
        span = max(self.t1 - self.t0, 1e-9)
        return self.x0 + int(round((t - self.t0) / span * self.width))

    def t(self, x: float) -> float:
        """The time at pixel column ``x``, clamped to ``t0..t1``."""
        frac = min(max((x - self.x0) / max(self.width, 1), 0.0), 1.0)
        return self.t0 + frac * (self.t1 - self.t0)


@dataclass(frozen=True)
class Layout:
    """Panels of a ``width`` × ``height`` window, top to bottom."""

    width: int
    height: int
    margin: int = 16

    @property
    def header(self) -> Rect:
        """File name, model name, segment count."""
        return Rect(self.margin, 8, self.width - 2 * self.margin, 28)

    @property
    def status(self) -> Rect:
        """Current time, decision and certainty in large type."""
        return Rect(self.margin, 40, self.width - 2 * self.margin, 64)

    @property
    def overview(self) -> Rect:
        """The whole recording: labels as green/red, the probability as a thin strip below."""
        return Rect(self.margin, 112, self.width - 2 * self.margin, 48)

    @property
    def detail(self) -> Rect:
        """The zoomed view: waveform or spectrogram, probability curve, threshold."""
        top = self.overview.y + self.overview.h + 16
        bottom = self.footer.y - 22 - 20  # room for the label lane and the time marks
        return Rect(self.margin, top, self.width - 2 * self.margin, max(bottom - top, 40))

    @property
    def lane(self) -> Rect:
        """The labels of the detail window, under it, where boundaries are dragged."""
        d = self.detail
        return Rect(d.x, d.y + d.h + 2, d.w, 20)

    @property
    def footer(self) -> Rect:
        """Key help or a prompt."""
        return Rect(self.margin, self.height - 26, self.width - 2 * self.margin, 22)


def detail_window(cursor: float, span: float, duration: float) -> tuple[float, float]:
    """The ``span``-second window around ``cursor`` (cursor at 1/3), kept inside the recording."""
    if span >= duration:
        return 0.0, duration
    start = min(max(cursor - span / 3, 0.0), duration - span)
    return start, start + span


def pool(values: np.ndarray, columns: int, *, how: str = "mean") -> np.ndarray:
    """Reduce a 1-D array to ``columns`` values (mean, max or min of equal runs), float32.

    Used for the overview of a long recording: a 3-hour file has 1.08 M probability frames but
    the screen only ~1300 columns, so the overview never touches full resolution twice.
    """
    if columns <= 0:
        raise ValueError(f"columns must be positive, got {columns!r}")
    v = np.asarray(values, dtype=np.float32)
    if len(v) == 0:
        return np.zeros(columns, dtype=np.float32)
    edges = np.linspace(0, len(v), columns + 1).astype(np.int64)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, len(v))
    starts = np.minimum(edges[:-1], len(v) - 1)
    reduce = {"mean": np.add, "max": np.maximum, "min": np.minimum}[how]
    out = reduce.reduceat(v, starts)
    if how == "mean":
        out = out / np.maximum(np.diff(np.append(starts, len(v))), 1)
    return out.astype(np.float32)


def curve(
    probabilities: np.ndarray, grid: FrameGrid, t0: float, t1: float, *, points: int
) -> tuple[np.ndarray, np.ndarray]:
    """(times, values) of the probabilities that draw ``t0..t1`` edge to edge.

    The player's detail view and ``ocml plot`` both draw this; more than ``points`` frames are
    pooled (mean) to ``points``.
    """
    window = grid.covering(t0, t1, len(probabilities))
    values = np.asarray(probabilities[window], dtype=np.float32)
    times = grid.times(len(values), first=window.start)
    if len(values) > points:
        return pool(times, points), pool(values, points)
    return times, values
