"""Streamed audio decoding: any media file → mono float32 blocks at a fixed sample rate.

libsndfile (`SoundfileDecoder`) reads what it can with exact sample counts; PyAV
(`AvDecoder`) reads the rest and places every frame by its timestamp. Channels are averaged in
float, then resampled by one ``soxr.ResampleStream`` per file (`pipeline.mixdown`). A `Recording`
reads its file once: header info, audio, length and the sha256 of its bytes all come from that one
pass (besides the few bytes `pipeline.truncation` reads to catch a cut-off copy).
"""

from __future__ import annotations

import io
import math
import os
import stat
from collections.abc import Generator, Iterator

import numpy as np

from ocml.pipeline.av_decoder import AvDecoder
from ocml.pipeline.decoder import (
    MAX_SAMPLE_RATE,
    MIN_DURATION,
    MIN_SAMPLE_RATE,
    AudioInfo,
    Decoder,
    min_samples,
    refuse_too_short,
)
from ocml.pipeline.errors import InputEmpty, InputNotAFile, InputUnreadable, ParamsError
from ocml.pipeline.hashing_reader import READ_BUFFER, HashingReader
from ocml.pipeline.mixdown import mono_blocks, resampled
from ocml.pipeline.oserrors import read_error
from ocml.pipeline.prefetch import prefetch
from ocml.pipeline.soundfile_decoder import SoundfileDecoder
from ocml.pipeline.truncation import OGG_MAGIC, check_ogg_end

