"""Speech label files: read every format we write or accept, write the simple forms.

A label file is one of:
``.json`` — our result JSON (``opencast-ml/segments/v1``) or ``{"duration": s, "speech": [[s, e], ...]}``;
``.txt`` — an Audacity label track (``start<TAB>end<TAB>label``; non-speech names are skipped);
``.rttm`` — NIST RTTM ``SPEAKER`` lines (speakers are merged into one speech track);
``.smil`` — an Opencast SMIL whose ``par`` elements are the kept (speech) parts.
Training (``models.datasets``) and the player's reference and corrections share this one reader.

A result JSON is a model's output, not a person's labels: ``Labels.model`` names the model that
wrote it, so training can refuse it unless asked. The labels a person saved in the player are
``NAME.labels.json`` and ``NAME.labels.txt`` beside the recording ``NAME.ext``
(``CORRECTED_SUFFIXES``), which training prefers to every other label file.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ocml.pipeline.errors import OcmlError
from ocml.pipeline.times import round_ms

LABEL_SUFFIXES = (".json", ".txt", ".rttm", ".smil")
CORRECTED_SUFFIXES = (".labels.json", ".labels.txt")
"""What the player's ``s`` writes beside ``NAME.ext``: ``NAME.labels.json``, ``NAME.labels.txt``."""
NON_SPEECH_LABELS = {
    "silence",
    "non-speech",
    "nonspeech",
    "non_speech",
    "noise",
    "music",
    "sil",
    "ns",
}
TOLERANCE = 0.02
"""Seconds a label may reach past the recording's end (encoder padding, rounding) before it is an error."""


class LabelError(OcmlError):
    """A label file is malformed or disagrees with its recording."""

    code = "bad_labels"


@dataclass(frozen=True)
class Labels:
    """Speech intervals in seconds, sorted and non-overlapping; ``duration`` when the file states
    it; ``model`` ("name version") when the file is a model's result JSON rather than labels."""

    speech: list[tuple[float, float]]
    duration: float | None = None
    model: str | None = None


def read_labels(path: Path | str) -> Labels:
    """Read a label file of any supported format; raises ``LabelError`` naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise LabelError("label file not found", path=str(path))
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LabelError(f"cannot read label file: {err}", path=str(path)) from err
    readers = {
        ".json": _read_json,
        ".txt": _read_audacity,
        ".rttm": _read_rttm,
        ".smil": _read_smil,
    }
    if suffix not in readers:
        raise LabelError(
            f"unknown label format {suffix!r}; use one of {', '.join(LABEL_SUFFIXES)}",
            path=str(path),
        )
    speech, duration, model = readers[suffix](text, str(path))
    return Labels(_validated(speech, duration, str(path), merge=suffix == ".rttm"), duration, model)


def _number(value: object, what: str, path: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise LabelError(f"{what} {value!r} is not a number", path=path) from err
    if not math.isfinite(x):
        raise LabelError(f"{what} {value!r} is not finite", path=path)
    return x


Read = tuple[list[tuple[float, float]], float | None, str | None]
"""What each format's reader returns: speech intervals, the stated duration, the writing model."""


def _read_json(text: str, path: str) -> Read:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise LabelError(f"not valid JSON: {err}", path=path) from err
    if not isinstance(data, dict):
        raise LabelError(f"expected a JSON object, got {type(data).__name__}", path=path)
    model = None
    if "segments" in data:
        duration = (data.get("input") or {}).get("duration")
        model = _writer(data)
        rows = [
            (s.get("start"), s.get("end"))
            for s in data["segments"]
            if isinstance(s, dict) and s.get("label", "speech") == "speech"
        ]
        if any(not isinstance(s, dict) for s in data["segments"]):
            raise LabelError(
                "every entry of 'segments' must be an object with start and end", path=path
            )
    elif "speech" in data:
        duration = data.get("duration")
        if not isinstance(data["speech"], list) or any(
            not isinstance(r, (list, tuple)) or len(r) != 2 for r in data["speech"]
        ):
            raise LabelError("'speech' must be a list of [start, end] pairs", path=path)
        rows = [tuple(r) for r in data["speech"]]
    else:
        raise LabelError(
            "JSON labels need 'speech' (simple form) or 'segments' (result JSON)", path=path
        )
    dur = None if duration is None else _number(duration, "duration", path)
    return [(_number(s, "start", path), _number(e, "end", path)) for s, e in rows], dur, model


