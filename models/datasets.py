"""Datasets: recordings with a speech label file beside each (formats: ``pipeline.labels``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocml.pipeline.errors import InputMissing
from ocml.pipeline.features import FeatureConfig
from ocml.pipeline.labels import LABEL_SUFFIXES, TOLERANCE, LabelError, Labels, read_labels

AUDIO_SUFFIXES = (
    ".flac",
    ".wav",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".m4a",
    ".mp4",
    ".mkv",
    ".webm",
    ".mov",
)


@dataclass(frozen=True)
class Item:
    """One recording of a dataset and its labels (None for unlabelled recordings)."""

    audio: Path
    labels: Labels | None
    label_path: Path | None = None


def label_file_for(audio: Path) -> Path | None:
    """The label file beside ``audio`` (same stem), first match in ``LABEL_SUFFIXES`` order."""
    for suffix in LABEL_SUFFIXES:
        candidate = audio.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def check_against_audio(labels: Labels, audio_duration: float, path: Path) -> None:
    """Refuse labels that reach past the recording or state a different duration."""
    if labels.duration is not None and abs(labels.duration - audio_duration) > max(
        TOLERANCE, 0.001 * audio_duration
    ):
        raise LabelError(
            f"labels state duration {labels.duration} s but the recording lasts "
            f"{audio_duration:.3f} s",
            path=str(path),
        )
    if labels.speech and labels.speech[-1][1] > audio_duration + TOLERANCE:
        raise LabelError(
            f"segment {list(labels.speech[-1])} ends after the recording's end "
            f"({audio_duration:.3f} s)",
            path=str(path),
        )


def load_dataset(folder: Path | str, *, require_labels: bool = True) -> list[Item]:
    """Every recording under ``folder`` with its labels; label files without audio are errors.

    With ``require_labels`` a recording without a label file is an error; otherwise it is kept
    with ``labels=None`` (pre-training needs no labels).
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputMissing("dataset folder not found", path=str(root))
    audio = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    stems = {p.with_suffix("") for p in audio}
    for label in sorted(
        p for p in root.rglob("*") if p.suffix.lower() in LABEL_SUFFIXES and p.is_file()
    ):
        if label.with_suffix("") not in stems and label.name != "manifest.json":
            raise InputMissing(
                f"label file has no recording beside it (looked for "
                f"{label.stem}{{{','.join(AUDIO_SUFFIXES)}}})",
                path=str(label),
            )
    items = []
    for p in audio:
        lp = label_file_for(p)
        if lp is None and require_labels:
            raise LabelError(
                "recording has no label file beside it "
                f"(expected {p.stem}{{{','.join(LABEL_SUFFIXES)}}})",
                path=str(p),
            )
        items.append(Item(p, read_labels(lp) if lp else None, lp))
    if not items:
        raise InputMissing("dataset folder holds no recordings", path=str(root))
    return items


def frame_labels(
    speech: list[tuple[float, float]], n_frames: int, cfg: FeatureConfig
) -> np.ndarray:
    """1 for frames whose centre lies inside a speech interval, else 0 (uint8 ``[n_frames]``)."""
    centres = cfg.grid.times(n_frames)
    if not speech:
        return np.zeros(n_frames, np.uint8)
    starts, ends = np.array(speech, np.float64).T
    idx = np.searchsorted(starts, centres, side="right") - 1
    return ((idx >= 0) & (centres < ends[np.maximum(idx, 0)])).astype(np.uint8)
