"""Speech probabilities per frame → speech segments (hysteresis, minimum durations, padding).

Modelled on pyannote's ``Binarize`` and SpeechBrain's VAD: one small method per step, each
testable on its own, all vectorised with numpy (a 10-hour recording is 3.6 M frames).

Times are handled as integer milliseconds between the steps, so comparisons with the
minimum durations are exact and every output time is rounded to the millisecond.

Frame convention: frames lie on the ``FrameGrid`` of the features (``pipeline.features``):
frame ``i`` has its centre at ``offset + i * hop`` (design.md: 12.5 ms + i × 10 ms) and covers
the ``hop`` around it, so frames ``[a, b)`` span ``[offset - hop/2 + a*hop, offset - hop/2 +
b*hop]``; with the pipeline's features frame 0 covers 7.5–17.5 ms.

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

The ``trim`` preset keeps one segment over the whole lecture, padded by 2 s on either side: the
edit Opencast users make most often, cutting the minutes before and after a lecture and keeping
every pause inside it. The lecture is found in two steps. Its *core* runs from the start of the
first sustained speech to the end of the last (sustained: at least ``trim_min_speech`` seconds of
speech within ``trim_window`` seconds). The core is then extended outwards across every speech
segment separated from it by a silence shorter than ``trim_bridge``, one after the other, so a
lecturer's sparse opening ("Good morning." … "Can you hear me?" … "Right.") and closing words
are kept, while speech beyond a wider silence (a cough a minute before, chatter after the end)
is cut. The trim preset bridges 10 s: on synthetic lectures whose opening and closing pauses
last up to 8 s it cut no lecture word, and it kept no chatter 15 s or more after the lecture nor
a cough a minute before it (``benchmarks/trim_bridge.py``, ``benchmarks/results/trim-bridge.md``).
``trim_min_speech = 0`` (every other preset) turns the step off; ``trim_bridge = 0`` keeps the
core only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from ocml.pipeline.checks import check_number
from ocml.pipeline.errors import ParamsError
from ocml.pipeline.features import PIPELINE_FEATURES, FrameGrid
from ocml.pipeline.times import floor_ms, to_ms

MAX_DURATION_PARAM = 3600.0
_DURATIONS = (
    "min_speech",
    "min_silence",
    "min_voice",
    "pad_before",
    "pad_after",
    "trim_min_speech",
    "trim_window",
    "trim_bridge",
    "snap_max",
)
MAX_SNAP_DB = 120.0


def _param(default: float, meaning: str) -> Any:
    """A ``SegmentParams`` field; ``meaning`` is the help text of its command-line option."""
    return field(default=default, metadata={"help": meaning})


@dataclass(frozen=True)
class SegmentParams:
    """Post-processing parameters; durations in seconds, thresholds are probabilities.

    The defaults (the generic ones, for a model without tuned values) are Silero VAD's
    ``get_speech_timestamps`` defaults: utterance-tight segments that keep 0.1 s pauses apart.
    A calibrated model scores within 0.01 F1 of its tuned values with them (``docs/models.md``).
    """

    threshold: float = _param(0.5, "Probability at which speech starts.")
    neg_threshold: float = _param(0.35, "Probability below which speech ends (hysteresis).")
    min_speech: float = _param(0.25, "Drop speech shorter than this.")
    min_silence: float = _param(0.1, "Bridge silences shorter than this.")
    min_voice: float = _param(0.0, "After bridging, drop voice stretches shorter than this.")
    pad_before: float = _param(0.03, "Added before each segment (overrides pad).")
    pad_after: float = _param(0.03, "Added after each segment (overrides pad).")
    trim_min_speech: float = _param(
        0.0,
        "Keep one segment, from the first to the last point where this much speech falls "
        "within trim_window (set by the trim preset: 3; 0 = off).",
    )
    trim_window: float = _param(0.0, "The window for trim_min_speech (the trim preset: 10).")
    trim_bridge: float = _param(
        0.0,
        "With trim_min_speech: extend the one segment outwards across speech separated from it "
        "by silences shorter than this, so sparse opening and closing words are kept (the trim "
        "preset: 10; 0 = the sustained speech only).",
    )
    snap_db: float = _param(
        0.0,
        "Move each segment's edges inwards past frames this many dB below its loudest frame "
        "(0 = off).",
    )
    snap_max: float = _param(0.0, "The most each edge moves for snap_db.")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = check_number(getattr(self, f.name), name=f.name, error=ParamsError)
            object.__setattr__(self, f.name, value)
        for name in ("threshold", "neg_threshold"):
            check_number(
                getattr(self, name), name=name, minimum=0.0, maximum=1.0, error=ParamsError
            )
        if self.neg_threshold > self.threshold:
            raise ParamsError(
                f"neg_threshold ({self.neg_threshold!r}) must not exceed threshold ({self.threshold!r})"
            )
        for name in _DURATIONS:
            check_number(
                getattr(self, name),
                name=name,
                minimum=0.0,
                maximum=MAX_DURATION_PARAM,
                unit="seconds",
                error=ParamsError,
            )
        check_number(
            self.snap_db,
            name="snap_db",
            minimum=0.0,
            maximum=MAX_SNAP_DB,
            unit="dB",
            error=ParamsError,
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

    @property
    def snaps(self) -> bool:
        """Whether segment edges are moved by the frames' energy (which the caller must then give)."""
        return self.snap_db > 0 and self.snap_max > 0

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


