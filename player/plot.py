"""``ocml plot``: a matplotlib figure of a result — spectrogram, probability, segments, errors.

The spectrogram is streamed and pooled to at most ``COLUMNS`` columns while decoding, so a
long recording costs the same memory as a short one; segments are drawn with one
``broken_barh`` per row. Recordings longer than ``DETAIL_SECONDS`` get an overview panel plus
full-resolution detail panels where the most errors (or the least certain frames) are.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ocml.pipeline.features import PIPELINE_FEATURES, stream_logmel
from ocml.pipeline.labels import merge_intervals
from ocml.player.labels import difference
from ocml.player.session import Session
from ocml.player.timeline import curve, pipeline_grid

COLUMNS = 2000
DETAIL_SECONDS = 60.0
DETAIL_PANELS = 3
UNCERTAIN = 0.2  # |probability - threshold| below this counts as an uncertain frame
COLOURS = {"speech": "#28aa46", "reference": "#3a6fd8", "miss": "#e08a00", "false_alarm": "#c0283a"}


@dataclass
class Spectrograms:
    """A pooled log-mel overview and full-resolution log-mel for chosen windows."""

    overview: np.ndarray  # [columns, n_mels]
    frames_per_column: int
    details: dict[tuple[float, float], np.ndarray] = field(default_factory=dict)


def spectrograms(
    chunks: Iterable[np.ndarray], *, n_frames: int, windows: list[tuple[float, float]]
) -> Spectrograms:
    """Pool log-mel ``chunks`` to about ``COLUMNS`` columns and keep the frames inside ``windows``."""
    per_column = max(math.ceil(n_frames / COLUMNS), 1)
    columns: list[np.ndarray] = []
    carry: np.ndarray | None = None
    kept: dict[tuple[float, float], list[np.ndarray]] = {w: [] for w in windows}
    grid = pipeline_grid()
    done = 0
    for chunk in chunks:
        for (t0, t1), parts in kept.items():
            window = grid.covering(t0, t1, done + len(chunk))
            if window.stop > max(window.start, done):
                parts.append(chunk[max(window.start - done, 0) : window.stop - done])
        done += len(chunk)
        data = chunk if carry is None else np.concatenate([carry, chunk])
        whole = len(data) // per_column * per_column
        if whole:
            columns.append(data[:whole].reshape(-1, per_column, data.shape[1]).mean(axis=1))
        carry = data[whole:]
    if carry is not None and len(carry):
        columns.append(carry.mean(axis=0, keepdims=True))
    overview = np.concatenate(columns) if columns else np.zeros((0, 64), np.float32)
    details = {
        w: np.concatenate(p) if p else np.zeros((0, overview.shape[1]), np.float32)
        for w, p in kept.items()
    }
    return Spectrograms(overview=overview, frames_per_column=per_column, details=details)


def detail_windows(
    session: Session, reference: list[tuple[float, float]] | None
) -> list[tuple[float, float]]:
    """Up to ``DETAIL_PANELS`` windows worth a close look, in time order.

    With a reference: where misses and false alarms add up to most seconds; otherwise where
    most frames are near the threshold; without probabilities: evenly spread.
    """
    n = max(int(session.duration // DETAIL_SECONDS), 1)
    score = np.zeros(n)
    if reference is not None:
        predicted = merge_intervals(session.segments)
        for start, end in difference(reference, predicted) + difference(predicted, reference):
            for i in range(
                int(start // DETAIL_SECONDS), min(int(end // DETAIL_SECONDS), n - 1) + 1
            ):
                score[i] += min(end, (i + 1) * DETAIL_SECONDS) - max(start, i * DETAIL_SECONDS)
    elif session.probabilities is not None and len(session.probabilities):
        near = np.abs(np.asarray(session.probabilities, np.float32) - session.threshold) < UNCERTAIN
        per = pipeline_grid().count(DETAIL_SECONDS)
        usable = min(len(near), n * per)
        score[: math.ceil(usable / per)] = np.add.reduceat(near[:usable], np.arange(0, usable, per))
    if not score.any():
        picks = np.linspace(0, n - 1, min(DETAIL_PANELS, n)).round().astype(int)
    else:
        picks = [i for i in np.argsort(-score, kind="stable")[:DETAIL_PANELS] if score[i] > 0]
    return [
        (i * DETAIL_SECONDS, min((i + 1) * DETAIL_SECONDS, session.duration))
        for i in sorted(set(int(i) for i in picks))
    ]


def plot_session(
    session: Session,
    out: Path,
    *,
    reference: list[tuple[float, float]] | None = None,
) -> Path:
    """Draw the session (and its comparison with ``reference``) to ``out``; returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ocml.pipeline.decode import stream
    from ocml.pipeline.writers import atomic_write

    cfg = PIPELINE_FEATURES
    long = session.duration > DETAIL_SECONDS * 1.5
    windows = detail_windows(session, reference) if long else []
    n_frames = pipeline_grid().count(session.duration)
    blocks = stream(str(session.media), sample_rate=cfg.sample_rate, block_seconds=30.0)
    specs = spectrograms(stream_logmel(blocks, cfg), n_frames=n_frames, windows=windows)
    panels = [(0.0, session.duration, specs.overview, specs.frames_per_column)]
    panels += [(t0, t1, specs.details[(t0, t1)], 1) for t0, t1 in windows]
    fig, axes = plt.subplots(
        2 * len(panels),
        1,
        figsize=(14, 3.6 * len(panels)),
        gridspec_kw={"height_ratios": [1, 1] * len(panels)},
        squeeze=False,
    )
    for k, (t0, t1, spec, per_column) in enumerate(panels):
        title = (
            f"{session.media.name} — whole recording" if k == 0 else f"detail {t0:.0f}–{t1:.0f} s"
        )
        _spectrogram(axes[2 * k, 0], spec, t0, per_column, title)
        _decisions(axes[2 * k + 1, 0], session, reference, t0, t1)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=out.suffix.lstrip(".") or "png", dpi=100)
    plt.close(fig)
    atomic_write(out, buffer.getvalue())
    return out