def _writer(data: dict[str, object]) -> str:
    """The model a result document names, as "name version" ("a model" if it names none)."""
    model = data.get("model")
    if not isinstance(model, dict):
        return "a model"
    return " ".join(str(model[k]) for k in ("name", "version") if model.get(k)) or "a model"


def _read_audacity(text: str, path: str) -> Read:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith(
            "\\"
        ):  # blank, or Audacity's spectral-selection line
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise LabelError(f"line {n}: expected start<TAB>end<TAB>label, got {line!r}", path=path)
        label = parts[2].strip().lower() if len(parts) > 2 else "speech"
        if label not in NON_SPEECH_LABELS:
            out.append(
                (
                    _number(parts[0], f"line {n} start", path),
                    _number(parts[1], f"line {n} end", path),
                )
            )
    return out, None, None


def _read_rttm(text: str, path: str) -> Read:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] != "SPEAKER":
            continue
        if len(parts) < 5:
            raise LabelError(
                f"line {n}: an RTTM SPEAKER line needs at least 5 fields, got {line!r}", path=path
            )
        start = _number(parts[3], f"line {n} onset", path)
        dur = _number(parts[4], f"line {n} duration", path)
        out.append((start, start + dur))
    return out, None, None


def _clock(value: str | None, path: str) -> float:
    """A SMIL clock value: ``1234ms``, ``12.5s``, ``npt=12.5`` or plain seconds."""
    if value is None:
        raise LabelError("a SMIL clip has no clipBegin/clipEnd", path=path)
    v = value.strip().removeprefix("npt=")
    if v.endswith("ms"):
        return _number(v[:-2], "SMIL time", path) / 1000
    return _number(v.removesuffix("s"), "SMIL time", path)


def _read_smil(text: str, path: str) -> Read:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise LabelError(f"not valid SMIL/XML: {err}", path=path) from err
    duration = None
    for meta in root.iter():
        if meta.tag.endswith("meta") and meta.get("name") == "track-duration":
            duration = _clock(meta.get("content"), path)
    out = []
    for par in (e for e in root.iter() if e.tag.endswith("}par") or e.tag == "par"):
        clips = [c for c in par if c.get("clipBegin") is not None or c.get("clipEnd") is not None]
        if clips:
            out.append(
                (_clock(clips[0].get("clipBegin"), path), _clock(clips[0].get("clipEnd"), path))
            )
    return out, duration, None


def _validated(
    speech: list[tuple[float, float]], duration: float | None, path: str, *, merge: bool
) -> list[tuple[float, float]]:
    """Check each interval and their order; RTTM (several speakers may overlap) is merged instead."""
    if duration is not None and duration <= 0:
        raise LabelError(f"duration {duration!r} must be positive", path=path)
    for s, e in speech:
        if s < 0 or e <= s:
            raise LabelError(f"segment [{s}, {e}] must have 0 <= start < end", path=path)
        if duration is not None and e > duration + TOLERANCE:
            raise LabelError(
                f"segment [{s}, {e}] ends after the recording's duration {duration}", path=path
            )
    if merge:
        return merge_intervals(speech)
    for (s0, e0), (s1, e1) in zip(speech, speech[1:]):
        if s1 < s0:
            raise LabelError(
                f"segments are not sorted: [{s1}, {e1}] comes after [{s0}, {e0}]", path=path
            )
        if s1 < e0:
            raise LabelError(f"segments overlap: [{s0}, {e0}] and [{s1}, {e1}]", path=path)
    return [(float(s), float(e)) for s, e in speech]


def merge_intervals(speech: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted union of intervals."""
    out: list[list[float]] = []
    for s, e in sorted(speech):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def render_audacity_labels(speech: list[tuple[float, float]]) -> bytes:
    """An Audacity label track: ``start<TAB>end<TAB>speech`` per interval, seconds with 6 decimals."""
    return "".join(f"{s:.6f}\t{e:.6f}\tspeech\n" for s, e in speech).encode("utf-8")


def render_labels_json(speech: list[tuple[float, float]], *, duration: float) -> bytes:
    """The simple labels JSON ``{"duration", "speech": [[s, e], ...]}``, seconds to the millisecond."""
    doc = {
        "duration": round_ms(duration),
        "speech": [[round_ms(s), round_ms(e)] for s, e in speech],
    }
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")
