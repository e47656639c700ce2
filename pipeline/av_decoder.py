"""PyAV (FFmpeg) decoding for what libsndfile does not read (mp3, mp4/m4a/mov AAC, mkv, webm, ...):
every frame placed by its timestamp."""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
import numpy as np

from ocml.pipeline.decoder import AudioInfo, Chunk, check_rate
from ocml.pipeline.errors import InputTruncated, InputUnreadable, NoAudioTrack
from ocml.pipeline.hashing_reader import READ_BUFFER
from ocml.pipeline.oserrors import PERMANENT_ERRNOS, TRANSIENT_ERRNOS, read_error
from ocml.pipeline.truncation import check_mp3_size, mp3_header

log = logging.getLogger(__name__)

MAX_TIMESTAMP_JUMP = 60.0
"""Seconds: larger timestamp jumps are discontinuities (counted through), not gaps to fill."""
_INDEXED_FORMATS = ("mov", "mp4", "matroska", "webm")
"""Containers whose stated duration is exact enough to detect a truncated file."""
_TRUNCATION_TOLERANCE = 0.5
"""Seconds of audio a file may fall short of its stated duration before it counts as truncated."""
_SEEK_PREROLL = 0.5
"""Seconds a seek lands before the wanted start; what comes before it is trimmed."""
_NOT_MEDIA_FORMATS = {"image2", "tty", "gif", "webp", "apng", "ico"}
"""FFmpeg demuxers (besides the ``*_pipe`` image ones) that detect images or text."""
_SAMPLE_TYPES = {
    "flt": np.float32,
    "dbl": np.float64,
    "s16": np.int16,
    "s32": np.int32,
    "s64": np.int64,
    "u8": np.uint8,
}


class AvDecoder:
    """A container's main audio stream, with its header `info`; see `open`."""

    def __init__(
        self,
        name: str,
        container: av.container.InputContainer,
        audio: av.AudioStream,
        *,
        promised: float | None = None,
    ) -> None:
        self.name = name
        self._container = container
        self._audio = audio
        self._promised = promised
        self._failed_packets = 0
        codec = audio.codec_context
        check_rate(name, codec.sample_rate)
        self.info = AudioInfo(
            name,
            _stated_duration(container, audio),
            codec.sample_rate,
            codec.channels,
            codec.codec.canonical_name,
            container.format.name,
            _has_video(container),
        )

    @classmethod
    def open(
        cls, name: str, file: io.BufferedIOBase, read_at: Callable[[int, int], bytes], size: int
    ) -> AvDecoder:
        """The decoder for ``file``; refuses an MP3 smaller than its Xing/VBRI header states and
        keeps the seconds its frame count states for the check after decoding."""
        try:
            container = av.open(file, "r", buffer_size=READ_BUFFER)
        except av.FFmpegError as exc:
            raise _av_error(name, exc, "not a readable audio or video file") from exc
        except OSError as exc:
            raise read_error(name, exc) from exc
        try:
            promised = None
            if container.format.name == "mp3" and (header := mp3_header(read_at)) is not None:
                check_mp3_size(name, header, size)
                promised = header.seconds
            return cls(name, container, _audio_stream(name, container), promised=promised)
        except BaseException:
            container.close()
            raise

    def close(self) -> None:
        self._container.close()

    def chunks(self, *, block: int, start: float) -> Iterator[Chunk]:
        """The audio (native sample type) in chunks of ``block`` samples, placed by timestamp.

        Sample ``k`` is the audio at ``start + k / rate`` (see `_start_time`); see `_Placement`
        for gaps, overlaps and jumps. Packets that fail to decode are skipped (a warning counts
        them); a file where none decodes is ``InputUnreadable``.
        """
        container, audio, rate = self._container, self._audio, self.info.sample_rate
        zero = Fraction(_start_time(container))
        if (
            start
        ):  # land early: decoders with pre-roll (Opus) misplace the first frames after a seek
            target = zero + max(Fraction(0), Fraction(start) - Fraction(_SEEK_PREROLL))
            tb = audio.time_base
            container.seek(int(target * tb.denominator / tb.numerator), stream=audio)
        placement = _Placement(self.name, audio, rate, origin=zero + Fraction(start), block=block)
        with container:
            for frame in self._frames():
                yield from placement.place(frame)
            yield from placement.drain()
            self._check_complete(start + placement.written / rate)
        failed = self._failed_packets
        if failed and not placement.written:
            raise InputUnreadable(
                f"none of {failed} audio packets could be decoded", path=self.name
            )
        if failed:
            log.warning(
                "%s: %d audio packets could not be decoded; replaced by silence", self.name, failed
            )

    def _frames(self) -> Iterator[av.AudioFrame]:
        """Decoded frames of the audio stream; packets that fail to decode are counted."""
        rate, decoded = self.info.sample_rate, 0
        try:
            for packet in self._container.demux(self._audio):
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    if exc.errno in TRANSIENT_ERRNOS:
                        raise _av_error(self.name, exc, "reading failed") from exc
                    self._failed_packets += 1
                    continue
                for frame in frames:
                    if frame.sample_rate != rate:
                        raise InputUnreadable(
                            f"sample rate changes from {rate} to {frame.sample_rate} Hz mid-stream",
                            path=self.name,
                        )
                    decoded += frame.samples
                    yield frame
        except av.FFmpegError as exc:
            if exc.errno in TRANSIENT_ERRNOS or not decoded:
                raise _av_error(self.name, exc, "reading failed") from exc
            raise InputUnreadable(
                f"truncated or corrupt: reading failed after "
                f"{decoded / rate:.2f} s ({exc.strerror or exc})",
                path=self.name,
            ) from exc

    def _check_complete(self, decoded: float) -> None:
        """Refuse audio that ends well before its stated end: an indexed container's (mp4, mkv,
        webm) stated duration, or the seconds an MP3's frame-count header promises.

        A cut-off mp4 with its index in front ("faststart") demuxes without error; only the stated
        duration shows what is missing. Other MP3s and raw streams state no reliable duration.
        """
        if self._promised is not None:
            stated, tolerance = self._promised, _TRUNCATION_TOLERANCE
        elif any(part in _INDEXED_FORMATS for part in self.info.container.split(",")):
            stated = _stated_duration(self._container, self._audio)
            tolerance = max(_TRUNCATION_TOLERANCE, 0.01 * stated)
        else:
            return
        if stated - decoded > tolerance:
            raise InputTruncated(
                f"truncated: {decoded:.2f} of {stated:.2f} s decodable", path=self.name
            )


