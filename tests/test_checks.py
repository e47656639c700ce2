"""The shared validators (pipeline.checks) and the one millisecond rounding (pipeline.times)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ocml.pipeline.checks import check_int, check_number, check_text
from ocml.pipeline.errors import ModelError
from ocml.pipeline.times import floor_ms, round_ms, to_ms


def test_check_int_accepts_integers_from_the_minimum() -> None:
    assert check_int(3, name="n") == 3
    assert check_int(0, name="n", minimum=0) == 0


@pytest.mark.parametrize(
    ("value", "minimum", "message"),
    [
        (0, 1, "n must be a positive integer, got 0"),
        (True, 1, "n must be a positive integer, got True"),
        (2.0, 1, "n must be a positive integer, got 2.0"),
        ("3", 1, "n must be a positive integer, got '3'"),
        (-1, 0, "n must be an integer >= 0, got -1"),
    ],
)
def test_check_int_quotes_the_bad_value(value: object, minimum: int, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_int(value, name="n", minimum=minimum)
    assert str(caught.value) == message


def test_checks_raise_the_callers_error_type() -> None:
    with pytest.raises(ModelError, match="context_frames must be an integer >= 0, got -2"):
        check_int(-2, name="context_frames", minimum=0, error=ModelError)
    with pytest.raises(ModelError, match="name must be a non-empty string, got ''"):
        check_text("", name="name", error=ModelError)


def test_check_number_takes_numpy_numbers_and_refuses_the_rest() -> None:
    assert check_number(np.float32(0.5), name="x") == 0.5
    assert check_number(np.int64(2), name="x", minimum=0, maximum=2) == 2.0
    for value, message in [
        (True, "x must be a number, got True"),
        ("1", "x must be a number, got '1'"),
        (math.nan, "x must be finite, got nan"),
        (-0.5, "x must lie in [0, 1] seconds, got -0.5"),
    ]:
        with pytest.raises(ValueError) as caught:
            check_number(value, name="x", minimum=0, maximum=1, unit="seconds")
        assert str(caught.value) == message


def test_milliseconds_round_half_up_and_durations_round_down() -> None:
    assert [to_ms(s) for s in (0.0125, 0.0124, 1.0005, 4.35, 0.0)] == [13, 12, 1001, 4350, 0]
    assert [floor_ms(s) for s in (4.35, 1.0009, 0.0)] == [4350, 1000, 0]
    assert round_ms(1.0005) == 1.001 and round_ms(12.3456) == 12.346
