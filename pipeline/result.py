"""The result of segmenting one recording, and its ``opencast-ml/segments/v1`` JSON form.

``Result.to_dict`` writes the form of docs/design.md (with ``input.has_video``, every
``SegmentParams`` field, ``summary.no_speech`` and ``summary.dropped_voice``); ``validate`` checks a dict against the shipped
JSON Schema and then the cross-item rules the schema cannot express; ``Result.from_dict`` reads a
result file back. ``TrackIdentity`` is the Opencast track a caller says the recording is (for the
SMIL only); ``require_speech`` applies the ``no_speech`` choice.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

import numpy as np

from ocml.pipeline.errors import NoSpeech, OcmlError, ParamsError, TrackError
from ocml.pipeline.postprocess import DroppedVoice, Segment, SegmentParams
from ocml.pipeline.times import round_ms

SCHEMA_ID = "opencast-ml/segments/v1"
SCHEMA_RESOURCE = "segments-v1.schema.json"
NO_SPEECH_CHOICES = ("keep", "fail")
_FLAVOR = re.compile(r"[^/\s]+/[^/\s]+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


class InvalidResult(OcmlError, ValueError):
    """A result document does not follow ``opencast-ml/segments/v1``; names the first problem."""

    code = "invalid_result"


@dataclass(frozen=True)
class InputInfo:
    """The recording that was segmented; ``duration`` in seconds of decoded audio."""

    path: str
    duration: float
    sample_rate: int
    channels: int
    sha256: str
    has_video: bool


@dataclass(frozen=True)
class ModelInfo:
    """The SavedModel that produced the probabilities."""

    name: str
    version: str
    architecture: str
    sha256: str


@dataclass(frozen=True, kw_only=True)
class TrackIdentity:
    """The Opencast track a recording is, as far as the caller knows; ``None`` keeps our default.

    Opencast's ``process-smil`` picks a SMIL's tracks by ``track-flavor`` and finds them by a
    ``src`` equal to the track's URI in the media package, so only a caller that knows the media
    package can make a SMIL it accepts. Not part of the JSON result.
    """

    id: str | None = None
    flavor: str | None = None
    src: str | None = None

    def __post_init__(self) -> None:
        for name in ("id", "flavor", "src"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TrackError(f"track {name} must be a non-empty string, got {value!r}")
        if self.flavor is not None and not _FLAVOR.fullmatch(self.flavor):
            raise TrackError(f"track flavor must look like 'type/subtype', got {self.flavor!r}")
        if self.src is not None and not _URI.fullmatch(self.src):
            raise TrackError(
                f"track src must be an absolute URI without spaces (the track's URI in the media "
                f"package, e.g. https://…/track.mp4), got {self.src!r}"
            )


@dataclass(frozen=True)
class Result:
    """Everything one job produces; ``probabilities`` and ``energy`` (per 10 ms frame; energy in
    dB, kept when post-processing snaps or when asked for) are not part of the JSON."""

    input: InputInfo
    model: ModelInfo
    params: SegmentParams
    segments: list[Segment]
    probabilities: np.ndarray | None = field(compare=False)
    processing_seconds: float
    created: str
    track: TrackIdentity = TrackIdentity()
    energy: np.ndarray | None = field(default=None, compare=False)
    dropped_voice: DroppedVoice = DroppedVoice()

    @property
    def speech_seconds(self) -> float:
        """Total speech, seconds rounded to the millisecond."""
        return round_ms(sum(s.end - s.start for s in self.segments))

    def to_dict(self) -> dict[str, Any]:
        """The ``opencast-ml/segments/v1`` document, keys in a stable order."""
        duration = self.input.duration
        speech = self.speech_seconds
        return {
            "schema": SCHEMA_ID,
            "input": {
                "path": self.input.path,
                "duration": round_ms(duration),
                "sample_rate": int(self.input.sample_rate),
                "channels": int(self.input.channels),
                "sha256": self.input.sha256,
                "has_video": bool(self.input.has_video),
            },
            "model": {
                "name": self.model.name,
                "version": self.model.version,
                "architecture": self.model.architecture,
                "sha256": self.model.sha256,
            },
            "params": self.params.to_dict(),
            "segments": [
                {
                    "start": round_ms(s.start),
                    "end": round_ms(s.end),
                    "label": "speech",
                    "confidence": round(float(s.confidence), 4),
                }
                for s in self.segments
            ],
            "summary": {
                "speech_seconds": speech,
                "speech_ratio": round(min(speech / duration, 1.0), 4) if duration > 0 else 0.0,
                "segments": len(self.segments),
                "no_speech": not self.segments,
                "dropped_voice": {
                    "stretches": self.dropped_voice.stretches,
                    "seconds": round_ms(self.dropped_voice.seconds),
                },
            },
            "timing": {
                "processing_seconds": round_ms(self.processing_seconds),
                "realtime_factor": round(self.processing_seconds / duration, 6)
                if duration > 0
                else 0.0,
            },
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Result:
        """A ``Result`` (without probabilities) from a validated ``opencast-ml/segments/v1`` dict."""
        validate(d)
        i, m = d["input"], d["model"]
        return cls(
            input=InputInfo(
                path=i["path"],
                duration=float(i["duration"]),
                sample_rate=i["sample_rate"],
                channels=i["channels"],
                sha256=i["sha256"],
                has_video=i["has_video"],
            ),
            model=ModelInfo(
                name=m["name"],
                version=m["version"],
                architecture=m["architecture"],
                sha256=m["sha256"],
            ),
            params=SegmentParams(**d["params"]),
            segments=[
                Segment(float(s["start"]), float(s["end"]), float(s["confidence"]))
                for s in d["segments"]
            ],
            probabilities=None,
            processing_seconds=float(d["timing"]["processing_seconds"]),
            created=d["created"],
            dropped_voice=DroppedVoice(**d["summary"].get("dropped_voice", {})),
        )


def require_speech(result: Result, *, no_speech: str) -> None:
    """Raises ``NoSpeech`` when ``result`` has no segments and ``no_speech`` is ``"fail"``.

    With ``"keep"`` such a result stands: every writer renders it as "cut nothing".
    """
    if no_speech not in NO_SPEECH_CHOICES:
        raise ParamsError(
            f"no_speech must be one of {', '.join(map(repr, NO_SPEECH_CHOICES))}, got {no_speech!r}"
        )
    if no_speech == "fail" and not result.segments:
        raise NoSpeech(
            f"no speech found in {result.input.duration:.1f} s (no_speech = 'fail')",
            path=result.input.path,
        )


def utc_now() -> str:
    """The current time in the ``created`` form, e.g. ``2026-11-25T12:00:00Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.cache
