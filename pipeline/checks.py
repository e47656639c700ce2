"""One validator per kind of value, so every check words its error the same way.

Each takes the ``name`` to quote and the exception type its caller reports errors with
(``ValueError`` by default; ``ModelError``, ``ParamsError`` and ``RecipeError`` fit too).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

ErrorType = type[Exception]


def check_int(value: Any, *, name: str, minimum: int = 1, error: ErrorType = ValueError) -> int:
    """``value`` when it is an integer (not a bool) of at least ``minimum``; else ``error``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise error(f"{name} must be {wanted}, got {value!r}")
    return value


def check_number(
    value: Any,
    *,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    unit: str = "",
    error: ErrorType = ValueError,
) -> float:
    """``value`` as a finite float within ``[minimum, maximum]`` (either may be None); else ``error``.

    ``unit`` (e.g. ``"seconds"``) follows the range in the message.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise error(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise error(f"{name} must be finite, got {value!r}")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        low = "-inf" if minimum is None else f"{minimum:g}"
        high = "inf" if maximum is None else f"{maximum:g}"
        raise error(
            f"{name} must lie in [{low}, {high}]{' ' + unit if unit else ''}, got {value!r}"
        )
    return number


def check_text(value: Any, *, name: str, error: ErrorType = ValueError) -> str:
    """``value`` when it is a non-empty string; else ``error``."""
    if not isinstance(value, str) or not value:
        raise error(f"{name} must be a non-empty string, got {value!r}")
    return value