__all__ = ["MIN_DURATION", "AudioInfo", "Recording", "probe", "stream"]


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Read the headers of ``path`` (no decoding) and describe its audio.

    Raises the `stream` errors that headers reveal; ``InputTooShort`` when the stated duration is
    under 0.1 s. ``duration`` is 0.0 when the container states none.
    """
    with Recording.open(path) as recording:
        return recording.info


def stream(
    path: str | os.PathLike[str],
    *,
    sample_rate: int = 16000,
    block_seconds: float = 30.0,
    start: float = 0.0,
) -> Iterator[np.ndarray]:
    """Yield the audio of ``path`` as mono float32 1-D blocks at ``sample_rate``; constant memory.

    ``Recording.open(path).blocks(...)`` for callers that need nothing else of the file (players,
    peers); the file is closed when the iterator ends or is closed. Traps: see
    `Recording.blocks`.
    """
    recording = Recording.open(path, check_duration=not start)
    try:
        blocks = recording.blocks(sample_rate=sample_rate, block_seconds=block_seconds, start=start)
    except BaseException:
        recording.close()
        raise
    return _closing(recording, blocks)


def _closing(recording: Recording, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    with recording:
        yield from blocks


class Recording:
    """One open media file: its `info`, its audio (`blocks`), its length and its sha256.

    Takes an open file descriptor and the name errors and results call it (a worker opens the
    file safely below its media root and passes the descriptor); `open` does both for a path.
    The file is read through a reader that hashes its bytes in file order as the decoder reads
    them, so ``sha256()`` after decoding costs no second pass, and ``samples`` counts what
    `blocks` yielded. Use it as a context manager (or call ``close``); the descriptor stays the
    caller's unless `open` made it.
    """

    def __init__(self, fd: int, name: str, *, check_duration: bool = True) -> None:
        """Read the headers of the file open as ``fd``; raises what `probe` raises
        (``InputTooShort`` only with ``check_duration``, for a stated duration under 0.1 s)."""
        self.path = name
        self._owned_fd: int | None = None
        _check_file(fd, name)
        self._reader = HashingReader(fd, name)
        self._file = io.BufferedReader(self._reader, buffer_size=READ_BUFFER)
        self._decoder: Decoder | None = None
        self._used = False
        self._blocks: Generator[np.ndarray, None, None] | None = None
        self.samples = 0
        """Samples yielded by `blocks` so far, at its ``sample_rate``."""
        try:
            self._decoder = self._open_decoder()
            self.info = self._decoder.info
            exact = isinstance(self._decoder, SoundfileDecoder)  # libsndfile counts exactly
            if check_duration and (self.info.duration > 0 or exact):
                refuse_too_short(name, self.info.duration)
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, check_duration: bool = True) -> Recording:
        """The recording at ``path``, named by it; the descriptor is closed with the recording."""
        name = os.fspath(path)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise read_error(name, exc) from exc
        try:
            recording = cls(fd, name, check_duration=check_duration)
        except BaseException:
            os.close(fd)
            raise
        recording._owned_fd = fd
        return recording

    def _open_decoder(self) -> Decoder:
        """libsndfile's decoder where it reads the file, else PyAV's (after the Ogg check)."""
        reader, name = self._reader, self.path
        if reader.read_at(0, len(OGG_MAGIC)) == OGG_MAGIC:
            check_ogg_end(name, reader.read_at, reader.size())
        decoder = SoundfileDecoder.open(name, self._file)
        if decoder is not None:
            return decoder
        self._file.seek(0)
        return AvDecoder.open(name, self._file, reader.read_at, reader.size())

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the `blocks` iterator, the decoder, the reader and a descriptor `open` made
        (idempotent)."""
        if self._blocks is not None:
            self._blocks.close()
        if self._decoder is not None:
            self._decoder.close()
        self._file.close()
        if self._owned_fd is not None:
            os.close(self._owned_fd)
            self._owned_fd = None

    def blocks(
        self, *, sample_rate: int = 16000, block_seconds: float = 30.0, start: float = 0.0
    ) -> Iterator[np.ndarray]:
        """Yield the audio as mono float32 1-D blocks at ``sample_rate``; constant memory.

        Traps, read before use:
        - One pass: a second call raises ``RuntimeError`` (the file is read once).
        - Blocks vary in length: about ``block_seconds`` each, but the first is shorter by the
          resampler's latency, and the last is whatever remains. Only their concatenation is
          defined; ``samples`` is its length so far.
        - Total length is ``round(n * sample_rate / native_rate)`` for ``n`` decoded native
          samples — this can differ from the container's stated duration (AAC/Opus priming is
          removed by the decoder, a cut-off file that states no length yields what it holds).
        - Down-mix is the plain channel mean (L+R)/2 in float32 — not FFmpeg's +3 dB (L+R)/√2.
        - Timing: PyAV-decoded frames are placed by timestamp relative to the container's start
          (gaps are filled with zeros, overlaps trimmed; jumps beyond 60 s are counted through as
          discontinuities); soundfile-decoded audio is counted, which is exact there.
        - A file shorter than its container states is ``InputTruncated``: an Ogg stream
          without its end-of-stream page or an MP3 smaller than its Xing/VBRI byte count when
          opened; a WAV, FLAC, mp4/mkv/webm or MP3 (frame count) that decodes short after its
          last block. Otherwise a partly corrupt file gives what decodes (a warning is logged):
          packets that fail to decode become silence, and only a file where nothing decodes is
          ``InputUnreadable``.
        - Refused with `pipeline.errors`: ``ParamsError`` when called; ``InvalidSamples``
          (NaN/inf) and ``TransientIOError`` during iteration; ``InputTooShort`` (< 0.1 s) before
          the last block is yielded.
        - ``start`` (seconds) seeks first, for players: the first sample is the one at ``start``
          (PyAV placement within 2 ms), and the 0.1 s minimum is not checked.
        - At a rate other than ``sample_rate`` the file is decoded in a thread of its own, one
          block ahead of the resampler (`prefetch`); `close` closes the iterator first, so that
          thread stops before the file closes.
        """
        _check_block_params(sample_rate, block_seconds, start)
        if self._used:
            raise RuntimeError(f"{self.path}: Recording.blocks can be called only once")
        self._used = True
        assert self._decoder is not None
        rate = self.info.sample_rate
        block = max(int(round(block_seconds * rate)), min_samples(rate))
        chunks = self._decoder.chunks(block=block, start=start)
        minimum = 0 if start else min_samples(rate)
        native = mono_blocks(chunks, block)
        if rate != sample_rate:
            native = prefetch(native, depth=1)
        mono = resampled(self.path, native, rate, sample_rate, minimum=minimum)
        self._blocks = self._counted(mono)
        return self._blocks

    def _counted(self, blocks: Iterator[np.ndarray]) -> Generator[np.ndarray, None, None]:
        """Count ``blocks``; a read error that a decoder reported as a broken file, or let
        through as a bare ``OSError``, becomes the pipeline error for it (often transient)."""
        try:
            for block in blocks:
                self.samples += len(block)
                yield block
        except InputUnreadable as exc:
            raise self._reader.failure() or exc from exc
        except OSError as exc:
            raise read_error(self.path, exc) from exc

    def sha256(self) -> str:
        """Hex SHA-256 of the file's bytes: what decoding read, plus any bytes it skipped."""
        try:
            return self._reader.hexdigest()
        except OSError as exc:
            raise read_error(self.path, exc) from exc


def _check_block_params(sample_rate: int, block_seconds: float, start: float) -> None:
    """Refuse `Recording.blocks` parameters, quoting the bad value."""
    if not isinstance(sample_rate, int) or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ParamsError(
            f"sample_rate must be an int in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}, "
            f"got {sample_rate!r}"
        )
    if not isinstance(block_seconds, (int, float)) or not block_seconds >= MIN_DURATION:
        raise ParamsError(f"block_seconds must be >= {MIN_DURATION}, got {block_seconds!r}")
    if not isinstance(start, (int, float)) or not 0 <= start < math.inf:
        raise ParamsError(f"start must be a finite number of seconds >= 0, got {start!r}")


def _check_file(fd: int, name: str) -> None:
    """Check that ``fd`` is a non-empty regular file."""
    try:
        st = os.fstat(fd)
    except OSError as exc:
        raise read_error(name, exc) from exc
    if stat.S_ISDIR(st.st_mode):
        raise InputNotAFile("is a directory, not a media file", path=name)
    if not stat.S_ISREG(st.st_mode):
        raise InputNotAFile("is not a regular file (device, pipe or socket)", path=name)
    if st.st_size == 0:
        raise InputEmpty("file is empty (0 bytes)", path=name)
