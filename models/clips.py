"""Decoded clips cut and labelled by their energy: long recordings cut at pauses, silence trimmed,
utterances found sentence by sentence."""

from __future__ import annotations

import numpy as np


def split_long(x: np.ndarray, sr: int, *, max_seconds: float = 12.0) -> list[np.ndarray]:
    """A long recording cut at its pauses into pieces of at most about ``max_seconds``.

    A read chapter or a podcast is minutes long; the mixer places whole clips between pauses,
    so a clip longer than a recording would never be used. Cuts fall in the middle of pauses;
    a stretch without any pause is cut where it must be.
    """
    limit = int(max_seconds * sr)
    if x.size <= limit:
        return [x]
    spans = utterance_spans(x, sr)
    pieces, start, last_end = [], 0, 0
    for a, b in spans:
        if b - start > limit and last_end > start:
            cut = (last_end + a) // 2
            pieces.append(x[start:cut])
            start = cut
        last_end = b
    pieces.append(x[start:])
    return [p for piece in pieces for p in np.array_split(piece, -(-piece.size // (2 * limit)))]


def _loud_frames(
    x: np.ndarray, sr: int, floor_db: float, margin_db: float = 0.0
) -> tuple[int, np.ndarray]:
    """The 10 ms hop in samples and the indices of the hops louder than ``floor_db`` below the
    clip's loudest 10 ms and, with ``margin_db``, than ``margin_db`` above its own noise floor
    (its 10th-percentile hop): a phone recording's room noise is not speech (none for a clip
    shorter than one hop)."""
    hop = sr // 100
    n = x.size // hop
    if n == 0:
        return hop, np.zeros(0, np.intp)
    energy = (x[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(axis=1)
    floor = energy.max() * 10 ** (floor_db / 10)
    if margin_db:
        floor = max(floor, float(np.percentile(energy, 10)) * 10 ** (margin_db / 10))
    return hop, np.flatnonzero(energy > floor)


def trim(x: np.ndarray, sr: int, *, floor_db: float = -40.0, margin_db: float = 0.0) -> np.ndarray:
    """Cut leading/trailing parts quieter than ``floor_db`` below the clip's loudest 10 ms (and,
    with ``margin_db``, not that far above its noise floor)."""
    hop, loud = _loud_frames(x, sr, floor_db, margin_db)
    return x[loud[0] * hop : (loud[-1] + 1) * hop] if loud.size else x[:0]


def utterance_spans(
    x: np.ndarray, sr: int, *, floor_db: float = -40.0, min_gap: float = 0.3, margin_db: float = 0.0
) -> tuple[tuple[int, int], ...]:
    """Spans of a trimmed clip split at pauses of at least ``min_gap`` s quieter than ``floor_db``.

    A recorded description of several sentences is labelled sentence by sentence, as a listener
    would, not as one block that teaches the model to bridge half-second pauses.
    """
    hop, loud = _loud_frames(x, sr, floor_db, margin_db)
    if loud.size == 0:
        return ((0, x.size),)
    breaks = np.flatnonzero(np.diff(loud) > round(min_gap * 100))
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
    spans = [(int(s) * hop, int(e) * hop) for s, e in zip(starts, ends)]
    spans[-1] = (spans[-1][0], max(spans[-1][1], x.size))
    return tuple(spans)
