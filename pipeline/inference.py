"""Chunked, batched inference whose output equals one whole-recording model call.

Window k covers frames ``[k·C, k·C + C + 2c)`` (C = chunk_frames, c = the model's context_frames)
and contributes its centre ``[k·C + c, k·C + c + C)``; the first window also contributes its left
context (the recording's edge, where a whole-recording call pads the same way) and the last one
everything up to the end, run at its exact length. All windows but the last have the same length,
so they batch without padding. C and the batch size come from the model's metadata
(``inference``; 3000 frames and 8 windows when absent): a recurrent model steps through its
window frame by frame, so it runs fastest on shorter windows in bigger batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from ocml.pipeline.checks import check_int
from ocml.pipeline.model import Model


class Inference:
    """Per-frame speech probabilities for a stream of log-mel chunks, in bounded memory."""

    def __init__(
        self, model: Model, *, chunk_frames: int | None = None, batch_size: int | None = None
    ) -> None:
        """``chunk_frames`` and ``batch_size`` default to the model's own ``inference`` hint."""
        chunk_frames = model.inference["chunk_frames"] if chunk_frames is None else chunk_frames
        batch_size = model.inference["batch_size"] if batch_size is None else batch_size
        check_int(chunk_frames, name="chunk_frames")
        check_int(batch_size, name="batch_size")
        self.model = model
        self.chunk_frames = chunk_frames
        self.batch_size = batch_size
        self.context = model.context_frames
        self.window = chunk_frames + 2 * self.context

    def __call__(self, feature_chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Yield float32 probabilities, in order, for the frames of ``feature_chunks`` [t, n_mels].

        Holds at most one batch of windows plus the frames not yet covered by a full window.
        """
        pending: list[tuple[np.ndarray, slice]] = []
        for window, keep in self._windows(feature_chunks):
            if pending and (len(pending) == self.batch_size or len(window) != len(pending[0][0])):
                yield from self._run(pending)
                pending = []
            pending.append((window, keep))
        if pending:
            yield from self._run(pending)

    def _windows(self, feature_chunks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, slice]]:
        """Each window with the slice of it to keep, a full one as soon as a frame beyond it arrives."""
        n_mels = self.model.features.n_mels
        c, step = self.context, self.chunk_frames
        buffer = np.zeros((0, n_mels), dtype=np.float32)
        first = True
        for chunk in feature_chunks:
            data = np.asarray(chunk, dtype=np.float32)
            if data.ndim != 2 or data.shape[1] != n_mels:
                raise ValueError(
                    f"feature chunks must be [frames, {n_mels}], got shape {data.shape}"
                )
            if len(data) == 0:
                continue
            buffer = np.concatenate([buffer, data])
            while len(buffer) > self.window:
                yield buffer[: self.window], slice(0 if first else c, c + step)
                buffer, first = buffer[step:], False
        if len(buffer):
            yield buffer, slice(0 if first else c, len(buffer))

    def _run(self, batch: list[tuple[np.ndarray, slice]]) -> Iterator[np.ndarray]:
        """Predict a batch of equal-length windows; yield the frames each window is responsible for."""
        probs = self.model.predict(np.stack([window for window, _ in batch]))
        for row, (_, keep) in zip(probs, batch):
            yield row[keep]
