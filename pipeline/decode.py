"""Streamed audio decoding: any media file → mono float32 blocks at a fixed sample rate.

libsndfile (soundfile) reads what it can (wav, flac, ogg/vorbis, ogg/opus, aiff, ...) with exact
sample counts; PyAV (FFmpeg) reads the rest (mp3, mp4/m4a/mov AAC, mkv, webm, ...) and places every
frame by its timestamp. Channels are averaged in float, then resampled by one
``soxr.ResampleStream`` per file, so block boundaries leave no seams. A `Recording` opens a file
once and reads it once: its header info, its audio, its length and the sha256 of its bytes all
come from that one pass (besides the few bytes `pipeline.truncation` reads to catch a cut-off
copy).
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import math
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import soundfile as sf
import soxr

from ocml.pipeline.errors import (
    BadSampleRate,
    InputEmpty,
    InputMissing,
    InputNotAFile,
    InputTooShort,
    InputTruncated,
    InputUnreadable,
    InvalidSamples,
    NoAudioTrack,
    ParamsError,
    TransientIOError,
)
from ocml.pipeline.truncation import OGG_MAGIC, check_mp3_size, check_ogg_end, mp3_header

log = logging.getLogger(__name__)

MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
MIN_DURATION = 0.1
# Timestamp jumps larger than this are discontinuities (counted through), not gaps to fill.
MAX_TIMESTAMP_JUMP = 60.0
_SOUNDFILE_READ = 1 << 16
_READ_BUFFER = 1 << 20
"""Bytes read from the file at a time (for libsndfile and FFmpeg alike)."""
# FFmpeg demuxers (besides the *_pipe image ones) that detect images or text, not recordings.
_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_WAV_UNKNOWN_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}
_INDEXED_FORMATS = ("mov", "mp4", "matroska", "webm")
"""Containers whose stated duration is exact enough to detect a truncated file."""
_TRUNCATION_TOLERANCE = 0.5
"""Seconds of audio a file may fall short of its stated duration before it counts as truncated."""
_SEEK_PREROLL = 0.5
"""Seconds a PyAV seek lands before the wanted start; what comes before it is trimmed."""
_NOT_MEDIA_FORMATS = {"image2", "tty", "gif", "webp", "apng", "ico"}
_PERMANENT_OS_ERRORS = {
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EACCES,
    errno.EPERM,
    errno.ELOOP,
    errno.ENAMETOOLONG,
}
_TRANSIENT_AV_ERRORS = {
    errno.EIO,
    errno.ESTALE,
    errno.ETIMEDOUT,
    errno.EAGAIN,
    errno.EINTR,
    errno.ENOTCONN,
    errno.ECONNRESET,
    errno.EHOSTDOWN,
    errno.ENOLINK,
    errno.EREMOTEIO,
    errno.EBUSY,
}
_SAMPLE_TYPES = {
    "flt": np.float32,
    "dbl": np.float64,
    "s16": np.int16,
    "s32": np.int32,
    "s64": np.int64,
    "u8": np.uint8,
}
_SAMPLE_SCALE = {
    np.dtype(np.int16): 2.0**-15,
    np.dtype(np.int32): 2.0**-31,
    np.dtype(np.int64): 2.0**-63,
    np.dtype(np.uint8): 2.0**-7,
}


@dataclass(frozen=True)
class AudioInfo:
    """What `probe` learns from a file's headers; ``duration`` may be the container's estimate."""

    path: str
    duration: float
    sample_rate: int
    channels: int
    codec: str
    container: str
    has_video: bool


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Read the headers of ``path`` (no decoding) and describe its audio.

    Raises the `stream` errors that headers reveal; ``InputTooShort`` when the stated duration is
    under 0.1 s. ``duration`` is 0.0 when the container states none.
    """
    with Recording(path) as recording:
        return recording.info


