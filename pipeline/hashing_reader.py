"""A read-only file that feeds SHA-256 with its bytes as a decoder reads them."""

from __future__ import annotations

import hashlib
import io
import os

from ocml.pipeline.oserrors import read_error

READ_BUFFER = 1 << 20
"""Bytes read from the file at a time (for libsndfile and FFmpeg alike)."""


class HashingReader(io.RawIOBase):
    """The open file ``fd``, read-only, hashing its bytes in file order as they are read.

    Bytes read out of order (a demuxer that reads an mp4 index at the end first) are hashed when
    ``hexdigest`` reads whatever was not hashed yet; bytes read twice are hashed once. ``name``
    is what errors call the file. The descriptor stays the caller's: closing the reader leaves
    it open.
    """

    def __init__(self, fd: int, name: str) -> None:
        self._raw = io.FileIO(fd, "r", closefd=False)
        self.name = name
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
            raise read_error(self.name, exc) from exc

    def size(self) -> int:
        """The file's size in bytes now."""
        try:
            return os.fstat(self._raw.fileno()).st_size
        except OSError as exc:
            raise read_error(self.name, exc) from exc

    def close(self) -> None:
        self._raw.close()
        super().close()

    def failure(self) -> Exception | None:
        """The pipeline error for an OS error hidden from us by a decoder, if one happened."""
        return None if self._error is None else read_error(self.name, self._error)

    def hexdigest(self) -> str:
        """Hash the bytes not hashed yet (those the decoder skipped), then return the digest."""
        self._raw.seek(self._hashed)
        while piece := self._raw.read(READ_BUFFER):
            self._digest.update(piece)
            self._hashed += len(piece)
        self._position = self._hashed
        return self._digest.hexdigest()