class _Placement:
    """Puts decoded frames where their timestamps say, batched into blocks.

    A frame whose timestamp disagrees with the running count by more than a tolerance (2 ms plus
    one tick) is preceded by zeros or trimmed, except that a jump of more than
    `MAX_TIMESTAMP_JUMP` after the first frame is a discontinuity and counted through. Frames in
    place gather in a `_Fifo` and leave it ``block`` samples at a time (one conversion and one
    down-mix per block instead of per 1024-sample AAC frame).
    """

    def __init__(
        self, name: str, audio: av.AudioStream, rate: int, *, origin: Fraction, block: int
    ) -> None:
        self.name = name
        self.rate = rate
        self.block = block
        self.written = 0
        """Samples placed so far, zeros included."""
        self._tb = audio.time_base
        self._origin = round(origin * rate)
        self._tolerance = math.ceil(rate * (0.002 + self._tb.numerator / self._tb.denominator))
        self._fifo: _Fifo | None = None

    def place(self, frame: av.AudioFrame) -> Iterator[Chunk]:
        """Yield the chunks that ``frame`` completes, after the zeros a gap before it needs."""
        shift = self._shift(frame)
        if self._fifo is not None and (abs(shift) > self._tolerance or not self._fifo.takes(frame)):
            yield from self.drain()
        if shift > self._tolerance:
            rows = _frame_rows(frame)
            yield from _zeros(len(rows), rows[0].dtype, shift, self.rate)
            self.written += shift
        elif shift < -self._tolerance:
            rows = [row[-shift:] for row in _frame_rows(frame)]
            self.written += len(rows[0])
            if len(rows[0]):
                yield rows
            return
        if self._fifo is None:
            self._fifo = _Fifo(frame)
        self.written += frame.samples
        yield from self._fifo.push(frame, self.block)

    def drain(self) -> Iterator[Chunk]:
        """Yield what the FIFO holds and start a new one with the next frame."""
        if self._fifo is not None:
            yield from self._fifo.drain()
            self._fifo = None

    def _shift(self, frame: av.AudioFrame) -> int:
        """Samples between where ``frame``'s timestamp puts it and where the count is."""
        if frame.pts is None:
            return 0
        num, den = self._tb.numerator, self._tb.denominator
        shift = (2 * frame.pts * num * self.rate + den) // (2 * den) - self._origin - self.written
        if abs(shift) > MAX_TIMESTAMP_JUMP * self.rate and self.written:
            log.warning(
                "%s: timestamp jumps %.1f s at %.2f s; counted through",
                self.name,
                shift / self.rate,
                self.written / self.rate,
            )
            return 0
        return shift


