"""Post-processing: parameters, presets, and every step of Binarize on its own and together."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ocml.pipeline.errors import ParamsError
from ocml.pipeline.features import FeatureConfig, FrameGrid
from ocml.pipeline.postprocess import (
    PRESETS,
    Binarize,
    DroppedVoice,
    Segment,
    SegmentParams,
    preset,
)


def spans(*pairs: tuple[int, int]) -> np.ndarray:
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def frame_ms(i: int) -> int:
    """Start of frame i in ms with the default hop/offset (7.5 + 10 i, rounded half up)."""
    return 10 * i + 8


def track(*parts: tuple[float, float], hop: float = 0.01) -> np.ndarray:
    """A probability track from (seconds, probability) parts."""
    return np.concatenate([np.full(round(sec / hop), p, np.float32) for sec, p in parts])


def reference_hysteresis(probs: np.ndarray, on: float, off: float) -> list[tuple[int, int]]:
    """The frame-by-frame state machine the vectorised version must equal."""
    out, start = [], None
    for i, p in enumerate(probs):
        if start is None and p >= on:
            start = i
        elif start is not None and p < off:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(probs)))
    return out


# --- parameters -----------------------------------------------------------------------------


def test_default_params_and_to_dict_lists_every_field():
    assert SegmentParams().to_dict() == {
        "threshold": 0.5,
        "neg_threshold": 0.35,
        "min_speech": 0.25,
        "min_silence": 0.1,
        "min_voice": 0.0,
        "pad_before": 0.03,
        "pad_after": 0.03,
        "trim_min_speech": 0.0,
        "trim_window": 0.0,
        "trim_bridge": 0.0,
        "snap_db": 0.0,
        "snap_max": 0.0,
    }
    assert PRESETS["default"] == SegmentParams()
    assert not SegmentParams().trims and PRESETS["trim"].trims


def test_from_mapping_overlays_base_and_pad_sets_both():
    p = SegmentParams.from_mapping({"min_silence": 2, "pad": 0.3})
    assert (p.min_silence, p.pad_before, p.pad_after, p.threshold) == (2.0, 0.3, 0.3, 0.5)
    assert isinstance(p.min_silence, float)
    explicit = SegmentParams.from_mapping({"pad": 0.3, "pad_after": 0.0})
    assert (explicit.pad_before, explicit.pad_after) == (0.3, 0.0)
    on_opencast = SegmentParams.from_mapping({"threshold": 0.6}, base=preset("opencast"))
    assert (on_opencast.threshold, on_opencast.min_silence, on_opencast.min_voice) == (
        0.6,
        10.0,
        60.0,
    )


def test_from_mapping_rejects_unknown_keys_naming_them_and_the_known_ones():
    with pytest.raises(ParamsError, match=r"'min_sielnce'.*known: .*min_silence.*pad") as info:
        SegmentParams.from_mapping({"min_sielnce": 1.0})
    assert info.value.code == "bad_params"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threshold": 1.5}, r"threshold must lie in \[0, 1\], got 1\.5"),
        ({"neg_threshold": -0.1}, r"neg_threshold must lie in \[0, 1\], got -0\.1"),
        ({"threshold": 0.3}, r"neg_threshold \(0\.35\) must not exceed threshold \(0\.3\)"),
        ({"min_speech": -1}, r"min_speech must lie in \[0, 3600\] seconds, got -1\.0"),
        ({"pad_before": 3601}, r"pad_before .* got 3601\.0"),
        ({"min_silence": math.nan}, r"min_silence must be finite, got nan"),
        ({"min_voice": math.inf}, r"min_voice must be finite, got inf"),
        ({"pad": "0.2"}, r"pad_before must be a number, got '0\.2'"),
        ({"threshold": True}, r"threshold must be a number, got True"),
        ({"pad_after": None}, r"pad_after must be a number, got None"),
        ({"snap_db": -3}, r"snap_db must lie in \[0, 120\] dB, got -3\.0"),
        ({"snap_max": 4000}, r"snap_max must lie in \[0, 3600\] seconds, got 4000\.0"),
        ({"trim_bridge": -5}, r"trim_bridge must lie in \[0, 3600\] seconds, got -5\.0"),
    ],
)
def test_invalid_values_are_refused_quoting_the_value(changes, message):
    with pytest.raises(ParamsError, match=message):
        SegmentParams.from_mapping(changes)


def test_preset_lookup_and_unknown_preset_lists_names():
    assert preset("opencast") == SegmentParams(
        min_silence=10.0, min_voice=60.0, pad_before=2.0, pad_after=0.0
    )
    with pytest.raises(ParamsError, match=r"unknown preset 'fast'; known: default, opencast"):
        preset("fast")


# --- hysteresis --------------------------------------------------------------------------------


def hysteresis(probs, threshold=0.5, neg_threshold=0.35):
    b = Binarize(SegmentParams(threshold=threshold, neg_threshold=neg_threshold))
    return b.hysteresis(np.asarray(probs, np.float32)).tolist()


def test_hysteresis_flicker_between_thresholds_stays_one_span():
    assert hysteresis([0.1, 0.6, 0.4, 0.45, 0.36, 0.5, 0.4, 0.1]) == [[1, 7]]


def test_hysteresis_starts_only_at_threshold_and_ends_below_neg_threshold():
    assert hysteresis([0.4, 0.45, 0.7, 0.4, 0.3, 0.45, 0.2]) == [[2, 4]]


def test_hysteresis_boundaries_are_inclusive():
    assert hysteresis([0.5, 0.35, 0.3499]) == [[0, 2]]


def test_hysteresis_all_zero_all_one_single_frame_and_empty():
    assert hysteresis(np.zeros(500)) == []
    assert hysteresis(np.ones(500)) == [[0, 500]]
    assert hysteresis([0.9]) == [[0, 1]]
    assert hysteresis([0.4]) == []
    assert hysteresis([]) == []


def test_hysteresis_equal_thresholds_is_a_plain_threshold():
    assert hysteresis([0.2, 0.5, 0.49, 0.7, 0.7], 0.5, 0.5) == [[1, 2], [3, 5]]


def test_hysteresis_equals_the_frame_by_frame_state_machine():
    rng = np.random.default_rng(7)
    for _ in range(50):
        probs = np.clip(np.cumsum(rng.normal(0, 0.15, 400)) % 1.0, 0, 1).astype(np.float32)
        on, off = sorted(rng.random(2))[::-1]
        got = Binarize(SegmentParams(threshold=on, neg_threshold=off)).hysteresis(probs)
        assert [tuple(s) for s in got.tolist()] == reference_hysteresis(probs, on, off)


# --- the other steps ---------------------------------------------------------------------------


def test_to_ms_maps_frame_spans_around_their_centres():
    got = Binarize.to_ms(spans((0, 1), (3, 10)), FeatureConfig().grid)
    assert got.tolist() == [[8, 18], [38, 108]]
    grid = FrameGrid(hop_length=320, centre=0.0, sample_rate=16000)  # 20 ms hop, centre at 0
    assert Binarize.to_ms(spans((2, 4)), grid).tolist() == [[30, 70]]


def test_drop_short_keeps_spans_of_exactly_the_minimum():
    assert Binarize.drop_short(spans((0, 249), (300, 550), (600, 900)), 250).tolist() == [
        [300, 550],
        [600, 900],
    ]


def test_bridge_fills_short_silences_and_short_edges():
    s = spans((300, 1000), (1400, 2000), (2500, 3000), (3100, 3200))
    assert Binarize.bridge(s, 500, duration_ms=10_000).tolist() == [[0, 2000], [2500, 3200]]
    assert Binarize.bridge(s, 150, duration_ms=3250).tolist() == [
        [300, 1000],
        [1400, 2000],
        [2500, 3250],
    ]
    assert Binarize.bridge(spans(), 500, duration_ms=1000).tolist() == []


def test_drop_short_voice_keeps_a_stretch_covering_the_whole_recording():
    s = spans((1000, 30_000), (40_000, 100_000))
    assert Binarize.drop_short_voice(s, 60_000, duration_ms=200_000).tolist() == [[40_000, 100_000]]
    assert Binarize.drop_short_voice(spans((0, 30_000)), 60_000, duration_ms=30_000).tolist() == [
        [0, 30_000]
    ]


def test_pad_then_merge_overlapping_touching_and_nested_spans():
    padded = Binarize.pad(spans((100, 200), (250, 300), (500, 600)), 50, 0)
    assert padded.tolist() == [[50, 200], [200, 300], [450, 600]]
    assert Binarize.merge(padded).tolist() == [[50, 300], [450, 600]]
    assert Binarize.merge(spans((0, 1000), (100, 200), (900, 1100), (1200, 1300))).tolist() == [
        [0, 1100],
        [1200, 1300],
    ]


def _energy(n: int, quiet: dict[int, float]) -> np.ndarray:
    """0 dB everywhere but at the frames in ``quiet`` (frame -> dB)."""
    e = np.zeros(n, np.float32)
    for i, db in quiet.items():
        e[i] = db
    return e


def test_snap_moves_edges_in_past_frames_quieter_than_the_drop():
    grid = FeatureConfig().grid
    span = spans((frame_ms(10), frame_ms(30)))  # centres of frames 10..29 inside
    energy = _energy(40, {10: -30, 11: -25, 27: -22, 28: -40, 29: -30})
    moved = Binarize.snap(span, energy, 20.0, 100, grid)
    assert moved.tolist() == [[frame_ms(12), frame_ms(27)]]
    # for a 25 dB drop, frame 27 (-22 dB) and frame 11 (exactly -25 dB) stay in
    assert Binarize.snap(span, energy, 25.0, 100, grid).tolist() == [[frame_ms(11), frame_ms(28)]]


def test_snap_moves_each_edge_at_most_snap_max_and_keeps_a_frame():
    grid = FeatureConfig().grid
    span = spans((frame_ms(10), frame_ms(20)))
    quiet = _energy(30, {i: -50 for i in range(10, 20) if i != 14})
    assert Binarize.snap(span, quiet, 20.0, 30, grid).tolist() == [[frame_ms(13), frame_ms(17)]]
    assert Binarize.snap(span, quiet, 20.0, 1000, grid).tolist() == [[frame_ms(14), frame_ms(15)]]
    assert Binarize.snap(span, quiet, 20.0, 9, grid).tolist() == span.tolist()  # under a hop


def test_binarize_snaps_only_when_asked_and_needs_the_energy():
    probs = track((1.0, 0.0), (2.0, 0.9), (1.0, 0.0))
    energy = np.where(probs > 0.5, 0.0, -60.0).astype(np.float32)
    energy[295:300] = -40.0  # the last 50 ms of the speech decision are quiet
    plain = SegmentParams.from_mapping({"pad": 0.0, "min_speech": 0.0})
    snapping = SegmentParams.from_mapping({"snap_db": 20, "snap_max": 0.1}, base=plain)
    assert snapping.snaps and not plain.snaps
    before = Binarize(plain)(probs, duration=4.0, energy=energy)
    after = Binarize(snapping)(probs, duration=4.0, energy=energy)
    assert [(s.start, s.end) for s in before] == [(1.008, 3.008)]
    assert [(s.start, s.end) for s in after] == [(1.008, 2.958)]
    with pytest.raises(
        ValueError, match=r"snap_db 20\.0 needs one energy value per frame \(400\), got none"
    ):
        Binarize(snapping)(probs, duration=4.0)
    with pytest.raises(ValueError, match=r"got 3 values"):
        Binarize(snapping)(probs, duration=4.0, energy=energy[:3])


def test_clip_to_duration_drops_spans_left_empty():
    assert Binarize.clip(spans((-100, 50), (900, 1200), (1000, 1100)), 1000).tolist() == [
        [0, 50],
        [900, 1000],
    ]


def test_confidence_is_the_mean_over_the_frames_of_each_segment():
    probs = np.array([0.2, 0.4, 0.6, 0.8, 1.0, 0.0], np.float32)
    got = Binarize.confidence(probs, spans((8, 28), (38, 48), (1, 2)), FeatureConfig().grid)
    np.testing.assert_allclose(got, [0.3, 0.8, 0.2], rtol=1e-6)


# --- whole pipeline ------------------------------------------------------------------------------


def test_binarize_of_a_long_recording_allocates_less_than_its_probabilities() -> None:
    """Ten hours of frames (3.6 M, float32): post-processing's temporaries stay under 4 bytes per
    frame, the size of the probabilities themselves (a float64 running sum or an index per
    speech frame, 8 bytes each, made peak memory grow with the recording's length)."""
    import tracemalloc

    frames = 3_600_000
    rng = np.random.default_rng(3)
    speech = np.repeat(rng.random(frames // 50) < 0.8, 50)
    probs = (speech * np.float32(0.9) + rng.random(frames, dtype=np.float32) * 0.1).astype(
        np.float32
    )
    tracemalloc.start()
    try:
        segments = Binarize(PRESETS["default"])(probs, duration=frames / 100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(segments) > 1000
    assert peak < 4 * frames


def test_default_binarize_end_to_end():
    probs = track(
        (1.0, 0.05), (2.0, 0.9), (0.3, 0.1), (1.0, 0.8), (2.0, 0.0), (0.1, 0.95), (1.0, 0.0)
    )
    segments = Binarize(PRESETS["default"])(probs, duration=7.4)
    # speech frames [100, 300) and [330, 430) stay apart (0.3 s > 0.1 s); the 0.1 s blip is
    # dropped; padded by 0.03 s to 0.978–3.038 and 3.278–4.338 s (centres of frames 97–302, 327–432)
    assert segments == [
        Segment(start=0.978, end=3.038, confidence=round(float(probs[97:303].mean()), 3)),
        Segment(start=3.278, end=4.338, confidence=round(float(probs[327:433].mean()), 3)),
    ]
    bridged = Binarize(SegmentParams(min_silence=0.5, pad_before=0.1, pad_after=0.1))
    # with 0.5 s silences bridged and 0.1 s pads: one segment, 0.908–4.408 s (frames 90–439)
    assert bridged(probs, duration=7.4) == [
        Segment(start=0.908, end=4.408, confidence=round(float(probs[90:440].mean()), 3))
    ]


def test_segments_are_rounded_sorted_disjoint_and_within_duration():
    rng = np.random.default_rng(3)
    probs = rng.random(6000).astype(np.float32)
    for params in PRESETS.values():
        segments = Binarize(SegmentParams.from_mapping({"min_silence": 0.05}, base=params))(
            probs, duration=59.995
        )
        ends = [0.0] + [s.end for s in segments]
        for seg, prev_end in zip(segments, ends):
            assert prev_end <= seg.start < seg.end <= 59.995
            assert seg.start == round(seg.start, 3) and seg.end == round(seg.end, 3)
            assert 0.0 <= seg.confidence <= 1.0


def test_binarize_refuses_bad_probabilities_and_duration():
    b = Binarize(PRESETS["default"])
    with pytest.raises(ValueError, match=r"1-D"):
        b(np.zeros((2, 3)), duration=1.0)
    with pytest.raises(ValueError, match=r"2 of 4 speech probabilities are NaN or infinite"):
        b(np.array([0.1, np.nan, np.inf, 0.2]), duration=1.0)
    with pytest.raises(ValueError, match=r"duration .* got -1"):
        b(np.zeros(4), duration=-1)


def test_float_durations_do_not_lose_a_millisecond():
    segments = Binarize(SegmentParams(pad_after=1.0))(np.ones(430, np.float32), duration=4.35)
    assert segments[-1].end == 4.35


# --- Opencast preset -----------------------------------------------------------------------------


def opencast(probs, duration):
    return Binarize(preset("opencast"))(probs, duration=duration)


def test_opencast_drops_a_voice_stretch_shorter_than_60_s():
    # 30 s of speech in 10 s pieces with 5 s pauses form one 40 s stretch, between 15 s silences
    probs = track((15, 0.0), (10, 0.9), (5, 0.1), (10, 0.9), (5, 0.1), (10, 0.9), (15, 0.0))
    assert opencast(probs, duration=70.0) == []
    made = Binarize(preset("opencast")).binarize(probs, duration=70.0)
    assert made.segments == [] and made.dropped_voice == DroppedVoice(1, 40.0)


def test_opencast_cuts_silences_of_10_s_and_keeps_2_s_before_speech():
    # silence 15 s | 4 × 20 s speech with 5 s pauses (95 s) | 12 s silence | 70 s speech | 9 s
    # pause | 61 s speech | 15 s silence
    probs = track(
        (15, 0.0),
        (20, 0.9),
        (5, 0.0),
        (20, 0.9),
        (5, 0.0),
        (20, 0.9),
        (5, 0.0),
        (20, 0.9),
        (12, 0.0),
        (70, 0.9),
        (9, 0.0),
        (61, 0.9),
        (15, 0.0),
    )
    made = Binarize(preset("opencast")).binarize(probs, duration=len(probs) / 100)
    segments = made.segments
    assert made.dropped_voice == DroppedVoice(0, 0.0)
    # speech frames [1500, 11000) and [12200, 26200): the 5 s and 9 s pauses are bridged, the
    # 12 s silence is cut; 2 s are kept before speech and nothing after it
    assert [(round(s.start * 1000), round(s.end * 1000)) for s in segments] == [
        (frame_ms(1500) - 2000, frame_ms(11000)),
        (frame_ms(12200) - 2000, frame_ms(26200)),
    ]


def test_opencast_keeps_a_recording_without_any_long_silence_whole():
    probs = track((3, 0.0), (20, 0.9), (4, 0.0), (10, 0.9))
    assert [(s.start, s.end) for s in opencast(probs, duration=37.0)] == [(0.0, 37.0)]


# --- trim preset ---------------------------------------------------------------------------------


def test_trim_window_must_hold_the_minimum_speech():
    with pytest.raises(
        ParamsError, match=r"trim_window \(2\.0 s\) must be at least trim_min_speech \(3"
    ):
        SegmentParams(trim_min_speech=3, trim_window=2)
    assert SegmentParams(trim_min_speech=0, trim_window=0).trim_window == 0.0


def test_trim_keeps_one_span_from_the_first_to_the_last_sustained_speech():
    # a 0.5 s cough, 20 s later a lecture of 2 s phrases with 1 s pauses, a lone 1 s remark at the end
    lecture = [(30_000 + 3000 * k, 32_000 + 3000 * k) for k in range(10)]
    got = Binarize.trim(spans((10_000, 10_500), *lecture, (80_000, 81_000)), 3000, 10_000)
    assert got.tolist() == [[30_000, 59_000]]


# A lone burst, 60 s later four short opening phrases (2.9 s of speech within 10 s, 9.9 s before
# the core), the core (10 phrases of 2 s), two closing words 7 s apart, chatter 15.4 s after them.
OPENING = [(60_000, 60_600), (62_500, 63_300), (65_600, 66_200), (69_200, 70_100)]
CORE = [(80_000 + 3000 * k, 82_000 + 3000 * k) for k in range(10)]
CLOSING = [(116_000, 116_800), (124_000, 124_600)]
AROUND = spans((0, 500), *OPENING, *CORE, *CLOSING, (140_000, 140_800))


def test_trim_extends_the_core_across_silences_shorter_than_the_bridge():
    assert Binarize.trim(AROUND, 3000, 10_000, 10_000).tolist() == [[60_000, 124_600]]
    # the 9.9 s silence before the core is not shorter than a 9.9 s bridge
    assert Binarize.trim(AROUND, 3000, 10_000, 9_900).tolist() == [[80_000, 124_600]]
    assert Binarize.trim(AROUND, 3000, 10_000, 0).tolist() == [[80_000, 109_000]]  # the core


def test_trim_preset_keeps_a_sparse_opening_and_cuts_a_burst_a_minute_before():
    probs = np.zeros(150 * 100)
    for start, end in [(0, 500), *OPENING, *CORE, *CLOSING, (140_000, 140_800)]:
        probs[start // 10 : end // 10] = 0.9
    (segment,) = Binarize(preset("trim"))(probs, duration=150.0)
    assert (segment.start, segment.end) == (
        (frame_ms(OPENING[0][0] // 10) - 2000) / 1000,
        (frame_ms(CLOSING[-1][1] // 10) + 2000) / 1000,
    )


def test_trim_counts_speech_across_the_window_exactly():
    # 1 s + 1 s + 1 s of speech: 3 s within 10 s only when the window reaches the third piece
    pieces = spans((0, 1000), (4000, 5000), (9000, 10_000))
    assert Binarize.trim(pieces, 3000, 10_000).tolist() == [[0, 10_000]]
    assert Binarize.trim(pieces, 3000, 9999).tolist() == []
    assert Binarize.trim(pieces, 3001, 10_000).tolist() == []
    assert Binarize.trim(spans(), 3000, 10_000).tolist() == []


def test_trim_preset_end_to_end_pads_the_one_segment():
    # 60 s silence | 0.6 s cough | 30 s silence | 40 s speech with 1 s pauses | 1 s blip | 50 s
    probs = track(
        (60, 0.0),
        (0.6, 0.9),
        (30, 0.0),
        *[part for _ in range(10) for part in ((3, 0.9), (1, 0.1))],
        (20, 0.0),
        (1, 0.9),
        (50, 0.0),
    )
    segments = Binarize(preset("trim"))(probs, duration=len(probs) / 100)
    # speech frames [9060, 13060) minus the last pause; 2 s of padding on either side
    assert [(round(s.start * 1000), round(s.end * 1000)) for s in segments] == [
        (frame_ms(9060) - 2000, frame_ms(13060 - 100) + 2000)
    ]


def test_trim_without_sustained_speech_finds_nothing():
    probs = track((10, 0.0), (1, 0.9), (5, 0.0), (1.5, 0.9), (20, 0.0))
    assert Binarize(preset("trim"))(probs, duration=37.5) == []
