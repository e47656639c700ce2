"""Speech probabilities per frame → speech segments (hysteresis, minimum durations, padding).

Modelled on pyannote's ``Binarize`` and SpeechBrain's VAD: one small method per step, each
testable on its own, all vectorised with numpy (a 10-hour recording is 3.6 M frames).

Times are handled as integer milliseconds between the steps, so comparisons with the
minimum durations are exact and every output time is rounded to the millisecond.

Frame convention: frame ``i`` has its centre at ``offset + i * hop`` (design.md: 12.5 ms +
i × 10 ms) and covers the ``hop`` around it, so frames ``[a, b)`` span
``[offset - hop/2 + a*hop, offset - hop/2 + b*hop]``; with the defaults frame 0 covers
7.5–17.5 ms.

The ``opencast`` preset reproduces Opencast's ``silence`` workflow operation with its shipped
configuration. Sources (opencast/opencast):

* ``etc/org.opencastproject.silencedetection.impl.SilenceDetectionServiceImpl.cfg`` ships
  ``silence.pre.length = 2000``, ``silence.threshold.db = -40dB``,
  ``silence.min.length = 10000`` and ``voice.min.length = 60000`` (milliseconds). The
  compiled-in fallback of ``silence.min.length`` in ``FFmpegSilenceDetector.java`` is 5000;
  the shipped file overrides it.
* ``modules/silencedetection-impl/.../ffmpeg/FFmpegSilenceDetector.java`` runs FFmpeg's
  ``silencedetect=noise=<db>:duration=<silence.min.length>``; the voice between two detected
  silences is kept when it lasts more than ``voice.min.length`` and then starts
  ``silence.pre.length`` before the silence ends (clipped at 0) and ends exactly where the next
  silence starts (no padding after). When no silence at all is found the whole track is kept.

Mapped here as ``min_silence=10`` (silences shorter than 10 s, including those at the start or
end of the recording, are bridged), ``min_voice=60`` (stretches shorter than 60 s are dropped,
except one covering the whole recording), ``pad_before=2``, ``pad_after=0``. The decibel
threshold has no counterpart: the model's probability replaces it.

The ``trim`` preset keeps one segment, from the start of the first *sustained* speech to the end
of the last (sustained: at least ``trim_min_speech`` seconds of speech within ``trim_window``
seconds), padded by 2 s on either side: the edit Opencast users make most often, cutting the
minutes before and after a lecture, while a lone cough or a short announcement before it and
every pause inside it are kept as they are. ``trim_min_speech = 0`` (every other preset) turns
the step off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from ocml.pipeline.errors import ParamsError

MAX_DURATION_PARAM = 3600.0
_DURATIONS = (
    "min_speech",
    "min_silence",
    "min_voice",
    "pad_before",
    "pad_after",
    "trim_min_speech",
    "trim_window",
)


@dataclass(frozen=True)
class SegmentParams:
    """Post-processing parameters; durations in seconds, thresholds are probabilities."""

    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_speech: float = 0.25
    min_silence: float = 0.5
    min_voice: float = 0.0
    pad_before: float = 0.1
    pad_after: float = 0.1
    trim_min_speech: float = 0.0
    trim_window: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _number(f.name, getattr(self, f.name)))
        for name in ("threshold", "neg_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ParamsError(f"{name} must lie in [0, 1], got {value!r}")
        if self.neg_threshold > self.threshold:
            raise ParamsError(
                f"neg_threshold ({self.neg_threshold!r}) must not exceed threshold ({self.threshold!r})"
            )
        for name in _DURATIONS:
            value = getattr(self, name)
            if not 0.0 <= value <= MAX_DURATION_PARAM:
                raise ParamsError(
                    f"{name} must be a duration in [0, {MAX_DURATION_PARAM:g}] seconds, got {value!r}"
                )
        if self.trim_min_speech > 0 and self.trim_window < self.trim_min_speech:
            raise ParamsError(
                f"trim_window ({self.trim_window!r} s) must be at least trim_min_speech "
                f"({self.trim_min_speech!r} s): that much speech cannot fit in a shorter window"
            )

    @property
    def trims(self) -> bool:
        """Whether the segments are reduced to one, from the first to the last sustained speech."""
        return self.trim_min_speech > 0

    @classmethod
    def from_mapping(
        cls, d: Mapping[str, Any], *, base: SegmentParams | None = None
    ) -> SegmentParams:
        """``base`` (default: the ``default`` preset) with the values of ``d`` laid over it.

        ``pad`` sets both ``pad_before`` and ``pad_after``; an explicit ``pad_before`` or
        ``pad_after`` in the same mapping wins over it. Unknown keys are refused.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - {"pad"})
        if unknown:
            raise ParamsError(
                f"unknown post-processing parameter(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known | {'pad'}))}"
            )
        changes = dict(d)
        if "pad" in changes:
            pad = changes.pop("pad")
            changes = {"pad_before": pad, "pad_after": pad, **changes}
        return replace(PRESETS["default"] if base is None else base, **changes)

    def to_dict(self) -> dict[str, float]:
        """All parameters by name, in declaration order."""
        return asdict(self)


