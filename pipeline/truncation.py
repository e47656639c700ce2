"""What a container says about its own length, read from a few of its bytes, to catch a cut-off
copy that decodes without an error (an upload still in progress, an interrupted copy).

Two containers tell, and are read here without decoding: an Ogg stream marks its last page
"end of stream", so a file whose last complete page lacks the mark was cut off; an MP3 with a
Xing/Info (LAME, FFmpeg) or VBRI (Fraunhofer) header in its first frame states the stream's bytes
and frames, so a file smaller than the bytes, or decoding to fewer seconds than the frames, was
cut off. An MP3 without such a header (constant bit rate, written by some encoders) states
nothing: a cut-off one cannot be told from a shorter recording. Only the start and the end of the
file are read (``read_at`` with an offset), never the whole file.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from ocml.pipeline.errors import InputTruncated

ReadAt = Callable[[int, int], bytes]
"""``read_at(offset, size)``: up to ``size`` bytes of the file from ``offset``."""

OGG_MAGIC = b"OggS"
_OGG_PAGE_MAX = 27 + 255 + 255 * 255
"""The largest Ogg page: header, 255 lacing values, 255 segments of 255 bytes."""
_OGG_END_OF_STREAM = 0x04
_BIT_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))

_ID3_TAGS_MAX = 16
_MP3_SYNC_SEARCH = 1 << 16
"""Bytes after the ID3v2 tags searched for the first MPEG audio frame."""
_MP3_HEADER_WINDOW = 256
"""Bytes of the first frame that hold any Xing/Info or VBRI header."""
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
"""Sample rates by MPEG version bits (3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5) and rate index."""


@dataclass(frozen=True)
class Mp3Header:
    """The stream length an MP3's first frame states: ``frames`` and ``size`` (bytes of MPEG
    audio, the header frame included) as far as given; ``kind`` names the header."""

    kind: str
    frames: int | None
    size: int | None
    sample_rate: int
    samples_per_frame: int

    @property
    def seconds(self) -> float | None:
        """The duration the frame count states (encoder delay and padding included)."""
        if self.frames is None:
            return None
        return self.frames * self.samples_per_frame / self.sample_rate


def check_ogg_end(name: str, read_at: ReadAt, size: int) -> None:
    """Raise ``InputTruncated`` unless the last complete Ogg page of the file ends its stream.

    Pages are found from the end and recognised by their checksum, so bytes after the last page
    (a tag some tools append) do not matter.
    """
    window = min(size, 2 * _OGG_PAGE_MAX)
    tail = read_at(size - window, window)
    at = len(tail)
    while (at := tail.rfind(OGG_MAGIC, 0, at)) >= 0:
        flags = _ogg_page_flags(tail, at)
        if flags is None:
            continue
        if not flags & _OGG_END_OF_STREAM:
            raise InputTruncated(
                f"truncated: the Ogg stream has no end (its last complete page, at byte "
                f"{size - len(tail) + at} of {size}, lacks the end-of-stream mark)",
                path=name,
            )
        return
    raise InputTruncated(
        f"truncated: no complete Ogg page in the last {window} bytes of the file", path=name
    )


def _ogg_page_flags(data: bytes, at: int) -> int | None:
    """The header-type flags of the complete page at ``data[at:]`` whose checksum holds, or None."""
    if at + 27 > len(data) or data[at + 4] != 0:
        return None
    lacing = at + 27 + data[at + 26]
    if lacing > len(data):
        return None
    end = lacing + sum(data[at + 27 : lacing])
    if end > len(data):
        return None
    page = bytearray(data[at:end])
    (stored,) = struct.unpack_from("<I", page, 22)
    page[22:26] = bytes(4)
    return page[5] if _ogg_crc(bytes(page)) == stored else None


def _ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, MSB first, no inversion) through zlib's reflected
    one."""
    reflected = zlib.crc32(data.translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def mp3_header(read_at: ReadAt) -> Mp3Header | None:
    """The Xing/Info or VBRI header in the first MPEG Layer III frame after any ID3v2 tags, or
    None when there is none (the stream states no length)."""
    start = _after_id3v2(read_at)
    window = read_at(start, _MP3_SYNC_SEARCH)
    found = _first_frame(window)
    if found is None:
        return None
    at, (version, rate, mono) = found
    frame = window[at : at + _MP3_HEADER_WINDOW]
    if len(frame) < _MP3_HEADER_WINDOW:
        frame += read_at(start + at + len(frame), _MP3_HEADER_WINDOW - len(frame))
    per_frame = 1152 if version == 3 else 576
    side = (17 if mono else 32) if version == 3 else (9 if mono else 17)
    return _xing(frame, 4 + side, rate, per_frame) or _vbri(frame, rate, per_frame)


def _after_id3v2(read_at: ReadAt) -> int:
    """Offset of the first byte after the ID3v2 tags at the start of the file."""
    offset = 0
    for _ in range(_ID3_TAGS_MAX):
        head = read_at(offset, 10)
        if len(head) < 10 or head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
            break
        body = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        offset += 10 + body + (10 if head[5] & 0x10 else 0)
    return offset


def _first_frame(data: bytes) -> tuple[int, tuple[int, int, bool]] | None:
    """Offset and fields of the first valid MPEG Layer III frame header in ``data``, or None."""
    at = data.find(b"\xff")
    while 0 <= at <= len(data) - 4:
        fields = _frame_fields(data[at : at + 4])
        if fields is not None:
            return at, fields
        at = data.find(b"\xff", at + 1)
    return None


def _frame_fields(header: bytes) -> tuple[int, int, bool] | None:
    """(version bits, sample rate, mono) of a Layer III frame header, or None if it is none."""
    (word,) = struct.unpack(">I", header)
    version, layer = (word >> 19) & 3, (word >> 17) & 3
    bitrate, rate = (word >> 12) & 15, (word >> 10) & 3
    if word >> 21 != 0x7FF or version == 1 or layer != 1 or bitrate in (0, 15) or rate == 3:
        return None
    return version, _MP3_RATES[version][rate], (word >> 6) & 3 == 3


def _xing(frame: bytes, at: int, rate: int, per_frame: int) -> Mp3Header | None:
    """The Xing/Info header at ``at`` (after the frame's side information), if there is one."""
    kind = frame[at : at + 4]
    if kind not in (b"Xing", b"Info") or len(frame) < at + 16:
        return None
    (flags,) = struct.unpack_from(">I", frame, at + 4)
    fields = iter(struct.unpack_from(">II", frame, at + 8))
    frames = next(fields) if flags & 1 else None
    size = next(fields) if flags & 2 else None
    return Mp3Header(kind.decode(), frames, size, rate, per_frame)


def _vbri(frame: bytes, rate: int, per_frame: int) -> Mp3Header | None:
    """The VBRI header 32 bytes after the frame header, if there is one."""
    if frame[36:40] != b"VBRI" or len(frame) < 54:
        return None
    size, frames = struct.unpack_from(">II", frame, 46)
    return Mp3Header("VBRI", frames, size, rate, per_frame)


def check_mp3_size(name: str, header: Mp3Header, size: int) -> None:
    """Raise ``InputTruncated`` when the file holds fewer bytes than ``header`` states.

    The whole file counts (tags too), so an encoder that counts its ID3v2 tag is never refused;
    a cut shorter than the tag is left to the frame count.
    """
    if header.size and size < header.size:
        raise InputTruncated(
            f"truncated: its {header.kind} header states {header.size} bytes of MPEG audio, "
            f"the file holds {size}",
            path=name,
        )
