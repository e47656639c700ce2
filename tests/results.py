"""Result objects and result files for tests, made with the pipeline's own ``Result`` type."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ocml.pipeline.postprocess import PRESETS, Segment, SegmentParams
from ocml.pipeline.result import InputInfo, ModelInfo, Result
from ocml.pipeline.segment import file_sha256

PROBABILITIES = np.array([0.0, 0.25, 0.5, 1.0], np.float32)


def make_result(
    segments: list[Segment] | None = None,
    *,
    duration: float = 10.0,
    has_video: bool = False,
    sha: str = "ab" * 32,
    probabilities: np.ndarray | None = PROBABILITIES,
    processing: float = 2.5,
) -> Result:
    """A 48 kHz stereo lecture result with two segments unless ``segments`` is given."""
    return Result(
        input=InputInfo(
            path="/srv/media/lecture 17.flac",
            duration=duration,
            sample_rate=48000,
            channels=2,
            sha256=sha,
            has_video=has_video,
        ),
        model=ModelInfo(name="default", version="1.0.0", architecture="crnn", sha256="cd" * 32),
        params=PRESETS["default"],
        segments=[Segment(0.5, 2.25, 0.91), Segment(4.0, 7.125, 0.8765)]
        if segments is None
        else segments,
        probabilities=probabilities,
        processing_seconds=processing,
        created="2026-11-25T12:00:00Z",
    )


def write_result(
    path: Path,
    segments: list[tuple[float, float]],
    *,
    duration: float,
    media: Path | None = None,
    sample_rate: int = 16000,
) -> Path:
    """A result JSON at ``path`` for ``media`` (default: ``path`` itself) with confidence 0.9;
    its input's sha256 is ``media``'s, as `ocml segment` writes it."""
    sha = file_sha256(media) if media is not None else "0" * 64
    result = Result(
        input=InputInfo(str(media or path), duration, sample_rate, 1, sha, False),
        model=ModelInfo("tiny", "1.0.0", "conv", "0" * 64),
        params=SegmentParams(),
        segments=[Segment(s, e, 0.9) for s, e in segments],
        probabilities=None,
        processing_seconds=1.0,
        created="2026-11-25T12:00:00Z",
    )
    path.write_text(json.dumps(result.to_dict()))
    return path