def _number(name: str, value: Any) -> float:
    """``value`` as a finite float, or a ``ParamsError`` quoting it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParamsError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ParamsError(f"{name} must be finite, got {value!r}")
    return value


PRESETS: dict[str, SegmentParams] = {
    "default": SegmentParams(),
    "opencast": SegmentParams(min_silence=10.0, min_voice=60.0, pad_before=2.0, pad_after=0.0),
    "trim": SegmentParams(trim_min_speech=3.0, trim_window=10.0, pad_before=2.0, pad_after=2.0),
}


def preset(name: str) -> SegmentParams:
    """The named preset, or a ``ParamsError`` listing the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ParamsError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None


@dataclass(frozen=True)
class Segment:
    """One stretch of speech; seconds, millisecond precision; mean speech probability."""

    start: float
    end: float
    confidence: float


Spans = np.ndarray
"""``[n, 2]`` int64 array of ``[start, end)`` pairs, sorted and disjoint (frames or milliseconds)."""


def _runs(mask: np.ndarray) -> Spans:
    """Maximal runs of True in a boolean vector as ``[start, end)`` index pairs."""
    edges = np.diff(mask.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1).astype(
        np.int64
    )


def _speech_between(spans: Spans, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Milliseconds of speech in each window ``[lo[k], hi[k]]`` (``spans`` sorted and disjoint)."""
    return _speech_until(spans, hi) - _speech_until(spans, lo)


def _speech_until(spans: Spans, t: np.ndarray) -> np.ndarray:
    """Milliseconds of speech before each time in ``t``."""
    lengths = spans[:, 1] - spans[:, 0]
    before = np.concatenate([[0], np.cumsum(lengths)])
    i = np.searchsorted(spans[:, 0], t, side="right") - 1
    inside = np.clip(t - spans[np.maximum(i, 0), 0], 0, lengths[np.maximum(i, 0)])
    return np.where(i >= 0, before[np.maximum(i, 0)] + inside, 0)


def _ms(seconds: float) -> int:
    return int(math.floor(seconds * 1000.0 + 0.5))


class Binarize:
    """Turns a speech-probability track into speech segments with fixed ``SegmentParams``."""

    def __init__(self, params: SegmentParams) -> None:
        self.params = params

    def __call__(
        self, probs: np.ndarray, *, duration: float, hop: float = 0.01, offset: float = 0.0125
    ) -> list[Segment]:
        """Segments of ``probs`` (one probability per frame) within ``[0, duration]`` seconds."""
        probs = self.check(probs)
        if not (math.isfinite(duration) and duration >= 0):
            raise ValueError(f"duration must be a finite number of seconds >= 0, got {duration!r}")
        if not (hop > 0 and math.isfinite(hop) and math.isfinite(offset)):
            raise ValueError(
                f"hop must be > 0 and offset finite, got hop={hop!r}, offset={offset!r}"
            )
        p = self.params
        duration_ms = int(math.floor(duration * 1000.0 + 1e-6))
        spans = self.to_ms(self.hysteresis(probs), hop=hop, offset=offset)
        spans = self.drop_short(spans, _ms(p.min_speech))
        spans = self.bridge(spans, _ms(p.min_silence), duration_ms=duration_ms)
        spans = self.drop_short_voice(spans, _ms(p.min_voice), duration_ms=duration_ms)
        if p.trims:
            spans = self.trim(spans, _ms(p.trim_min_speech), _ms(p.trim_window))
        spans = self.pad(spans, _ms(p.pad_before), _ms(p.pad_after))
        spans = self.merge(spans)
        spans = self.clip(spans, duration_ms)
        confidence = self.confidence(probs, spans, hop=hop, offset=offset)
        return [
            Segment(start=int(s) / 1000, end=int(e) / 1000, confidence=round(float(c), 3))
            for (s, e), c in zip(spans, confidence)
        ]

    @staticmethod
    def check(probs: np.ndarray) -> np.ndarray:
        """``probs`` as a 1-D float array; refuses other shapes and non-finite values."""
        probs = np.asarray(probs)
        if probs.ndim != 1:
            raise ValueError(
                f"probabilities must be one value per frame (1-D), got shape {probs.shape}"
            )
        if not np.issubdtype(probs.dtype, np.floating):
            probs = probs.astype(np.float32)
        bad = int(np.count_nonzero(~np.isfinite(probs)))
        if bad:
            raise ValueError(f"{bad} of {len(probs)} speech probabilities are NaN or infinite")
        return probs

    def hysteresis(self, probs: np.ndarray) -> Spans:
        """Frame spans of speech: starts where p ≥ threshold, continues while p ≥ neg_threshold.

        Every maximal run with p ≥ neg_threshold holds speech from its first frame with
        p ≥ threshold to its end, or none if no frame reaches threshold.
        """
        runs = _runs(probs >= self.params.neg_threshold)
        high = np.flatnonzero(probs >= self.params.threshold)
        if len(runs) == 0 or len(high) == 0:
            return np.zeros((0, 2), np.int64)
        first = np.searchsorted(high, runs[:, 0])
        found = first < len(high)
        onset = np.where(found, high[np.minimum(first, len(high) - 1)], runs[:, 1])
        keep = onset < runs[:, 1]
        return np.stack([onset[keep], runs[keep, 1]], axis=1).astype(np.int64)

    @staticmethod
    def to_ms(frames: Spans, *, hop: float, offset: float) -> Spans:
        """Frame spans ``[a, b)`` → ``[offset - hop/2 + a*hop, offset - hop/2 + b*hop]`` in ms."""
        origin = (offset - hop / 2) * 1000.0
        return np.floor(origin + frames * (hop * 1000.0) + 0.5).astype(np.int64).reshape(-1, 2)

    @staticmethod
    def drop_short(spans: Spans, min_ms: int) -> Spans:
        """Drops speech spans shorter than ``min_ms``."""
        return spans[spans[:, 1] - spans[:, 0] >= min_ms]

    @staticmethod
    def bridge(spans: Spans, min_gap_ms: int, *, duration_ms: int) -> Spans:
        """Fills silences shorter than ``min_gap_ms``, also those before the first and after the last span."""
        if len(spans) == 0:
            return spans
        gaps = spans[1:, 0] - spans[:-1, 1]
        cut = np.flatnonzero(gaps >= min_gap_ms)
        starts = np.concatenate([spans[:1, 0], spans[cut + 1, 0]])
        ends = np.concatenate([spans[cut, 1], spans[-1:, 1]])
        if starts[0] < min_gap_ms:
            starts[0] = 0
        if duration_ms - ends[-1] < min_gap_ms:
            ends[-1] = max(ends[-1], duration_ms)
        return np.stack([starts, ends], axis=1)

    @staticmethod
    def drop_short_voice(spans: Spans, min_ms: int, *, duration_ms: int) -> Spans:
        """Drops voice stretches shorter than ``min_ms`` (after bridging), unless one covers the recording."""
        whole = (spans[:, 0] <= 0) & (spans[:, 1] >= duration_ms)
        return spans[(spans[:, 1] - spans[:, 0] >= min_ms) | whole]

    @staticmethod
    def trim(spans: Spans, min_speech_ms: int, window_ms: int) -> Spans:
        """One span from the first to the last sustained speech, or none if there is none.

        A span's start is a sustained onset when the ``window_ms`` from it hold at least
        ``min_speech_ms`` of speech; a span's end is a sustained offset when the ``window_ms``
        before it do. If any window holds that much speech, both an onset and a later offset exist.
        """
        if len(spans) == 0:
            return spans
        starts, ends = spans[:, 0], spans[:, 1]
        onset = _speech_between(spans, starts, starts + window_ms) >= min_speech_ms
        offset = _speech_between(spans, ends - window_ms, ends) >= min_speech_ms
        if not onset.any():
            return spans[:0]
        return np.array([[starts[onset][0], ends[offset][-1]]], np.int64)

    @staticmethod
    def pad(spans: Spans, before_ms: int, after_ms: int) -> Spans:
        """Widens every span by ``before_ms`` at its start and ``after_ms`` at its end."""
        return spans + np.array([-before_ms, after_ms], np.int64)

    @staticmethod
    def merge(spans: Spans) -> Spans:
        """Merges spans that overlap or touch (padding can make neighbours overlap)."""
        if len(spans) < 2:
            return spans
        reach = np.maximum.accumulate(spans[:, 1])
        first = np.flatnonzero(np.concatenate([[True], spans[1:, 0] > reach[:-1]]))
        return np.stack([spans[first, 0], np.maximum.reduceat(spans[:, 1], first)], axis=1)

    @staticmethod
    def clip(spans: Spans, duration_ms: int) -> Spans:
        """Clips spans to ``[0, duration_ms]`` and drops those left empty."""
        clipped = np.clip(spans, 0, duration_ms)
        return clipped[clipped[:, 1] > clipped[:, 0]]

    @staticmethod
    def confidence(probs: np.ndarray, spans: Spans, *, hop: float, offset: float) -> np.ndarray:
        """Mean probability over the frames whose centres lie in each span (the nearest frame if none)."""
        if len(spans) == 0 or len(probs) == 0:
            return np.zeros(len(spans))
        total = np.concatenate([[0.0], np.cumsum(probs, dtype=np.float64)])
        hop_ms, offset_ms = hop * 1000.0, offset * 1000.0
        first = np.ceil((spans[:, 0] - offset_ms) / hop_ms - 1e-9).astype(np.int64)
        last = np.floor((spans[:, 1] - offset_ms) / hop_ms + 1e-9).astype(np.int64) + 1
        first = np.clip(first, 0, len(probs) - 1)
        last = np.clip(last, first + 1, len(probs))
        return (total[last] - total[first]) / (last - first)
