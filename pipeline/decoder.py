"""What every decoder gives `pipeline.decode.Recording`: header facts and native-rate chunks."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ocml.pipeline.errors import BadSampleRate, InputTooShort

MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
MIN_DURATION = 0.1
"""Seconds of audio below which a recording is refused (``InputTooShort``)."""

Chunk = Sequence[np.ndarray]
"""Equally long 1-D channel rows in one sample type (``[channels][n]``), at the native rate."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's headers say of its audio; ``duration`` may be the container's estimate."""

    path: str
    duration: float
    sample_rate: int
    channels: int
    codec: str
    container: str
    has_video: bool


class Decoder(Protocol):
    """One open media file's audio, decoded once, front to back."""

    info: AudioInfo

    def chunks(self, *, block: int, start: float) -> Iterator[Chunk]:
        """The audio from ``start`` seconds as chunks (about ``block`` samples), refusing a
        file that ends before its headers say (``InputTruncated``)."""
        ...

    def close(self) -> None:
        """Release the decoder (idempotent); the file itself is the caller's."""
        ...


def check_rate(name: str, rate: int) -> None:
    """Refuse a native sample rate outside `MIN_SAMPLE_RATE`..`MAX_SAMPLE_RATE`."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise BadSampleRate(
            f"sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz", path=name
        )


def refuse_too_short(name: str, seconds: float, *, what: str = "of audio") -> None:
    """Refuse audio shorter than `MIN_DURATION`, quoting how long it is."""
    if seconds < MIN_DURATION:
        raise InputTooShort(
            f"too short: {seconds:.3f} s {what}, at least {MIN_DURATION} s needed", path=name
        )


def min_samples(rate: int) -> int:
    """`MIN_DURATION` in samples at ``rate``, rounded up."""
    return math.ceil(MIN_DURATION * rate)