PAD_HELP = "Added before and after each segment (sets pad_before and pad_after)."


def parameter_help() -> dict[str, str]:
    """Every parameter name accepted on input (the fields and ``pad``) with its meaning, in order.

    The one definition the command-line options of ``ocml`` and ``ocml-train`` are made from.
    """
    out: dict[str, str] = {}
    for f in fields(SegmentParams):
        if f.name == "pad_before":
            out["pad"] = PAD_HELP
        out[f.name] = f.metadata["help"]
    return out


PRESETS: dict[str, SegmentParams] = {
    "default": SegmentParams(),
    "opencast": SegmentParams(min_silence=10.0, min_voice=60.0, pad_before=2.0, pad_after=0.0),
    "trim": SegmentParams(
        trim_min_speech=3.0, trim_window=10.0, trim_bridge=10.0, pad_before=2.0, pad_after=2.0
    ),
}


def preset(name: str) -> SegmentParams:
    """The named preset, or a ``ParamsError`` listing the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ParamsError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None


def resolve_params(
    *,
    preset_name: str = "default",
    tuned: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> SegmentParams:
    """Post-processing parameters: the preset, then a model's ``tuned`` values, then ``overrides``.

    The model's recommended values (tuned on the dev set at export) refine only the ``default``
    preset; a named preset such as ``opencast`` keeps its documented semantics.
    """
    params = preset(preset_name)
    if preset_name == "default" and tuned:
        params = SegmentParams.from_mapping(tuned, base=params)
    return SegmentParams.from_mapping(dict(overrides or {}), base=params)


@dataclass(frozen=True)
class Segment:
    """One stretch of speech; seconds, millisecond precision; mean speech probability."""

    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class DroppedVoice:
    """The voice stretches ``min_voice`` dropped (after bridging): how many, and their seconds.

    Kept so that a result without speech can say why: on a short clip the ``opencast`` preset
    (60 s minimum voice) drops every word."""

    stretches: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Binarized:
    """What ``Binarize`` made of a probability track: the segments, and the voice it dropped."""

    segments: list[Segment]
    dropped_voice: DroppedVoice


Spans = np.ndarray
"""``[n, 2]`` int64 array of ``[start, end)`` pairs, sorted and disjoint (frames or milliseconds)."""


def _runs(mask: np.ndarray) -> Spans:
    """Maximal runs of True in a boolean vector as ``[start, end)`` index pairs.

    Needs one temporary byte per element (where neighbours differ) besides indices per run.
    """
    if len(mask) == 0:
        return np.zeros((0, 2), np.int64)
    change = np.flatnonzero(mask[1:] != mask[:-1]) + 1
    rising = mask[change]
    starts, ends = change[rising], change[~rising]
    if mask[0]:
        starts = np.concatenate([[0], starts])
    if mask[-1]:
        ends = np.concatenate([ends, [len(mask)]])
    return np.stack([starts, ends], axis=1).astype(np.int64)


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


class Binarize:
    """Turns a speech-probability track into speech segments with fixed ``SegmentParams``."""

    def __init__(self, params: SegmentParams) -> None:
        self.params = params

    def __call__(
        self,
        probs: np.ndarray,
        *,
        duration: float,
        grid: FrameGrid | None = None,
        energy: np.ndarray | None = None,
    ) -> list[Segment]:
        """Segments of ``probs`` (one probability per frame of ``grid``) within ``[0, duration]``.

        ``grid`` defaults to the frames of the pipeline's features (10 ms hop, first centre 12.5 ms).
        ``energy`` (dB per frame, ``features.frame_energy_db``) is needed when the params snap.
        """
        return self.binarize(probs, duration=duration, grid=grid, energy=energy).segments

    def binarize(
        self,
        probs: np.ndarray,
        *,
        duration: float,
        grid: FrameGrid | None = None,
        energy: np.ndarray | None = None,
    ) -> Binarized:
        """The segments of ``probs``, as ``__call__`` makes them, and the voice ``min_voice``
        dropped."""
        probs = self.check(probs)
        check_number(duration, name="duration", minimum=0.0)
        grid = PIPELINE_FEATURES.grid if grid is None else grid
        p = self.params
        if p.snaps and (energy is None or len(energy) != len(probs)):
            got = "none" if energy is None else f"{len(energy)} values"
            raise ValueError(
                f"snap_db {p.snap_db!r} needs one energy value per frame ({len(probs)}), got {got}"
            )
        duration_ms = floor_ms(duration)
        spans = self.to_ms(self.hysteresis(probs), grid)
        spans = self.drop_short(spans, to_ms(p.min_speech))
        spans = self.bridge(spans, to_ms(p.min_silence), duration_ms=duration_ms)
        voice = spans
        spans = self.drop_short_voice(voice, to_ms(p.min_voice), duration_ms=duration_ms)
        dropped_ms = int((voice[:, 1] - voice[:, 0]).sum() - (spans[:, 1] - spans[:, 0]).sum())
        dropped = DroppedVoice(len(voice) - len(spans), dropped_ms / 1000)
        if p.trims:
            spans = self.trim(
                spans, to_ms(p.trim_min_speech), to_ms(p.trim_window), to_ms(p.trim_bridge)
            )
        if p.snaps:
            spans = self.snap(spans, energy, p.snap_db, to_ms(p.snap_max), grid)
        spans = self.pad(spans, to_ms(p.pad_before), to_ms(p.pad_after))
        spans = self.merge(spans)
        spans = self.clip(spans, duration_ms)
        confidence = self.confidence(probs, spans, grid)
        segments = [
            Segment(start=int(s) / 1000, end=int(e) / 1000, confidence=round(float(c), 3))
            for (s, e), c in zip(spans, confidence)
        ]
        return Binarized(segments, dropped)

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
        # The first frame with p >= threshold in a run starts a run of such frames (the frame
        # before it is below threshold), so those runs' starts are all the onsets needed: an
        # index per run, not one per speech frame (8 bytes each, most of a lecture's frames).
        high = _runs(probs >= self.params.threshold)[:, 0]
        if len(runs) == 0 or len(high) == 0:
            return np.zeros((0, 2), np.int64)
        first = np.searchsorted(high, runs[:, 0])
        found = first < len(high)
        onset = np.where(found, high[np.minimum(first, len(high) - 1)], runs[:, 1])
        keep = onset < runs[:, 1]
        return np.stack([onset[keep], runs[keep, 1]], axis=1).astype(np.int64)

    @staticmethod
    def to_ms(frames: Spans, grid: FrameGrid) -> Spans:
        """Frame spans ``[a, b)`` → ``[offset - hop/2 + a*hop, offset - hop/2 + b*hop]`` in ms."""
        hop, offset = grid.hop, grid.offset
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
    def trim(spans: Spans, min_speech_ms: int, window_ms: int, bridge_ms: int = 0) -> Spans:
        """One span over the lecture: its sustained core, extended outwards across every span
        separated from it by less than ``bridge_ms`` of silence; none if there is no core.

        The core runs from the first sustained onset to the last sustained offset: a span's
        start is a sustained onset when the ``window_ms`` from it hold at least ``min_speech_ms``
        of speech; a span's end is a sustained offset when the ``window_ms`` before it do. If
        any window holds that much speech, both an onset and a later offset exist.
        """
        if len(spans) == 0:
            return spans
        starts, ends = spans[:, 0], spans[:, 1]
        onset = _speech_between(spans, starts, starts + window_ms) >= min_speech_ms
        offset = _speech_between(spans, ends - window_ms, ends) >= min_speech_ms
        if not onset.any():
            return spans[:0]
        first, last = np.flatnonzero(onset)[0], np.flatnonzero(offset)[-1]
        # gap k lies between spans k and k + 1; the core extends up to the nearest wide ones
        wide = np.flatnonzero(starts[1:] - ends[:-1] >= bridge_ms)
        before, after = wide[wide < first], wide[wide >= last]
        first = before[-1] + 1 if len(before) else 0
        last = after[0] if len(after) else len(spans) - 1
        return np.array([[starts[first], ends[last]]], np.int64)

    @staticmethod
    def snap(
        spans: Spans, energy: np.ndarray, drop_db: float, max_ms: int, grid: FrameGrid
    ) -> Spans:
        """Moves each span's edges inwards, a frame at a time, past frames more than ``drop_db``
        below the span's loudest frame: at most ``max_ms`` per edge, keeping at least one frame.

        The model's decisions trail off into word endings and room tails that are already quiet;
        the energy (dB per frame) finds where the voice itself ended. Frames are those whose
        centres lie in ``[start, end)``; the end moves first, then the start.
        """
        n = len(energy)
        if len(spans) == 0 or n == 0:
            return spans
        hop_ms, offset_ms = grid.hop * 1000.0, grid.offset * 1000.0
        first = np.clip(np.ceil((spans[:, 0] - offset_ms) / hop_ms - 1e-9), 0, n).astype(np.int64)
        last = np.clip(np.ceil((spans[:, 1] - offset_ms) / hop_ms - 1e-9), 0, n).astype(np.int64)
        last = np.maximum(last, first)
        floor = np.array(
            [energy[a:b].max() - drop_db if b > a else np.inf for a, b in zip(first, last)]
        )
        steps = int(max_ms // hop_ms)
        moved_end = np.zeros(len(spans), np.int64)
        going = np.ones(len(spans), bool)
        for _ in range(steps):
            i = last - 1 - moved_end
            going &= (i > first) & (energy[np.clip(i, 0, n - 1)] < floor)
            moved_end += going
        moved_start = np.zeros(len(spans), np.int64)
        going = np.ones(len(spans), bool)
        for _ in range(steps):
            i = first + moved_start
            going &= (i < last - moved_end - 1) & (energy[np.clip(i, 0, n - 1)] < floor)
            moved_start += going
        shift = np.round(np.stack([moved_start, -moved_end], axis=1) * hop_ms).astype(np.int64)
        return spans + shift

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
    def confidence(probs: np.ndarray, spans: Spans, grid: FrameGrid) -> np.ndarray:
        """Mean probability over the frames whose centres lie in each span (the nearest frame if none).

        One float64 mean per span over a view of ``probs``: no array as long as the recording
        (a running sum of every frame would be 16 bytes per frame, four times ``probs`` itself).
        """
        if len(spans) == 0 or len(probs) == 0:
            return np.zeros(len(spans))
        hop_ms, offset_ms = grid.hop * 1000.0, grid.offset * 1000.0
        first = np.ceil((spans[:, 0] - offset_ms) / hop_ms - 1e-9).astype(np.int64)
        last = np.floor((spans[:, 1] - offset_ms) / hop_ms + 1e-9).astype(np.int64) + 1
        first = np.clip(first, 0, len(probs) - 1)
        last = np.clip(last, first + 1, len(probs))
        sums = np.array([probs[a:b].sum(dtype=np.float64) for a, b in zip(first, last)])
        return sums / (last - first)
