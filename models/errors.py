"""The error training raises for input it cannot use (a data set, a run, a report, an option)."""

from __future__ import annotations

from ocml.pipeline.errors import OcmlError


class TrainingInputError(OcmlError, ValueError):
    """Training data, a run folder, a report or a parameter is unusable; the message says which."""

    code = "bad_input"