class _Fifo:
    """Decoded frames of one sample format and layout, batched into blocks by ``av.AudioFifo``."""

    def __init__(self, first: av.AudioFrame) -> None:
        self._format = first.format.name
        self._layout = first.layout.name
        self._fifo = av.AudioFifo()

    def takes(self, frame: av.AudioFrame) -> bool:
        """Whether ``frame`` has this FIFO's sample format and channel layout."""
        return frame.format.name == self._format and frame.layout.name == self._layout

    def push(self, frame: av.AudioFrame, block: int) -> Iterator[Chunk]:
        """Add ``frame`` (already placed) and yield every whole ``block`` now available."""
        frame.pts = None  # placement is ours; the FIFO's own continuity check is not wanted
        self._fifo.write(frame)
        while self._fifo.samples >= block:
            yield _frame_rows(self._fifo.read(block))

    def drain(self) -> Iterator[Chunk]:
        """Yield what is left, as one chunk."""
        if self._fifo.samples:
            yield _frame_rows(self._fifo.read())


def _av_error(name: str, exc: av.FFmpegError, doing: str) -> Exception:
    """Map an FFmpeg error to a pipeline error: real OS errors by errno, the rest unreadable."""
    code = exc.errno if isinstance(exc.errno, int) else None
    if code in PERMANENT_ERRNOS or code in TRANSIENT_ERRNOS:
        return read_error(name, OSError(code, exc.strerror or os.strerror(code)))
    return InputUnreadable(f"{doing} (FFmpeg: {exc.strerror or exc})", path=name)


def _audio_stream(name: str, container: av.container.InputContainer) -> av.AudioStream:
    """The container's main audio stream, or the error saying why there is none."""
    if container.streams.audio:
        audio = container.streams.best("audio") or container.streams.audio[0]
        if audio.codec_context.sample_rate and audio.codec_context.channels:
            return audio
        raise InputUnreadable(
            f"audio stream ({audio.codec_context.name}) has no sample rate or channels", path=name
        )
    fmt = container.format.name
    if _has_video(container) and fmt not in _NOT_MEDIA_FORMATS and not fmt.endswith("_pipe"):
        raise NoAudioTrack(f"{fmt} file has video but no audio stream", path=name)
    raise InputUnreadable(
        f"not a readable audio or video file (FFmpeg sees {fmt}, no audio)", path=name
    )


def _has_video(container: av.container.InputContainer) -> bool:
    """True when a video stream is more than attached cover art."""
    return any(
        not s.disposition & av.stream.Disposition.attached_pic for s in container.streams.video
    )


def _stated_duration(container: av.container.InputContainer, audio: av.AudioStream) -> float:
    """The audio stream's stated duration, else the container's, else 0.0."""
    if audio.duration is not None and audio.time_base is not None:
        return float(audio.duration * audio.time_base)
    return container.duration / av.time_base if container.duration else 0.0


def _start_time(container: av.container.InputContainer) -> float:
    """Time 0 of the output: the earliest start of the audio and (non cover-art) video streams.

    Cover art would pull FFmpeg's container start time to 0 before an MP3's first sample; negative
    starts (priming expressed as timestamps) count as 0, so what comes before 0 is dropped.
    """
    starts = [
        s.start_time * s.time_base
        for s in container.streams
        if s.start_time is not None
        and s.time_base is not None
        and (
            s.type == "audio"
            or (s.type == "video" and not s.disposition & av.stream.Disposition.attached_pic)
        )
    ]
    return max(float(min(starts)), 0.0) if starts else 0.0


def _frame_rows(frame: av.AudioFrame) -> list[np.ndarray]:
    """A frame's channels as 1-D views of its planes, in the decoder's sample type (no copy)."""
    dtype = _SAMPLE_TYPES[frame.format.name.removesuffix("p")]
    n = frame.samples
    if frame.format.is_planar:
        return [np.frombuffer(plane, dtype, n) for plane in frame.planes]
    channels = len(frame.layout.channels)
    return list(np.frombuffer(frame.planes[0], dtype, n * channels).reshape(n, channels).T)


def _zeros(channels: int, dtype: np.dtype, n: int, rate: int) -> Iterator[Chunk]:
    """``n`` samples of silence in chunks of at most 10 s, so long gaps stay in bounded memory."""
    step = 10 * rate
    silence = np.full(min(step, n), 128 if dtype == np.uint8 else 0, dtype=dtype)
    for k in range(0, n, step):
        yield [silence[: min(step, n - k)]] * channels
