"""Datasets: recordings with a speech label file beside each (formats: ``pipeline.labels``).

Which file gives a recording ``NAME.ext`` its labels: the corrections a person saved in the player
(``NAME.labels.json``, then ``NAME.labels.txt``), else the first of ``NAME.json``, ``.txt``,
``.rttm``, ``.smil``. A model's result JSON (``ocml segment``'s ``NAME.json``) is refused as
labels unless asked for (``results_as_labels``): training a model on its own output teaches it
nothing and silently passes its errors on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocml.pipeline.errors import InputMissing
from ocml.pipeline.features import FeatureConfig
from ocml.pipeline.labels import (
    CORRECTED_SUFFIXES,
    LABEL_SUFFIXES,
    TOLERANCE,
    LabelError,
    Labels,
    read_labels,
)
from ocml.pipeline.writers import SUFFIXES as OUTPUT_SUFFIXES

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


LABEL_ORDER = (*CORRECTED_SUFFIXES, *LABEL_SUFFIXES)
"""The names a recording's label file may have after its stem, the one used first."""
COMPANION_SUFFIXES = tuple(sorted({*LABEL_ORDER, *OUTPUT_SUFFIXES.values()}, key=len, reverse=True))
"""Everything written beside a recording under its stem: labels, corrections, ``ocml segment``'s
outputs (longest first, so ``NAME.labels.json`` is not taken for ``NAME.labels`` + ``.json``)."""


@dataclass(frozen=True)
class Item:
    """One recording of a dataset and its labels (None for unlabelled recordings)."""

    audio: Path
    labels: Labels | None
    label_path: Path | None = None

    @property
    def label_kind(self) -> str:
        """Where the labels came from: ``corrected`` (the player), ``result`` (a model's
        output), ``labels`` (any other label file) or ``none``."""
        if self.label_path is None:
            return "none"
        if self.label_path.name.endswith(CORRECTED_SUFFIXES):
            return "corrected"
        return "result" if self.labels is not None and self.labels.model else "labels"


def label_file_for(audio: Path) -> Path | None:
    """The label file beside ``audio`` (same stem), the first that exists in ``LABEL_ORDER``."""
    for suffix in LABEL_ORDER:
        candidate = audio.with_name(audio.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def recording_stem(path: Path) -> Path:
    """The recording stem a companion file belongs to: ``dir/NAME`` for ``dir/NAME.labels.json``."""
    name = path.name
    suffix = next((s for s in COMPANION_SUFFIXES if name.endswith(s) and name != s), path.suffix)
    return path.with_name(name.removesuffix(suffix))


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


def load_dataset(
    folder: Path | str, *, require_labels: bool = True, results_as_labels: bool = False
) -> list[Item]:
    """Every recording under ``folder`` with its labels; label files without audio are errors.

    With ``require_labels`` a recording without a label file is an error; otherwise it is kept
    with ``labels=None`` (pre-training needs no labels). A recording whose label file is a
    model's result JSON is an error unless ``results_as_labels`` (without ``require_labels`` it
    is kept unlabelled).
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputMissing("dataset folder not found", path=str(root))
    audio = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    _refuse_orphans(root, {p.with_suffix("") for p in audio})
    items = []
    for p in audio:
        item = _item(p, results_as_labels=results_as_labels, require_labels=require_labels)
        if item.labels is None and require_labels:
            raise LabelError(
                "recording has no label file beside it "
                f"(expected {p.stem}{{{','.join(LABEL_ORDER)}}})",
                path=str(p),
            )
        items.append(item)
    if not items:
        raise InputMissing("dataset folder holds no recordings", path=str(root))
    return items


def _refuse_orphans(root: Path, stems: set[Path]) -> None:
    """An ``InputMissing`` for the first label file under ``root`` whose recording is missing."""
    for label in sorted(
        p for p in root.rglob("*") if p.suffix.lower() in LABEL_SUFFIXES and p.is_file()
    ):
        stem = recording_stem(label)
        if stem not in stems and label.name != "manifest.json":
            raise InputMissing(
                f"label file has no recording beside it (looked for "
                f"{stem.name}{{{','.join(AUDIO_SUFFIXES)}}})",
                path=str(label),
            )


def _item(audio: Path, *, results_as_labels: bool, require_labels: bool) -> Item:
    """``audio`` with the labels ``label_file_for`` finds; a model's result only if asked for
    (else an error, or no labels where none are required)."""
    path = label_file_for(audio)
    if path is None:
        return Item(audio, None)
    labels = read_labels(path)
    item = Item(audio, labels, path)
    if item.label_kind == "result" and not results_as_labels:
        if not require_labels:
            return Item(audio, None)
        raise LabelError(
            f"its labels would be {path.name}, a result of the model {labels.model}, not labels "
            f"a person checked: correct it in `ocml play` and save ({audio.stem}"
            f"{CORRECTED_SUFFIXES[0]}), or give `ocml-train spectrograms` --results-as-labels "
            "to train on model output",
            path=str(audio),
        )
    return item


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
