"""One recording in, speech segments out: decode → features → inference → post-processing."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from ocml.pipeline import postprocess
from ocml.pipeline.decode import Recording
from ocml.pipeline.decoder import refuse_too_short
from ocml.pipeline.features import frame_energy_db, stream_logmel
from ocml.pipeline.inference import Inference
from ocml.pipeline.model import Model
from ocml.pipeline.postprocess import Binarize, SegmentParams
from ocml.pipeline.prefetch import prefetch
from ocml.pipeline.result import InputInfo, ModelInfo, Result, utc_now

Progress = Callable[[float, float], None]
"""Called as ``progress(processed_seconds, duration_seconds)`` after each inference chunk."""

BLOCK_SECONDS = 30.0
FEATURE_AHEAD_SECONDS = 600.0
"""Seconds of features (~15 MB) that may wait for inference while the model is still loading:
covers TensorFlow's start-up. Once it has loaded, features stay one inference batch ahead."""
MAX_PREALLOCATED_SECONDS = 24 * 3600.0
"""The most of a header's stated duration the probabilities are preallocated for."""


def tuned_params(
    model: Model, *, preset_name: str = "default", overrides: Mapping[str, Any] | None = None
) -> SegmentParams:
    """The parameters of ``preset_name`` over ``model``'s tuned values, then ``overrides``
    (``postprocess.resolve_params``); the command line and the worker resolve theirs with
    ``worker.jobs.resolve_job_params``, which also checks formats and presets."""
    return postprocess.resolve_params(
        preset_name=preset_name, tuned=model.postprocess, overrides=overrides
    )


def segment_file(
    path: str | os.PathLike[str],
    model: Model,
    params: SegmentParams,
    *,
    fd: int | None = None,
    progress: Progress | None = None,
    block_seconds: float = BLOCK_SECONDS,
    keep_energy: bool = False,
) -> Result:
    """Segment one media file with ``model`` in memory that does not grow with its length.

    ``fd``, where given, is the file already open (a worker opens it safely below its media root)
    and ``path`` only names it. The file is read once (`Recording`: its info, samples and sha256
    come from the same pass). Decoding (and, at another sample rate, resampling), feature
    extraction and inference each run in their own thread, a block or two apart (numpy, PyAV,
    soxr and the runtimes release the GIL). A model still loading in the background
    (``load_model(..., background=True)``) delays only inference:
    decoding and features run up to `FEATURE_AHEAD_SECONDS` ahead while it loads, then at most
    one inference batch (plus a block) ahead, so peak memory does not grow with the length
    (docs/performance.md has the measurements behind both choices).
    Each frame's energy is kept (``Result.energy``) when ``params`` snap edges or ``keep_energy``.
    Raises the ``InputError`` subclasses of ``pipeline.errors`` for media that cannot be used.
    """
    started = time.perf_counter()
    path = os.fspath(path)
    cfg = model.features
    inference = Inference(model)
    block_frames = block_seconds * cfg.sample_rate / cfg.hop_length
    one_batch = max(2, math.ceil(inference.batch_size * inference.chunk_frames / block_frames) + 1)
    ahead = max(one_batch, math.ceil(FEATURE_AHEAD_SECONDS / block_seconds))
    with contextlib.ExitStack() as stack:
        recording = stack.enter_context(Recording.open(path) if fd is None else Recording(fd, path))
        info = recording.info
        blocks = recording.blocks(sample_rate=cfg.sample_rate, block_seconds=block_seconds)
        hop = cfg.grid.hop
        expected = min(info.duration, MAX_PREALLOCATED_SECONDS) * cfg.sample_rate
        frames = cfg.frames(math.ceil(expected))
        probs = FrameValues(frames)
        energy = FrameValues(frames) if params.snaps or keep_energy else None
        logmels = stream_logmel(prefetch(blocks, depth=2), cfg)
        # Closed first on the way out, so the decoding thread stops before the file closes. The
        # energy is taken in the features' thread, off inference's.
        features = stack.enter_context(
            contextlib.closing(
                prefetch(
                    logmels if energy is None else _tap_energy(logmels, energy),
                    depth=lambda: one_batch if model.ready else ahead,
                )
            )
        )
        for chunk in inference(features):
            probs.append(chunk)
            if progress is not None:
                progress(len(probs) * hop, info.duration)
        duration = recording.samples / cfg.sample_rate
        refuse_too_short(path, duration)
        sha256 = recording.sha256()
    probabilities = probs.values()
    energies = None if energy is None else energy.values()
    binarized = Binarize(params).binarize(
        probabilities, duration=duration, grid=cfg.grid, energy=energies
    )
    if progress is not None:
        progress(duration, duration)
    return Result(
        input=InputInfo(
            path=path,
            duration=duration,
            sample_rate=info.sample_rate,
            channels=info.channels,
            sha256=sha256,
            has_video=info.has_video,
        ),
        model=ModelInfo(
            name=model.name,
            version=model.version,
            architecture=model.architecture,
            sha256=model.sha256,
        ),
        params=params,
        segments=binarized.segments,
        probabilities=probabilities,
        processing_seconds=time.perf_counter() - started,
        created=utc_now(),
        energy=energies,
        dropped_voice=binarized.dropped_voice,
    )


def _tap_energy(chunks: Iterator[np.ndarray], into: FrameValues) -> Iterator[np.ndarray]:
    """Passes log-mel chunks on unchanged, appending each frame's energy (dB) to ``into``
    before the chunk goes on (so ``into`` is complete once the last chunk has been consumed)."""
    for chunk in chunks:
        into.append(frame_energy_db(chunk))
        yield chunk


class FrameValues:
    """Per-frame float32 values appended chunk by chunk into one array, held once.

    Collecting chunks and concatenating them at the end holds every value twice at that moment;
    here they go straight into an array sized for the expected number of frames (``np.empty``:
    pages never written cost no memory, so a generous guess is free), which doubles when a stream
    turns out longer than its header said.
    """

    def __init__(self, expected: int) -> None:
        self._data = np.empty(max(expected, 1), dtype=np.float32)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, chunk: np.ndarray) -> None:
        """Adds ``chunk``'s values (1-D) after those already held."""
        end = self._size + len(chunk)
        if end > len(self._data):
            grown = np.empty(max(end, 2 * len(self._data)), dtype=np.float32)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : end] = chunk
        self._size = end

    def values(self) -> np.ndarray:
        """The values so far, in order (a view, not a copy)."""
        return self._data[: self._size]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's content (``hashlib.file_digest`` reads it in 256 KiB pieces)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
