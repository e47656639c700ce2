"""Errors the pipeline raises; each carries a stable machine-readable ``code``.

The worker turns them into ``{"error": code, "message": ...}`` job failures and the CLI into one
line per file, so every message names the file (when there is one) and the reason.
"""

from __future__ import annotations

ECHO_LIMIT = 300
"""Messages quote at most this many characters of an offending value (a path, a parameter)."""

NAME_MAX = 255
"""The longest file name (one path component) in bytes on the filesystems we write to."""


def excerpt(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text``, or its start and end around a note of how much was left out when it is longer.

    Error messages echo what the user gave; a 5 MB path must not become a 10 MB stored result.
    """
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}…[{len(text) - 2 * half} characters left out]…{text[-half:]}"


class OcmlError(Exception):
    """Base of every error opencast-ml raises on purpose."""

    code = "error"
    permanent = True
    usage = False
    """True for a bad option, parameter, setting or recipe: the command line exits 2, not 1."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.message = message
        self.path = path
        super().__init__(f"{excerpt(path)}: {message}" if path else message)

    def to_dict(self) -> dict[str, str]:
        """The machine-readable form stored with a failed job."""
        return {"error": self.code, "message": str(self)}


class InputError(OcmlError):
    """The input media cannot be segmented; retrying will not help."""

    code = "input_error"


class InputMissing(InputError):
    code = "input_missing"


class InputNotAFile(InputError):
    code = "input_not_a_file"


class InputEmpty(InputError):
    code = "input_empty"


class InputUnreadable(InputError):
    """Corrupt, truncated, or not a media file at all."""

    code = "input_unreadable"


class InputTruncated(InputUnreadable):
    """Shorter than its own header or container says: a cut-off copy or an upload still going."""

    code = "input_truncated"


class NoAudioTrack(InputError):
    code = "no_audio_track"


class InvalidSamples(InputError):
    """NaN or infinite sample values."""

    code = "invalid_samples"


class InputTooShort(InputError):
    code = "input_too_short"


class BadSampleRate(InputError):
    code = "bad_sample_rate"


class NoSpeech(OcmlError):
    """No speech was found and the job asked to fail then (``no_speech = "fail"``)."""

    code = "no_speech"


class OutputError(OcmlError):
    """The results cannot be written (directory missing, not writable, disk full)."""

    code = "output_error"


class PathChanged(OutputError):
    """A directory on a job's path became a symlink or was replaced while the job ran."""

    code = "path_changed"


class NameTooLong(OcmlError):
    """A file or directory name, or a whole path, is longer than the filesystem allows."""

    code = "name_too_long"


class ModelError(OcmlError):
    """The SavedModel is missing, has no or incompatible metadata."""

    code = "model_error"


class MissingExtra(OcmlError):
    """A command needs an optional part of opencast-ml (a pip extra) that is not installed."""

    code = "missing_extra"


class ParamsError(OcmlError, ValueError):
    """A post-processing parameter or preset is unknown or out of range."""

    code = "bad_params"
    usage = True


class TrackError(OcmlError, ValueError):
    """A track identity for the SMIL (id, flavor, URI) is malformed."""

    code = "bad_track"
    usage = True


class TransientIOError(OcmlError):
    """An I/O error that may pass (shared storage hiccup); the worker retries these."""

    code = "io_transient"
    permanent = False
