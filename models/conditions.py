"""Frame metrics by recording condition, read from each data folder's ``manifest.json``.

The validation sets' manifests (``../shared/data/README.md``) describe how every recording was
mixed: SNR, reverberation RT60, level, music spans, noise events and each utterance's speaker
role. Every frame of the pool is put into a group on each axis and counted there:

- ``snr``, ``reverberation``, ``level``, ``music in recording``: the whole recording, by its
  SNR band, RT60 band, level and whether it holds music at all;
- ``during music``: frames inside / outside the manifest's music spans (music never overlaps
  speech in these sets, so what counts there is the false-alarm rate);
- ``events``: frames inside each kind of noise event (clicks, bursts, alerts …; events may
  overlap, so these groups may too) and frames in none;
- ``speaker``: frames within ``NEAR_SPEECH`` s of a reference segment, given to the nearest
  segment's speaker (``main`` or ``second``, from the utterance that starts it), and frames
  farther from any speech;
- ``channel``, ``noise``: the whole recording, by the channel it passed through and the kind of
  its background (``ocml-train synth``'s manifests).

Recordings the manifest does not describe (or folders without one) are left out of the groups.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ocml.models.errors import TrainingInputError
from ocml.models.scoring import Counts, FileRun, count_frames, pool

MANIFEST_FILE = "manifest.json"
NEAR_SPEECH = 1.0
"""Seconds around reference speech whose frames count for that speech's speaker."""
START_TOLERANCE = 0.005
"""Seconds by which a reference segment may start before the utterance it belongs to."""
AXES = (
    "snr",
    "reverberation",
    "level",
    "music in recording",
    "during music",
    "events",
    "speaker",
    "channel",
    "noise",
)


def read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """The manifest's recordings by audio file name; empty when the folder has no manifest."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        recordings = data["recordings"]
        return {r["audio"] if "audio" in r else f"{r['name']}.flac": r for r in recordings}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise TrainingInputError(
            f"{path}: not a data manifest with a 'recordings' list ({type(err).__name__}: {err})"
        ) from err


def load_conditions(sets: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Manifest entry of every described recording, keyed ``set/file`` like ``FileRun.key``."""
    out = {}
    for ds in sets:
        manifest = read_manifest(ds.path)
        for item in ds.items:
            if item.audio.name in manifest:
                out[f"{ds.name}/{item.audio.name}"] = manifest[item.audio.name]
    return out


def snr_band(snr_db: float | None) -> str:
    """``< 10 dB``, ``10–19 dB``, ``≥ 20 dB`` or ``no noise`` (SNR not given)."""
    if snr_db is None:
        return "no noise"
    if snr_db < 10:
        return "< 10 dB"
    return "10–19 dB" if snr_db < 20 else "≥ 20 dB"


def reverberation_band(rt60: float | None) -> str:
    """``dry`` (no reverberation added), ``RT60 < 0.5 s``, ``RT60 0.5–0.8 s`` or ``RT60 ≥ 0.8 s``."""
    if rt60 is None or rt60 <= 0:
        return "dry"
    if rt60 < 0.5:
        return "RT60 < 0.5 s"
    return "RT60 0.5–0.8 s" if rt60 < 0.8 else "RT60 ≥ 0.8 s"


def _inside(t: np.ndarray, spans: Sequence[Sequence[float]]) -> np.ndarray:
    """Frames whose centre lies in any of ``spans``."""
    mask = np.zeros(len(t), bool)
    for s, e in spans:
        mask |= (t >= s) & (t < e)
    return mask


