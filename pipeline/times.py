"""Seconds and milliseconds: the one rounding every result, writer and label file uses.

Times are seconds with millisecond precision (design.md); SMIL and cut marks need whole
milliseconds. Rounding goes half up everywhere, so a JSON time and its SMIL clip agree.
"""

from __future__ import annotations

import math


def to_ms(seconds: float) -> int:
    """``seconds`` as whole milliseconds, halves rounded up (0.0125 s → 13 ms)."""
    return math.floor(seconds * 1000.0 + 0.5)


def floor_ms(seconds: float) -> int:
    """The whole milliseconds within ``seconds``, for a duration that nothing may exceed.

    Float noise is ignored (4.35 × 1000 = 4349.999… counts as 4350).
    """
    return math.floor(seconds * 1000.0 + 1e-6)


def round_ms(seconds: float) -> float:
    """``seconds`` rounded half up to the millisecond, as the result JSON shows it."""
    return to_ms(seconds) / 1000