def stream(
    path: str | os.PathLike[str],
    *,
    sample_rate: int = 16000,
    block_seconds: float = 30.0,
    start: float = 0.0,
) -> Iterator[np.ndarray]:
    """Yield the audio of ``path`` as mono float32 1-D blocks at ``sample_rate``; constant memory.

    ``Recording(path).blocks(...)`` for callers that need nothing else of the file (players,
    peers); the file is closed when the iterator ends or is closed. Traps: see
    `Recording.blocks`.
    """
    recording = Recording(path, check_duration=not start)
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
    """One media file, opened once: its `info`, its audio (`blocks`), its length and its sha256.

    The file is read through a reader that hashes its bytes in file order as the decoder reads
    them, so ``sha256()`` after decoding costs no second pass over the file, and ``samples``
    counts what `blocks` yielded. Use it as a context manager (or call ``close``).
    """

    def __init__(self, path: str | os.PathLike[str], *, check_duration: bool = True) -> None:
        """Open ``path`` and read its headers; raises what `probe` raises (``InputTooShort`` only
        with ``check_duration``, for a stated duration under 0.1 s)."""
        self.path = _check_file(path)
        self._reader = _HashingReader(self.path)
        self._file = io.BufferedReader(self._reader, buffer_size=_READ_BUFFER)
        self._sound: sf.SoundFile | None = None
        self._container: av.container.InputContainer | None = None
        self._audio: av.AudioStream | None = None
        self._promised: float | None = None
        self._used = False
        self.samples = 0
        """Samples yielded by `blocks` so far, at its ``sample_rate``."""
        try:
            if self._reader.read_at(0, len(OGG_MAGIC)) == OGG_MAGIC:
                check_ogg_end(self.path, self._reader.read_at, self._reader.size())
            self._sound = _open_soundfile(self.path, self._file)
            if self._sound is not None:
                self.info = _soundfile_info(self.path, self._sound)
            else:
                self._file.seek(0)
                self._container = _open_av(self.path, self._file)
                self._audio = _audio_stream(self.path, self._container)
                self.info = _av_info(self.path, self._container, self._audio)
                self._promised = self._mp3_promise()
            known = self.info.duration > 0 or self._sound is not None  # libsndfile counts exactly
            if check_duration and known and self.info.duration < MIN_DURATION:
                raise InputTooShort(
                    f"too short: {self.info.duration:.3f} s of audio, at least {MIN_DURATION} s "
                    "needed",
                    path=self.path,
                )
        except BaseException:
            self.close()
            raise

    def _mp3_promise(self) -> float | None:
        """Refuse an MP3 smaller than its Xing/VBRI header states; return the seconds its frame
        count states, for the check after decoding, or None when it states none."""
        if self.info.container != "mp3":
            return None
        header = mp3_header(self._reader.read_at)
        if header is None:
            return None
        check_mp3_size(self.path, header, self._reader.size())
        return header.seconds

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the decoder and the file (idempotent)."""
        if self._sound is not None:
            self._sound.close()
        if self._container is not None:
            self._container.close()
        self._file.close()

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
        """
        if (
            not isinstance(sample_rate, int)
            or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE
        ):
            raise ParamsError(
                f"sample_rate must be an int in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}, "
                f"got {sample_rate!r}"
            )
        if not isinstance(block_seconds, (int, float)) or not block_seconds >= MIN_DURATION:
            raise ParamsError(f"block_seconds must be >= {MIN_DURATION}, got {block_seconds!r}")
        if not isinstance(start, (int, float)) or not 0 <= start < math.inf:
            raise ParamsError(f"start must be a finite number of seconds >= 0, got {start!r}")
        if self._used:
            raise RuntimeError(f"{self.path}: Recording.blocks can be called only once")
        self._used = True
        rate = self.info.sample_rate
        block = max(int(round(block_seconds * rate)), _min_samples(rate))
        if self._sound is not None:
            skip = min(round(start * rate), self._sound.frames)
            chunks = _soundfile_chunks(self.path, self._sound, skip=skip)
        else:
            chunks = _av_chunks(
                self.path,
                self._container,
                self._audio,
                rate,
                block=block,
                start=start,
                promised=self._promised,
            )
        minimum = 0 if start else _min_samples(rate)
        resampled = _resampled(
            self.path, _mono_blocks(chunks, block), rate, sample_rate, minimum=minimum
        )
        return self._counted(resampled)

    def _counted(self, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Count ``blocks``; a read error that a decoder reported as a broken file, or let
        through as a bare ``OSError``, becomes the pipeline error for it (often transient)."""
        try:
            for block in blocks:
                self.samples += len(block)
                yield block
        except InputUnreadable as exc:
            raise self._reader.failure() or exc from exc
        except OSError as exc:
            raise _os_error(self.path, exc) from exc

    def sha256(self) -> str:
        """Hex SHA-256 of the file's bytes: what decoding read, plus any bytes it skipped."""
        try:
            return self._reader.hexdigest()
        except OSError as exc:
            raise _os_error(self.path, exc) from exc


class _HashingReader(io.RawIOBase):
    """The file, read-only, feeding SHA-256 with its bytes in file order as they are read.

    Bytes read out of order (a demuxer that reads an mp4 index at the end first) are hashed when
    ``hexdigest`` reads whatever was not hashed yet; bytes read twice are hashed once.
    """

    def __init__(self, path: str) -> None:
        try:
            self._raw = io.FileIO(path, "r")
        except OSError as exc:
            raise _os_error(path, exc) from exc
        self.name = path
        self._digest = hashlib.sha256()
        self._hashed = 0
        self._position = 0
        self._error: OSError | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        at = self._position
        try:
            n = self._raw.readinto(buffer) or 0
        except OSError as exc:  # libsndfile's callbacks swallow exceptions: keep it for later
            self._error = exc
            raise
        self._position = at + n
        if at <= self._hashed < at + n:
            self._digest.update(memoryview(buffer)[self._hashed - at : n])
            self._hashed = at + n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._position = self._raw.seek(offset, whence)
        return self._position

    def tell(self) -> int:
        return self._position

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset``, without moving the position or hashing them."""
        try:
            return os.pread(self._raw.fileno(), size, offset)
        except OSError as exc:
            raise _os_error(self.name, exc) from exc

    def size(self) -> int:
        """The file's size in bytes now."""
        try:
            return os.fstat(self._raw.fileno()).st_size
        except OSError as exc:
            raise _os_error(self.name, exc) from exc

    def close(self) -> None:
        self._raw.close()
        super().close()

    def failure(self) -> Exception | None:
        """The pipeline error for an OS error hidden from us by a decoder, if one happened."""
        return None if self._error is None else _os_error(self.name, self._error)

    def hexdigest(self) -> str:
        """Hash the bytes not hashed yet (those the decoder skipped), then return the digest."""
        self._raw.seek(self._hashed)
        while piece := self._raw.read(_READ_BUFFER):
            self._digest.update(piece)
            self._hashed += len(piece)
        self._position = self._hashed
        return self._digest.hexdigest()


def _soundfile_info(name: str, sound: sf.SoundFile) -> AudioInfo:
    _check_rate(name, sound.samplerate)
    return AudioInfo(
        name,
        sound.frames / sound.samplerate,
        sound.samplerate,
        sound.channels,
        sound.subtype.lower(),
        sound.format.lower(),
        False,
    )


def _av_info(name: str, container: av.container.InputContainer, audio: av.AudioStream) -> AudioInfo:
    codec = audio.codec_context
    _check_rate(name, codec.sample_rate)
    return AudioInfo(
        name,
        _av_duration(container, audio),
        codec.sample_rate,
        codec.channels,
        codec.codec.canonical_name,
        container.format.name,
        _has_video(container),
    )


def _check_file(path: str | os.PathLike[str]) -> str:
    """Return ``path`` as str after checking it names a non-empty regular file."""
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except OSError as e:
        raise _os_error(name, e) from e
    if stat.S_ISDIR(st.st_mode):
        raise InputNotAFile("is a directory, not a media file", path=name)
    if not stat.S_ISREG(st.st_mode):
        raise InputNotAFile("is not a regular file (device, pipe or socket)", path=name)
    if st.st_size == 0:
        raise InputEmpty("file is empty (0 bytes)", path=name)
    return name


def _os_error(name: str, e: OSError) -> Exception:
    """Map an OSError to the pipeline error it means; unknown I/O failures may pass."""
    reason = e.strerror or str(e)
    if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
        return InputMissing(f"no such file ({reason})", path=name)
    if e.errno == errno.EISDIR:
        return InputNotAFile("is a directory, not a media file", path=name)
    if e.errno in _PERMANENT_OS_ERRORS:
        return InputUnreadable(f"cannot be opened ({reason})", path=name)
    return TransientIOError(f"I/O error, may pass ({reason})", path=name)


def _av_error(name: str, e: av.FFmpegError, doing: str) -> Exception:
    """Map an FFmpeg error to a pipeline error: real OS errors by errno, the rest unreadable."""
    code = e.errno if isinstance(e.errno, int) else None
    if code in _PERMANENT_OS_ERRORS or code in _TRANSIENT_AV_ERRORS:
        return _os_error(name, OSError(code, e.strerror or os.strerror(code)))
    return InputUnreadable(f"{doing} (FFmpeg: {e.strerror or e})", path=name)


def _check_rate(name: str, rate: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise BadSampleRate(
            f"sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz", path=name
        )


def _open_soundfile(name: str, file: io.BufferedReader) -> sf.SoundFile | None:
    """Open with libsndfile, or None when PyAV should read it.

    PyAV also takes MP3: libsndfile 1.2.2 returns wrong samples for MP3 read in several calls
    (whole-file reads are right), so it cannot stream MP3.
    """
    try:
        sound = sf.SoundFile(file)
    except sf.LibsndfileError:
        return None
    except OSError as e:
        raise _os_error(name, e) from e
    if sound.format == "MP3":
        sound.close()
        return None
    try:
        _check_wav_size(name, sound)
    except InputUnreadable:
        sound.close()
        raise
    return sound


def _check_wav_size(name: str, sound: sf.SoundFile) -> None:
    """Refuse a WAV whose data chunk is shorter than its header says (a cut-off copy).

    libsndfile reads such a file without complaint and reports the shorter length; only its log
    says ``data : 288000 (should be 143978)``. Sizes 0 and 0xFFFFFFFF mean "unknown" (streamed
    WAV) and are accepted.
    """
    match = _WAV_DATA_SIZE.search(sound.extra_info)
    if match is None:
        return
    declared, present = int(match[1]), int(match[2])
    if declared not in _WAV_UNKNOWN_SIZES and present < declared:
        raise InputTruncated(
            f"truncated: the header promises {declared} bytes of audio, the file holds {present}",
            path=name,
        )


def _open_av(name: str, file: io.BufferedReader) -> av.container.InputContainer:
    try:
        return av.open(file, "r", buffer_size=_READ_BUFFER)
    except av.FFmpegError as e:
        raise _av_error(name, e, "not a readable audio or video file") from e
    except OSError as e:
        raise _os_error(name, e) from e


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


def _av_duration(container: av.container.InputContainer, audio: av.AudioStream) -> float:
    if audio.duration is not None and audio.time_base is not None:
        return float(audio.duration * audio.time_base)
    return container.duration / av.time_base if container.duration else 0.0


# A chunk is a sequence of equally long 1-D channel rows in one sample type ([channels][n]).
Chunk = Sequence[np.ndarray]


def _soundfile_chunks(name: str, sound: sf.SoundFile, *, skip: int = 0) -> Iterator[Chunk]:
    """Yield float32 chunks read by libsndfile in 64 Ki-frame reads.

    A read error (a truncated FLAC loses sync) or fewer frames than the header states means the
    file is cut off or corrupt: ``InputUnreadable``, never a silently shorter result.
    """
    decoded = skip
    with sound:
        if skip:
            sound.seek(skip)
        while True:
            try:
                data = sound.read(_SOUNDFILE_READ, dtype="float32", always_2d=True)
            except sf.LibsndfileError as e:
                raise InputUnreadable(
                    f"truncated or corrupt: decoding failed after {decoded / sound.samplerate:.2f}"
                    f" of {sound.frames / sound.samplerate:.2f} s ({e})",
                    path=name,
                ) from e
            if not len(data):
                break
            decoded += len(data)
            yield data.T
        if decoded < sound.frames:
            raise InputTruncated(
                f"truncated: {decoded / sound.samplerate:.2f} of "
                f"{sound.frames / sound.samplerate:.2f} s decodable",
                path=name,
            )


def _av_chunks(
    name: str,
    container: av.container.InputContainer,
    audio: av.AudioStream,
    rate: int,
    *,
    block: int,
    start: float = 0.0,
    promised: float | None = None,
) -> Iterator[Chunk]:
    """Yield the decoded audio of ``audio`` (native sample type) in chunks of ``block`` samples,
    placed by timestamp; ``promised`` is the duration an MP3 header states (`_check_complete`).

    Sample ``k`` of the output is the audio at ``start + k / rate`` (see `_start_time`). A frame
    whose timestamp disagrees with the running count by more than a tolerance (2 ms plus one tick)
    is preceded by zeros or trimmed, except that a jump of more than a minute after the first
    frame is a timestamp discontinuity and counted through. Frames in place are gathered in an
    ``av.AudioFifo`` and leave it ``block`` samples at a time (one conversion and one down-mix
    per block instead of per 1024-sample AAC frame); only the timestamp check runs per frame.
    """
    tb_num, tb_den = audio.time_base.numerator, audio.time_base.denominator
    zero = Fraction(_start_time(container))
    origin = round((zero + Fraction(start)) * rate)
    if start:  # land early: decoders with pre-roll (Opus) misplace the first frames after a seek
        target = zero + max(Fraction(0), Fraction(start) - Fraction(_SEEK_PREROLL))
        container.seek(int(target * tb_den / tb_num), stream=audio)
    tolerance = math.ceil(rate * (0.002 + tb_num / tb_den))
    jump = MAX_TIMESTAMP_JUMP * rate
    written = 0
    failed = 0
    fifo: _Fifo | None = None
    with container:
        try:
            for packet in container.demux(audio):
                try:
                    frames = packet.decode()
                except av.FFmpegError as e:
                    if e.errno in _TRANSIENT_AV_ERRORS:
                        raise _av_error(name, e, "reading failed") from e
                    failed += 1
                    continue
                for frame in frames:
                    if frame.sample_rate != rate:
                        raise InputUnreadable(
                            f"sample rate changes from {rate} to {frame.sample_rate} Hz mid-stream",
                            path=name,
                        )
                    shift = 0
                    if frame.pts is not None:
                        shift = (2 * frame.pts * tb_num * rate + tb_den) // (2 * tb_den) - origin
                        shift -= written
                        if abs(shift) > jump and written:
                            log.warning(
                                "%s: timestamp jumps %.1f s at %.2f s; counted through",
                                name,
                                shift / rate,
                                written / rate,
                            )
                            shift = 0
                    if fifo is not None and (abs(shift) > tolerance or not fifo.takes(frame)):
                        yield from fifo.drain()
                        fifo = None
                    if shift > tolerance:
                        rows = _frame_rows(frame)
                        yield from _zeros(len(rows), rows[0].dtype, shift, rate)
                        written += shift
                    elif shift < -tolerance:
                        rows = [row[-shift:] for row in _frame_rows(frame)]
                        written += len(rows[0])
                        if len(rows[0]):
                            yield rows
                        continue
                    if fifo is None:
                        fifo = _Fifo(frame)
                    written += frame.samples
                    yield from fifo.push(frame, block)
        except av.FFmpegError as e:
            if e.errno in _TRANSIENT_AV_ERRORS or not written:
                raise _av_error(name, e, "reading failed") from e
            raise InputUnreadable(
                f"truncated or corrupt: reading failed after "
                f"{written / rate:.2f} s ({e.strerror or e})",
                path=name,
            ) from e
        if fifo is not None:
            yield from fifo.drain()
        _check_complete(name, container, audio, start + written / rate, promised=promised)
    if failed:
        if not written:
            raise InputUnreadable(f"none of {failed} audio packets could be decoded", path=name)
        log.warning("%s: %d audio packets could not be decoded; replaced by silence", name, failed)


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


def _check_complete(
    name: str,
    container: av.container.InputContainer,
    audio: av.AudioStream,
    decoded: float,
    *,
    promised: float | None = None,
) -> None:
    """Refuse audio that ends well before its stated end: an indexed container's (mp4, mkv,
    webm) stated duration, or the ``promised`` seconds of an MP3's frame-count header.

    A cut-off mp4 with its index in front ("faststart") demuxes without error; only the stated
    duration shows what is missing. Other MP3s and raw streams state no reliable duration.
    """
    if promised is not None:
        stated, tolerance = promised, _TRUNCATION_TOLERANCE
    elif any(part in _INDEXED_FORMATS for part in container.format.name.split(",")):
        stated = _av_duration(container, audio)
        tolerance = max(_TRUNCATION_TOLERANCE, 0.01 * stated)
    else:
        return
    if stated - decoded > tolerance:
        raise InputTruncated(f"truncated: {decoded:.2f} of {stated:.2f} s decodable", path=name)


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


def _mono_blocks(chunks: Iterator[Chunk], block: int) -> Iterator[np.ndarray]:
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
            mixed.append(_channel_mean(rows))
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


def _channel_mean(rows: Sequence[np.ndarray]) -> np.ndarray:
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


def _resampled(
    name: str, blocks: Iterator[np.ndarray], rate: int, target: int, *, minimum: int
) -> Iterator[np.ndarray]:
    """Check mono blocks (NaN/inf, at least ``minimum`` samples) and resample them with one soxr
    stream (HQ).

    Every block but the last holds at least 0.1 s, so a too-short file is refused before any of
    its audio is yielded.
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
        raise InputTooShort(
            f"too short: {decoded / rate:.3f} s of audio decoded, at least {MIN_DURATION} s needed",
            path=name,
        )
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        if len(tail):
            yield tail


def _min_samples(rate: int) -> int:
    return math.ceil(MIN_DURATION * rate)
