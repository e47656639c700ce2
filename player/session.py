"""What one player session shows: the media, its speech segments and the per-frame probabilities.

Built from a result JSON (checked before any window opens, including that it is a result of this
very recording) or by running the pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocml.pipeline.errors import InputMissing, InputUnreadable, OcmlError, excerpt
from ocml.pipeline.result import InvalidResult, Result
from ocml.player.labels import Labels
from ocml.player.timeline import pipeline_grid

FRAME_SLACK = 0.05  # seconds of difference allowed between probabilities and duration


class ResultMismatch(OcmlError):
    """A result file belongs to another recording (its input's sha256 is not the media's)."""

    code = "result_mismatch"


@dataclass
class Session:
    """The data the player and ``ocml plot`` draw."""

    media: Path
    duration: float
    segments: list[tuple[float, float]]
    probabilities: np.ndarray | None
    threshold: float
    model_name: str
    writable: bool = True
    """False when the result belongs to another recording (shown with ``--force``): corrections
    made on it would be labels of the wrong recording, so they are never saved."""

    @property
    def stem(self) -> Path:
        """Where corrected labels go: ``NAME`` of the recording ``NAME.ext``, so they lie beside
        it, where training looks for a recording's labels (``models.datasets``)."""
        return self.media.with_name(self.media.stem)

    def labels(self) -> Labels:
        """Editable labels starting from the result's segments."""
        return Labels.from_intervals(self.segments, duration=self.duration)


def read_result(path: Path) -> Result:
    """A result file, checked against ``opencast-ml/segments/v1`` (segments inside the recording)."""
    path = Path(path)
    if not path.is_file():
        raise InputMissing("result file not found", path=str(path))
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidResult(f"not a JSON result file: {exc}", path=str(path)) from exc
    try:
        return Result.from_dict(doc)
    except InvalidResult as exc:
        raise InvalidResult(
            f"not an opencast-ml/segments/v1 result: {exc.message}", path=str(path)
        ) from exc


def read_probabilities(path: Path, *, duration: float) -> np.ndarray:
    """Per-frame speech probabilities (``.npy``, memory-mapped) that must cover ``duration``."""
    path = Path(path)
    try:
        probs = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputUnreadable(f"not a probabilities .npy file: {exc}", path=str(path)) from exc
    if probs.ndim != 1:
        raise InputUnreadable(f"probabilities must be 1-D, got shape {probs.shape}", path=str(path))
    covered = pipeline_grid().seconds(len(probs))
    if abs(covered - duration) > max(FRAME_SLACK, 0.03 + 0.001 * duration):
        raise InputUnreadable(
            f"{len(probs)} frames cover {covered:.2f} s but the result says {duration:.2f} s",
            path=str(path),
        )
    return probs


def probabilities_next_to(result_path: Path) -> Path:
    """Where the writers put a result's probabilities: ``NAME.probs.npy`` beside ``NAME.json``."""
    return result_path.with_name(result_path.name.removesuffix(".json") + ".probs.npy")


def from_result(
    media: Path,
    result_path: Path,
    *,
    probabilities: Path | None = None,
    force: bool = False,
) -> Session:
    """A session from a result file; probabilities from ``probabilities`` or beside the result.

    A result of another recording is refused (``ResultMismatch``); with ``force`` it is shown
    read-only.
    """
    result = read_result(result_path)
    belongs = result_belongs(result, Path(media), Path(result_path), force=force)
    duration = result.input.duration
    probs_path = probabilities or probabilities_next_to(result_path)
    probs = None
    if probabilities is not None or probs_path.is_file():
        probs = read_probabilities(probs_path, duration=duration)
    return session_of(result, media=media, probabilities=probs, writable=belongs)


def result_belongs(result: Result, media: Path, result_path: Path, *, force: bool) -> bool:
    """Whether ``result`` is a result of ``media``: the sha256 of the file's bytes the result
    records is the media's. If not, ``ResultMismatch`` names both files (their durations and
    hashes), unless ``force``."""
    from ocml.pipeline.segment import file_sha256

    sha = file_sha256(media)
    if sha == result.input.sha256:
        return True
    if force:
        return False
    from ocml.pipeline.decode import probe

    try:
        media_duration = f"{probe(media).duration:.1f} s, "
    except OcmlError:
        media_duration = ""
    raise ResultMismatch(
        f"{excerpt(str(result_path))} is a result of another recording: "
        f"{excerpt(result.input.path)} ({result.input.duration:.1f} s, sha256 "
        f"{result.input.sha256[:12]}…), not of {excerpt(str(media))} ({media_duration}sha256 "
        f"{sha[:12]}…); give the recording it belongs to, or --force to show it anyway "
        "(read-only: corrections cannot be saved against another recording)"
    )


def session_of(
    result: Result, *, media: Path, probabilities: np.ndarray | None, writable: bool = True
) -> Session:
    """The player's view of a ``Result``."""
    return Session(
        media=Path(media),
        duration=result.input.duration,
        segments=[(s.start, s.end) for s in result.segments],
        probabilities=probabilities,
        threshold=result.params.threshold,
        model_name=f"{result.model.name} {result.model.version}",
        writable=writable,
    )


def from_pipeline(
    media: Path,
    *,
    model_path: Path | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> Session:
    """A session from running the pipeline on ``media`` with the model's default parameters."""
    from ocml.pipeline.model import load_model
    from ocml.pipeline.segment import segment_file, tuned_params
    from ocml.pipeline.threads import set_inference_threads

    set_inference_threads()
    model = load_model(model_path)
    result = segment_file(media, model, tuned_params(model), progress=progress)
    return session_of(
        result,
        media=media,
        probabilities=result.probabilities,
    )
