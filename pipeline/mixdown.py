"""Native-rate channel chunks → checked mono float32 blocks at the wanted sample rate."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import soxr

from ocml.pipeline.decoder import Chunk, refuse_too_short
from ocml.pipeline.errors import InvalidSamples

_SAMPLE_SCALE = {
    np.dtype(np.int16): 2.0**-15,
    np.dtype(np.int32): 2.0**-31,
    np.dtype(np.int64): 2.0**-63,
    np.dtype(np.uint8): 2.0**-7,
}


def mono_blocks(chunks: Iterator[Chunk], block: int) -> Iterator[np.ndarray]:
    """Average chunks into mono float32 blocks of ``block`` samples (the last: what remains)."""
    mixed: list[np.ndarray] = []
    pending: list[Chunk] = []
    size = 0

    def mix() -> None:
        if pending:
            rows = [
                pending[0][c]
                if len(pending) == 1
                else np.concatenate([chunk[c] for chunk in pending])
                for c in range(len(pending[0]))
            ]
            mixed.append(channel_mean(rows))
            pending.clear()

    for chunk in chunks:
        if pending and (len(chunk), chunk[0].dtype) != (len(pending[0]), pending[0][0].dtype):
            mix()
        pending.append(chunk)
        size += len(chunk[0])
        if size >= block:
            mix()
            mono = np.concatenate(mixed) if len(mixed) > 1 else mixed[0]
            mixed.clear()
            starts = range(0, size - block + 1, block)
            for start in starts:
                yield mono[start : start + block]
            size -= len(starts) * block
            if size:
                mixed.append(mono[-size:])
    mix()
    if mixed:
        yield np.concatenate(mixed) if len(mixed) > 1 else mixed[0]


def channel_mean(rows: Sequence[np.ndarray]) -> np.ndarray:
    """The float32 mean of channel rows (any sample type, integers scaled to [-1, 1)).

    Summed row by row: ``ndarray.mean(axis=0)`` crawls over libsndfile's interleaved layout.
    """
    kind, first = rows[0].dtype, rows[0]
    if kind == np.float32 and len(rows) == 1:
        fresh = first.flags.writeable and first.flags.c_contiguous
        return first if fresh else first.copy()
    mono = rows[0].astype(np.float32)
    for row in rows[1:]:
        mono += row
    if kind == np.uint8:
        mono -= np.float32(128 * len(rows))
    mono *= np.float32(_SAMPLE_SCALE.get(kind, 1.0) / len(rows))
    return mono


def resampled(
    name: str, blocks: Iterator[np.ndarray], rate: int, target: int, *, minimum: int
) -> Iterator[np.ndarray]:
    """Check mono blocks (NaN/inf, at least ``minimum`` samples) and resample them with one soxr
    stream (HQ), so block boundaries leave no seams.

    Every block but the last holds at least ``minimum`` samples, so a too-short file is refused
    before any of its audio is yielded.
    """
    resampler = (
        None
        if rate == target
        else soxr.ResampleStream(rate, target, 1, dtype="float32", quality="HQ")
    )
    decoded = 0
    for block in blocks:
        finite = np.isfinite(block)
        if not finite.all():
            at = (decoded + int(np.argmin(finite))) / rate
            raise InvalidSamples(f"NaN or infinite sample value at {at:.3f} s", path=name)
        decoded += len(block)
        if decoded < minimum:
            break
        out = block if resampler is None else resampler.resample_chunk(block)
        if len(out):
            yield out
    if decoded < minimum:
        refuse_too_short(name, decoded / rate, what="of audio decoded")
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        if len(tail):
            yield tail