def _spectrogram(ax, spec: np.ndarray, t0: float, per_column: int, title: str) -> None:
    """Log-mel image with its time axis in seconds."""
    if len(spec):
        seconds = pipeline_grid().seconds(len(spec) * per_column)
        ax.imshow(
            spec.T,
            origin="lower",
            aspect="auto",
            cmap="magma",
            interpolation="nearest",
            extent=(t0, t0 + seconds, 0, spec.shape[1]),
        )
    ax.set_ylabel("mel band")
    ax.set_title(title, loc="left", fontsize=10)


def _decisions(
    ax, session: Session, reference: list[tuple[float, float]] | None, t0: float, t1: float
) -> None:
    """Probability curve and threshold above; predicted, reference and error rows below."""
    probs = session.probabilities
    if probs is not None and len(probs):
        times, values = curve(probs, pipeline_grid(), t0, t1, points=COLUMNS)
        ax.plot(times, values, color="black", linewidth=0.7, label="speech probability")
    ax.axhline(session.threshold, color="grey", linestyle="--", linewidth=0.7, label="threshold")
    predicted = merge_intervals(session.segments)
    rows = [("predicted", predicted, COLOURS["speech"])]
    if reference is not None:
        rows += [
            ("reference", reference, COLOURS["reference"]),
            ("missed", difference(reference, predicted), COLOURS["miss"]),
            ("false alarm", difference(predicted, reference), COLOURS["false_alarm"]),
        ]
    ticks = []
    for i, (name, spans, colour) in enumerate(rows):
        y = -0.25 * (i + 1)
        visible = [(max(s, t0), min(e, t1) - max(s, t0)) for s, e in spans if e > t0 and s < t1]
        ax.broken_barh(visible, (y - 0.09, 0.18), facecolors=colour)
        ticks.append((y, name))
    ax.set_yticks(
        [0, session.threshold, 1] + [y for y, _ in ticks],
        ["0", f"{session.threshold:g}", "1"] + [n for _, n in ticks],
    )
    ax.set_ylim(-0.25 * len(rows) - 0.15, 1.05)
    ax.set_xlim(t0, t1)
    ax.set_xlabel("seconds")
