"""Which OS errors on media and result files are permanent and which may pass on a retry."""

from __future__ import annotations

import errno

from ocml.pipeline.errors import InputMissing, InputNotAFile, InputUnreadable, TransientIOError

PERMANENT_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EACCES,
        errno.EPERM,
        errno.ELOOP,
        errno.ENAMETOOLONG,
    }
)
"""Errors that a retry cannot mend: the file is not there, not a file, or not ours to read."""
TRANSIENT_ERRNOS = frozenset(
    {
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
)
"""Errors of disks and network storage that often pass: the job is worth retrying."""


def read_error(name: str, exc: OSError) -> Exception:
    """The pipeline error an OS error means while reading media ``name``; unknown ones may pass."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
        return InputMissing(f"no such file ({reason})", path=name)
    if exc.errno == errno.EISDIR:
        return InputNotAFile("is a directory, not a media file", path=name)
    if exc.errno in PERMANENT_ERRNOS:
        return InputUnreadable(f"cannot be opened ({reason})", path=name)
    return TransientIOError(f"I/O error, may pass ({reason})", path=name)
