"""Evaluation metrics on hand-made cases whose answers can be worked out on paper."""

from __future__ import annotations

import pytest

from ocml.models.scoring import boundary_errors, collar_mask, compare
from ocml.pipeline.features import FeatureConfig

CFG = FeatureConfig()
N = 1000  # 10 s of frames; frame i's centre is at 12.5 ms + i × 10 ms


def test_perfect_hypothesis_scores_perfectly() -> None:
    ref = [(1.0, 3.0), (5.0, 6.0)]
    m = compare(ref, ref, N, CFG).metrics()
    assert (m["precision"], m["recall"], m["f1"], m["accuracy"]) == (1.0, 1.0, 1.0, 1.0)
    assert (m["der"], m["der_collar"], m["boundary_error"]) == (0.0, 0.0, 0.0)


def test_half_missed_speech() -> None:
    # reference 2 s of speech, hypothesis finds the first second only: 100 misses of 200 frames
    m = compare([(1.0, 3.0)], [(1.0, 2.0)], N, CFG).metrics()
    assert m["precision"] == 1.0
    assert m["recall"] == 0.5
    assert m["f1"] == pytest.approx(2 * 0.5 / 1.5, abs=1e-4)
    assert m["der"] == 0.5
    assert m["accuracy"] == 0.9
    # boundaries: onset exact, offset 1 s off (the cap)
    assert m["boundary_error"] == 0.5


def test_false_alarm_counts_against_reference_speech() -> None:
    m = compare([(1.0, 2.0)], [(1.0, 2.0), (4.0, 4.5)], N, CFG).metrics()
    assert m["der"] == 0.5  # 50 false-alarm frames over 100 reference frames
    assert m["precision"] == pytest.approx(100 / 150, abs=1e-4)


def test_collar_forgives_small_boundary_shifts_only() -> None:
    ref = [(2.0, 4.0)]
    shifted = [(2.1, 3.9)]  # 0.1 s late onset and 0.1 s early offset: inside a ±0.125 s collar
    m = compare(ref, shifted, N, CFG).metrics()
    assert m["der"] == pytest.approx(20 / 200, abs=1e-4)
    assert m["der_collar"] == 0.0
    late = [(2.5, 4.0)]  # 0.5 s late onset: the part beyond the collar still counts
    m = compare(ref, late, N, CFG).metrics()
    assert 0 < m["der_collar"] < m["der"]


def test_collar_mask_removes_a_quarter_second_around_each_boundary() -> None:
    keep = collar_mask([(2.0, 4.0)], N, CFG, collar=0.25)
    assert (~keep).sum() == 2 * 25  # 25 frames (0.25 s) around each of the two boundaries
    assert not keep[199] and keep[186] and keep[213]


def test_no_reference_speech() -> None:
    assert compare([], [], N, CFG).metrics()["der"] == 0.0
    assert compare([], [(1.0, 2.0)], N, CFG).metrics()["der"] == 1.0


def test_boundary_errors_match_onsets_to_onsets() -> None:
    errs = boundary_errors([(1.0, 2.0), (5.0, 6.0)], [(1.2, 2.0), (4.9, 6.4)])
    assert errs == pytest.approx((0.2, 0.1, 0.0, 0.4))
    assert boundary_errors([(1.0, 2.0)], []) == (1.0, 1.0)


def test_counts_pool_by_duration() -> None:
    a = compare([(1.0, 3.0)], [(1.0, 3.0)], N, CFG)
    b = compare([(1.0, 3.0)], [], N, CFG)
    m = (a + b).metrics()
    assert m["recall"] == 0.5
    assert m["hours"] == pytest.approx(2 * N / 360000, abs=1e-4)
