"""Log-mel features: the contract values, exactness against a direct computation, chunking."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocml.pipeline.features import FeatureConfig, logmel, mel_filterbank, stream_logmel

CFG = FeatureConfig()


def _direct_logmel(samples: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """The design's definition written out frame by frame in float64."""
    n = cfg.frames(len(samples))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.win_length) / cfg.win_length)
    frames = [samples[i * cfg.hop_length : i * cfg.hop_length + cfg.win_length] for i in range(n)]
    power = np.abs(np.fft.rfft(np.array(frames, dtype=np.float64) * window, n=cfg.n_fft)) ** 2
    return np.log(power @ mel_filterbank(cfg).astype(np.float64) + cfg.log_offset)


def test_defaults_are_the_design_contract():
    assert CFG.to_dict() == {
        "sample_rate": 16000,
        "win_length": 400,
        "window": "hann",
        "n_fft": 512,
        "hop_length": 160,
        "n_mels": 64,
        "fmin": 60.0,
        "fmax": 7800.0,
        "mel_scale": "htk",
        "log_offset": 1e-6,
    }


def test_dict_round_trip():
    cfg = FeatureConfig(n_mels=40)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg


def test_from_dict_rejects_unknown_keys_by_name():
    with pytest.raises(ValueError, match="n_mel_bands"):
        FeatureConfig.from_dict({**CFG.to_dict(), "n_mel_bands": 64})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("n_mels", 0),
        ("n_mels", "64"),
        ("hop_length", 1.5),
        ("window", "hamming"),
        ("mel_scale", "slaney"),
        ("fmax", 9000.0),
        ("log_offset", 0.0),
        ("win_length", 1024),
        ("n_mels", 160),  # the lowest bands fall between two FFT bins: they would stay empty
    ],
)
def test_from_dict_rejects_bad_values_quoting_them(key, value):
    with pytest.raises(ValueError, match=f"{key}.*{re.escape(repr(value))}"):
        FeatureConfig.from_dict({**CFG.to_dict(), key: value})


def test_mismatches_name_the_field_and_both_values():
    assert FeatureConfig(n_mels=40).mismatches(CFG) == ["n_mels: model 40, pipeline 64"]
    assert CFG.mismatches(CFG) == []


def test_filterbank_covers_fmin_to_fmax_with_unit_peaks():
    fb = mel_filterbank(CFG)
    assert fb.shape == (257, 64) and fb.dtype == np.float32
    assert np.all(fb.max(axis=0) > 0.5) and fb.max() <= 1.0
    hz = np.arange(257) * 16000 / 512
    used = hz[fb.sum(axis=1) > 0]
    assert used.min() >= 60 and used.max() <= 7800


def test_logmel_matches_the_direct_definition():
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal(16000 * 2)).astype(np.float32)
    out = logmel(x, CFG)
    assert out.dtype == np.float32 and out.shape == (1 + (32000 - 400) // 160, 64)
    np.testing.assert_allclose(out, _direct_logmel(x, CFG), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize(
    ("n", "frames"), [(0, 0), (399, 0), (400, 1), (559, 1), (560, 2), (16000, 98)]
)
def test_frame_count(n, frames):
    assert logmel(np.zeros(n, np.float32), CFG).shape == (frames, 64)


def test_silence_is_the_log_offset():
    assert np.allclose(logmel(np.zeros(1000, np.float32), CFG), np.log(1e-6))


def test_tone_lands_in_its_mel_band():
    t = np.arange(16000) / 16000
    out = logmel(np.sin(2 * np.pi * 1000 * t).astype(np.float32), CFG)
    band = int(np.argmax(mel_filterbank(CFG)[32]))  # 1000 Hz is FFT bin 32
    assert set(np.argmax(out, axis=1)) == {band}


def test_rejects_multichannel_samples():
    with pytest.raises(ValueError, match="1-D"):
        logmel(np.zeros((1000, 2), np.float32), CFG)


def test_frame_grid_puts_frames_at_their_centres():
    grid = CFG.grid
    assert (grid.hop, grid.offset) == (0.01, 0.0125)
    np.testing.assert_allclose(grid.times(3), [0.0125, 0.0225, 0.0325])
    assert grid.times(0).shape == (0,)
    assert grid.seconds(100) == pytest.approx(1.0) and grid.count(1.0) == 100
    assert [grid.index(t) for t in (0.0, 0.0125, 0.017, 1.0125)] == [0, 0, 0, 100]


def test_frame_grid_follows_the_configuration():
    grid = FeatureConfig(
        sample_rate=8000, fmax=4000.0, win_length=200, n_fft=256, hop_length=80
    ).grid
    assert (grid.hop, grid.offset) == (0.01, 0.0125)
    grid = FeatureConfig(hop_length=320).grid
    np.testing.assert_allclose(grid.times(2), [0.0125, 0.0325])


def test_frames_covering_a_window_reach_both_edges():
    grid = CFG.grid
    window = grid.covering(1.0, 2.0, 1000)
    centres = grid.times(1000)[window]
    assert centres[0] <= 1.0 < centres[1] and centres[-2] < 2.0 <= centres[-1]
    assert grid.covering(0.0, 0.05, 1000) == slice(0, 5)
    assert grid.covering(9.0, 20.0, 1000) == slice(898, 1000)
    assert grid.covering(20.0, 30.0, 1000) == slice(1000, 1000)


def test_other_configurations_compute():
    cfg = FeatureConfig(
        sample_rate=8000, n_mels=40, fmax=4000.0, win_length=200, n_fft=256, hop_length=80
    )
    x = np.random.default_rng(2).standard_normal(8000).astype(np.float32)
    np.testing.assert_allclose(logmel(x, cfg), _direct_logmel(x, cfg), atol=1e-4, rtol=1e-5)


_SIGNAL = (0.2 * np.random.default_rng(3).standard_normal(6000)).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=len(_SIGNAL)), max_size=12),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_stream_equals_whole_for_any_blocks(cuts, dtype):
    edges = [0, *sorted(cuts), len(_SIGNAL)]
    blocks = [_SIGNAL[a:b].astype(dtype) for a, b in zip(edges[:-1], edges[1:])]
    chunks = list(stream_logmel(iter(blocks), CFG))
    assert all(len(c) > 0 for c in chunks)
    whole = logmel(_SIGNAL, CFG)
    streamed = np.concatenate(chunks) if chunks else np.zeros((0, 64), np.float32)
    np.testing.assert_array_equal(streamed, whole)  # not close: equal, however the blocks fall


def test_stream_of_less_than_a_window_yields_nothing():
    assert (
        list(
            stream_logmel(
                [np.zeros(100, np.float32), np.zeros(0, np.float32), np.zeros(299, np.float32)], CFG
            )
        )
        == []
    )


def test_stream_is_lazy():
    def blocks():
        yield np.zeros(16000, np.float32)
        raise AssertionError("read past the first block")

    first = next(stream_logmel(blocks(), CFG))
    assert first.shape == (98, 64)