def schema() -> dict[str, Any]:
    """The shipped JSON Schema of ``opencast-ml/segments/v1``."""
    return json.loads(
        (files("ocml.pipeline") / "schemas" / SCHEMA_RESOURCE).read_text(encoding="utf-8")
    )


@functools.cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema())


def validate(d: Any) -> None:
    """Raises ``InvalidResult`` naming the JSON path of the first problem in ``d``, if any."""
    errors = sorted(
        _validator().iter_errors(d), key=lambda e: (list(map(str, e.absolute_path)), e.message)
    )
    if errors:
        first = errors[0]
        raise InvalidResult(f"{first.json_path}: {first.message}")
    duration = d["input"]["duration"]
    previous_end = 0.0
    for n, s in enumerate(d["segments"]):
        where = f"$.segments[{n}]"
        if s["end"] <= s["start"]:
            raise InvalidResult(f"{where}: end {s['end']!r} is not after start {s['start']!r}")
        if s["start"] < previous_end:
            raise InvalidResult(
                f"{where}: start {s['start']!r} is before the end of the previous segment ({previous_end!r}); "
                "segments must be sorted and must not overlap"
            )
        if s["end"] > duration:
            raise InvalidResult(
                f"{where}: end {s['end']!r} is beyond the input duration {duration!r}"
            )
        previous_end = s["end"]
    if d["summary"]["segments"] != len(d["segments"]):
        raise InvalidResult(
            f"$.summary.segments: {d['summary']['segments']!r} but there are {len(d['segments'])} segments"
        )
    no_speech = d["summary"].get("no_speech", not d["segments"])
    if no_speech != (not d["segments"]):
        raise InvalidResult(
            f"$.summary.no_speech: {no_speech!r} but there are {len(d['segments'])} segments"
        )
