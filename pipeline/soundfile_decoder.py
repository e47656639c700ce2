"""libsndfile decoding (wav, flac, ogg/vorbis, ogg/opus, aiff, ...): exact sample counts."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import soundfile as sf

from ocml.pipeline.decoder import AudioInfo, Chunk, check_rate
from ocml.pipeline.errors import InputTruncated, InputUnreadable
from ocml.pipeline.oserrors import read_error

READ_FRAMES = 1 << 16
"""Frames per libsndfile read."""
_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_WAV_UNKNOWN_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}


class SoundfileDecoder:
    """A file libsndfile reads, with its header `info`; see `open`."""

    def __init__(self, name: str, sound: sf.SoundFile) -> None:
        self.name = name
        self._sound = sound
        check_rate(name, sound.samplerate)
        self.info = AudioInfo(
            name,
            sound.frames / sound.samplerate,
            sound.samplerate,
            sound.channels,
            sound.subtype.lower(),
            sound.format.lower(),
            False,
        )

    @classmethod
    def open(cls, name: str, file: io.BufferedIOBase) -> SoundfileDecoder | None:
        """The decoder for ``file``, or None when libsndfile cannot read it (or it is MP3:
        libsndfile 1.2.2 returns wrong samples for MP3 read in several calls)."""
        try:
            sound = sf.SoundFile(file)
        except sf.LibsndfileError:
            return None
        except OSError as exc:
            raise read_error(name, exc) from exc
        if sound.format == "MP3":
            sound.close()
            return None
        try:
            _check_wav_size(name, sound)
            return cls(name, sound)
        except BaseException:
            sound.close()
            raise

    def close(self) -> None:
        self._sound.close()

    def chunks(self, *, block: int, start: float) -> Iterator[Chunk]:
        """Float32 chunks from ``start`` seconds, read `READ_FRAMES` at a time (``block`` is
        not needed: the mix-down gathers blocks).

        A read error (a truncated FLAC loses sync) is ``InputUnreadable``; fewer frames than the
        header states is ``InputTruncated``, never a silently shorter result.
        """
        sound, name = self._sound, self.name
        decoded = min(round(start * sound.samplerate), sound.frames)
        with sound:
            if decoded:
                sound.seek(decoded)
            while True:
                try:
                    data = sound.read(READ_FRAMES, dtype="float32", always_2d=True)
                except sf.LibsndfileError as exc:
                    raise InputUnreadable(
                        f"truncated or corrupt: decoding failed after "
                        f"{decoded / sound.samplerate:.2f} of "
                        f"{sound.frames / sound.samplerate:.2f} s ({exc})",
                        path=name,
                    ) from exc
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