def segment_roles(
    speech: Sequence[tuple[float, float]], utterances: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Speaker role of each reference segment: that of the last utterance starting at or before it."""
    starts = np.array([float(u["start"]) for u in utterances])
    order = np.argsort(starts)
    starts, roles = starts[order], [str(utterances[i].get("role", "unknown")) for i in order]
    out = []
    for s, _ in speech:
        i = int(np.searchsorted(starts, s + START_TOLERANCE, side="right")) - 1
        out.append(roles[i] if i >= 0 else "unknown")
    return out


def speaker_groups(
    t: np.ndarray, speech: Sequence[tuple[float, float]], roles: Sequence[str]
) -> dict[str, np.ndarray]:
    """Frames within ``NEAR_SPEECH`` s of speech by the nearest segment's role, and the rest."""
    far = f"> {NEAR_SPEECH:g} s from speech"
    if not speech:
        return {far: np.ones(len(t), bool)}
    starts, ends = np.asarray(speech, float).T
    idx = np.searchsorted(starts, t, side="right") - 1
    before = np.maximum(idx, 0)
    after = np.minimum(idx + 1, len(starts) - 1)
    d_before = np.where(idx >= 0, np.maximum(0.0, t - ends[before]), np.inf)
    d_after = np.where(idx + 1 < len(starts), starts[after] - t, np.inf)
    nearest = np.where(d_after < d_before, after, before)
    distance = np.minimum(d_before, d_after)
    role = np.asarray(roles, object)[nearest]
    near = distance <= NEAR_SPEECH
    groups = {f"{r} speaker": near & (role == r) for r in sorted(set(roles))}
    groups[far] = ~near
    return groups


def condition_groups(run: FileRun, entry: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """For each axis, the frames of ``run`` in each group, from its manifest ``entry``."""
    n = len(run.probabilities)
    t = run.cfg.grid.times(n)
    whole = np.ones(n, bool)
    music = [(float(m["start"]), float(m["end"])) for m in entry.get("music") or []]
    in_music = _inside(t, music)
    events: dict[str, list[tuple[float, float]]] = {}
    for e in entry.get("events") or []:
        events.setdefault(str(e["kind"]), []).append((float(e["start"]), float(e["end"])))
    event_masks = {kind: _inside(t, spans) for kind, spans in sorted(events.items())}
    any_event = np.logical_or.reduce([*event_masks.values(), np.zeros(n, bool)])
    speech = run.item.labels.speech
    utterances = entry.get("utterances")  # synth's manifests count them, dev/val's list them
    noise = entry.get("noise")  # synth's names the kind of background; dev/val's list the layers
    roles = segment_roles(speech, utterances if isinstance(utterances, list) else [])
    return {
        "snr": {snr_band(entry.get("snr_db")): whole},
        "reverberation": {reverberation_band(entry.get("rt60")): whole},
        "level": {str(entry.get("level", "unknown")): whole},
        "music in recording": {"with music" if music else "without music": whole},
        "during music": {"music playing": in_music, "no music": ~in_music},
        "events": {**event_masks, "no event": ~any_event},
        "speaker": speaker_groups(t, speech, roles),
        **({"channel": {channel_group(entry["channel"]): whole}} if "channel" in entry else {}),
        **({"noise": {f"{noise} background": whole}} if isinstance(noise, str) else {}),
    }


CHANNEL_PRIORITY = ("resample", "band", "microphone", "agc", "compress", "gate", "clip", "quantize")


def channel_group(description: Mapping[str, Any]) -> str:
    """A channel's group, by its most telling step: a codec by name, else an 8 kHz round trip,
    a band limit, a microphone, a processor (AGC, compressor, gate) or damage; ``direct``."""
    kinds = {str(s["kind"]): s for s in description.get("steps") or []}
    if "codec" in kinds:
        return f"codec {kinds['codec'].get('name', '')}".strip()
    return next((kind for kind in CHANNEL_PRIORITY if kind in kinds), "direct")


GROUP_ORDER = (
    "no noise",
    "< 10 dB",
    "10–19 dB",
    "≥ 20 dB",
    "dry",
    "RT60 < 0.5 s",
    "RT60 0.5–0.8 s",
    "RT60 ≥ 0.8 s",
)
"""Bands in their natural order; other groups follow alphabetically, ``no …`` and ``> …`` last."""


def _group_order(item: tuple[str, Any]) -> tuple[int, str]:
    name = item[0]
    if name in GROUP_ORDER:
        return GROUP_ORDER.index(name), name
    return len(GROUP_ORDER) + (name.startswith(("no ", "> "))), name


def group_metrics(counts: Counts, *, files: int, hop: float) -> dict[str, float | None]:
    """F1, precision, recall, DER (collar), false-alarm and miss rates, seconds of a group
    (``hop``: seconds per frame). Rates of speech (all but the false-alarm rate) are None in a
    group without reference speech, the false-alarm rate in one without non-speech."""
    m = counts.metrics()
    speech, other = counts.tp + counts.fn, counts.fp + counts.tn
    out: dict[str, float | None] = {
        "files": files,
        "seconds": round((speech + other) * hop, 2),
        "speech_seconds": round(speech * hop, 2),
    }
    for key in ("f1", "precision", "recall", "der", "der_collar"):
        out[key] = m[key] if speech else None
    out["false_alarm_rate"] = round(counts.fp / other, 4) if other else None
    out["miss_rate"] = round(counts.fn / speech, 4) if speech else None
    return out


def by_condition(
    runs: Sequence[FileRun],
    hypotheses: Sequence[Sequence[tuple[float, float]]],
    conditions: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Pooled frame metrics of ``hypotheses`` (spans per run) by axis and group."""
    totals: dict[str, dict[str, list[Any]]] = {axis: {} for axis in AXES}
    hop = runs[0].cfg.grid.hop if runs else 0.0
    for run, spans in zip(runs, hypotheses, strict=True):
        entry = conditions.get(run.key)
        if entry is None:
            continue
        hyp = run.hypothesis(spans)
        for axis, groups in condition_groups(run, entry).items():
            for group, mask in groups.items():
                if not mask.any():
                    continue
                total = totals[axis].setdefault(group, [pool([]), 0])
                total[0] = total[0] + count_frames(run.reference, hyp, run.keep, within=mask)
                total[1] += 1
    return {
        axis: {
            group: group_metrics(c, files=files, hop=hop)
            for group, (c, files) in sorted(groups.items(), key=_group_order)
        }
        for axis, groups in totals.items()
        if groups
    }


CONDITION_COLUMNS = {
    "f1": "F1",
    "precision": "precision",
    "recall": "recall",
    "false_alarm_rate": "FA rate",
    "miss_rate": "miss rate",
    "der_collar": "DER collar",
}


def format_conditions(table: Mapping[str, Mapping[str, Mapping[str, float | None]]]) -> str:
    """The metrics by condition as an aligned text table (``-``: undefined in that group)."""
    head = f"{'condition':<20}{'group':<24}{'files':>6}{'min':>7}{'speech':>8}" + "".join(
        f"{c:>12}" for c in CONDITION_COLUMNS.values()
    )
    rows = [head]
    for axis, groups in table.items():
        for group, m in groups.items():
            cells = "".join(
                f"{'-':>12}" if m[c] is None else f"{m[c]:>12.4f}" for c in CONDITION_COLUMNS
            )
            rows.append(
                f"{axis:<20}{group:<24}{m['files']:>6}{m['seconds'] / 60:>7.1f}"
                f"{m['speech_seconds'] / 60:>8.1f}{cells}"
            )
    return "\n".join(rows)
