"""models/channels.py: every step keeps length and alignment, does what it claims, and chains
are deterministic, JSON-describable and validated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ocml.models import channels
from ocml.models.channels import CODECS, ChannelChain, Step, apply, random_channel
from tests.media import speechlike

SR = 16000
RNG = np.random.default_rng(0)
# Where each step may stand in a chain: pickup → processing → transport → damage.
STAGE = {
    "band": 0, "microphone": 0, "agc": 1, "compress": 1, "gate": 1,
    "codec": 2, "resample": 2, "clip": 3, "quantize": 3,
}  # fmt: skip
# The lowest bit rate `random_channel` draws for each codec, and the frequency above which that
# round trip removes (nearly) all energy: the 8 kHz codecs above 4 kHz, LAME's 32 kbit/s
# low-pass at about 7.3 kHz, narrowband Opus and FFmpeg's AAC at their low rates.
LOWEST = {
    "mp3": (32000, 7500),
    "opus": (8000, 5500),
    "aac": (16000, 4500),
    "mulaw": (64000, 4500),
    "alaw": (64000, 4500),
    "amr_nb": (4750, 4500),
    "g726": (16000, 4500),
}


def chirp(seconds: float, f0: float = 200.0, f1: float = 3400.0, extra: int = 7) -> np.ndarray:
    """A linear sweep from f0 to f1 Hz; ``extra`` samples so the length is no frame multiple."""
    t = np.arange(int(seconds * SR) + extra) / SR
    sweep = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))
    return (0.3 * sweep * np.minimum(1, np.minimum(t, t[-1] - t) / 0.02)).astype(np.float32)


def click_train(seconds: float) -> np.ndarray:
    """Irregularly spaced 300–3,000 Hz clicks (no period, so one correlation peak)."""
    x = np.zeros(int(seconds * SR) + 3, np.float32)
    rng = np.random.default_rng(1)
    for p in np.cumsum(rng.integers(800, 3000, size=int(seconds * 10))):
        if p + 8 < x.size:
            x[p : p + 8] = 0.8 * np.hanning(8)
    return channels.band(x, SR, RNG, low_hz=300, high_hz=3000, order=4)


def lag(x: np.ndarray, y: np.ndarray) -> int:
    """The delay of ``y`` behind ``x`` in samples, by the cross-correlation peak."""
    return channels._lag(x, y, 800)


def band_db(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Energy of ``y`` relative to ``x`` within lo–hi Hz, in dB."""
    f = np.fft.rfftfreq(x.size, 1 / SR)
    sel = (f >= lo) & (f < hi)
    ex = np.sum(np.abs(np.fft.rfft(x)[sel]) ** 2)
    ey = np.sum(np.abs(np.fft.rfft(y)[sel]) ** 2)
    return float(10 * np.log10((ey + 1e-20) / ex))


def level_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def broadband(seconds: float) -> np.ndarray:
    """White noise at −26 dBFS under a speech-like voice: energy at every frequency."""
    rng = np.random.default_rng(2)
    voice = speechlike(SR, seconds, [(0.2, seconds - 0.2)], seed=3)
    return (0.05 * rng.standard_normal(voice.size) + 0.5 * voice).astype(np.float32)


@pytest.mark.parametrize("name", sorted(CODECS))
def test_codec_round_trip_keeps_length_and_alignment(name: str) -> None:
    bitrate = LOWEST[name][0]
    for x in (chirp(2.3), click_train(3.1)):
        y = channels.codec(x, SR, RNG, name=name, bitrate=bitrate)
        assert y.dtype == np.float32 and y.shape == x.shape
        assert abs(lag(x, y)) <= 1, (name, lag(x, y))
        assert np.isfinite(y).all() and np.abs(y).max() <= 1


@pytest.mark.parametrize("name", sorted(CODECS))
def test_codec_removes_what_it_cannot_carry(name: str) -> None:
    bitrate, cutoff = LOWEST[name]
    x = broadband(3.0)
    y = channels.codec(x, SR, RNG, name=name, bitrate=bitrate)
    assert band_db(x, y, cutoff, SR / 2) < -30
    assert band_db(x, y, 500, 3000) > -6  # the voice's band gets through


def test_codec_delay_is_compensated_over_minutes() -> None:
    """The priming measured once on a probe holds at the end of a long recording too."""
    x = np.tile(chirp(2.0, extra=0), 45)
    y = channels.codec(x, SR, RNG, name="amr_nb", bitrate=12200)
    assert channels.codec_delay("amr_nb", 12200, SR) > 0  # AMR's delay is not the container's
    for start in (0, 44 * 2 * SR):
        assert lag(x[start : start + 2 * SR], y[start : start + 2 * SR]) == 0


def test_telephone_band_and_low_pass() -> None:
    x = broadband(2.0)
    phone = channels.band(x, SR, RNG, low_hz=300, high_hz=3400, order=8)
    assert phone.shape == x.shape and lag(x, phone) == 0
    assert band_db(x, phone, 0, 150) < -40
    assert band_db(x, phone, 5000, 8000) < -30
    assert abs(band_db(x, phone, 700, 2500)) < 0.5
    low = channels.band(x, SR, RNG, low_hz=0, high_hz=4000, order=8)
    assert band_db(x, low, 6000, 8000) < -30 and abs(band_db(x, low, 100, 3000)) < 0.5


def test_resample_round_trip_loses_the_top_and_keeps_alignment() -> None:
    x = broadband(2.0)
    y = channels.resample(x, SR, RNG, rate=8000)
    sweep = chirp(2.0)
    assert y.shape == x.shape and lag(sweep, channels.resample(sweep, SR, RNG, rate=8000)) == 0
    assert band_db(x, y, 4200, 8000) < -40 and abs(band_db(x, y, 100, 3500)) < 0.5


def test_microphone_colours_the_sound() -> None:
    x = broadband(2.0)
    params = {"highpass_hz": 250, "peak_hz": 3000, "peak_db": 10, "q": 3, "lowpass_hz": 7000}
    y = channels.microphone(x, SR, RNG, **params)
    assert band_db(x, y, 2900, 3100) > 8
    assert band_db(x, y, 20, 80) < -15
    assert abs(band_db(x, y, 800, 1200)) < 1.5


def words_and_pauses() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Two 1-second "words" at about −15 dBFS over white noise at −60 dBFS."""
    words = [(0.5, 1.5), (2.5, 3.5)]
    return speechlike(SR, 4.0, words, seed=5, noise_db=-60), words


def test_gate_leaves_digital_silence_in_pauses_but_keeps_words() -> None:
    x, words = words_and_pauses()
    params = {"threshold_db": -30, "hold_s": 0.2, "release_s": 0.05}
    y = channels.gate(x, SR, RNG, **params, floor_dbfs=None)
    assert not np.any(y[int(1.9 * SR) : int(2.3 * SR)])  # exact zeros in the pause
    assert not np.any(y[: int(0.3 * SR)])
    for a, b in words:  # every sample of a word and of its first 0.15 s of tail untouched
        keep = slice(int((a + 0.05) * SR), int((b + 0.15) * SR))
        np.testing.assert_array_equal(y[keep], x[keep])
    dithered = channels.gate(x, SR, RNG, **params, floor_dbfs=-90)
    pause = dithered[int(1.9 * SR) : int(2.3 * SR)]
    assert np.all(pause != 0) and abs(level_db(pause) + 90) < 1


@pytest.mark.parametrize("onset", [16000, 16037, 16079])
def test_gate_opens_ahead_of_a_sudden_sound(onset: int) -> None:
    """A plosive's first samples survive wherever it falls in the gate's 5 ms blocks."""
    x = np.zeros(2 * SR, np.float32)
    x[onset : onset + SR // 2] = 0.2 * np.sin(np.arange(SR // 2) * 0.3)
    y = channels.gate(x, SR, RNG, threshold_db=-30, hold_s=0.1, release_s=0.05, floor_dbfs=None)
    np.testing.assert_array_equal(y[onset : onset + SR // 2], x[onset : onset + SR // 2])


def test_agc_lifts_the_pause_relative_to_the_voice() -> None:
    rng = np.random.default_rng(6)
    loud = speechlike(SR, 3.0, [(0.1, 2.9)], seed=6, noise_db=-50)
    x = np.concatenate([loud, 10 ** (-50 / 20) * rng.standard_normal(6 * SR), loud])
    x = x.astype(np.float32)
    params = {"target_dbfs": -20, "max_gain_db": 25, "attack_s": 0.05, "release_s": 1.0}
    y = channels.agc(x, SR, RNG, **params)
    voice, pause = slice(SR, 3 * SR), slice(7 * SR, 9 * SR)
    before = level_db(x[pause]) - level_db(x[voice])
    after = level_db(y[pause]) - level_db(y[voice])
    assert after > before + 15
    assert abs(level_db(y[pause]) - (-50 + 25)) < 2  # pumped up to the maximum gain


def test_compression_reduces_the_crest_factor() -> None:
    x = speechlike(SR, 4.0, [(0.2, 1.8), (2.2, 3.8)], seed=7)
    x[2 * SR :] *= 0.2  # a quieter second sentence
    params = {"threshold_db": -20, "ratio": 8, "attack_s": 0.002, "release_s": 0.1}
    y = channels.compress(x, SR, RNG, **params, makeup_db=6)

    def crest(z: np.ndarray) -> float:
        return float(20 * np.log10(np.abs(z).max()) - level_db(z))

    assert crest(y) < crest(x) - 3
    loud, quiet = slice(SR // 2, int(1.5 * SR)), slice(int(2.5 * SR), int(3.5 * SR))
    assert level_db(y[loud]) - level_db(y[quiet]) < level_db(x[loud]) - level_db(x[quiet]) - 3


def test_clipping_hard_and_soft() -> None:
    x = speechlike(SR, 2.0, [(0.1, 1.9)], seed=8)
    hard = channels.clip(x, SR, RNG, over_db=6, mode="hard")
    c = np.abs(hard).max()
    assert c < np.abs(x).max() / 1.5
    assert np.mean(np.abs(hard) == c) > 0.001
    small = np.abs(x) < c
    np.testing.assert_array_equal(hard[small], x[small])
    soft = channels.clip(x, SR, RNG, over_db=6, mode="soft")
    assert np.abs(soft).max() < c and np.all(np.abs(soft) <= np.abs(x) + 1e-7)


def test_quantize_to_few_levels_over_the_recordings_own_range() -> None:
    x = 0.001 * speechlike(SR, 1.0, [(0.1, 0.9)], seed=9)  # −75 dBFS: 8 absolute bits = silence
    y = channels.quantize(x, SR, RNG, bits=8, dither="none")
    assert 50 < np.unique(y).size <= 255
    assert level_db(y - x) < level_db(x) - 30
    dithered = channels.quantize(x, SR, np.random.default_rng(1), bits=8, dither="tpdf")
    assert not np.array_equal(dithered, y) and np.unique(dithered).size <= 255


def test_random_channels_are_plausible_and_round_trip_through_json() -> None:
    chains = [random_channel(np.random.default_rng([11, i])) for i in range(600)]
    empty = sum(not c.steps for c in chains) / len(chains)
    assert 0.28 < empty < 0.42
    kinds = set()
    for chain in chains:
        assert len(chain.steps) <= 3
        stages = [STAGE[s.kind] for s in chain.steps]
        assert stages == sorted(set(stages))  # distinct stages in a device's order
        kinds |= {s.kind for s in chain.steps}
        text = json.dumps(chain.describe())
        assert ChannelChain.from_description(json.loads(text)) == chain
    assert kinds == set(STAGE)
    assert random_channel(np.random.default_rng(3)) == random_channel(np.random.default_rng(3))


def test_apply_is_deterministic_bounded_and_keeps_length() -> None:
    x = 3 * speechlike(SR, 1.5, [(0.2, 0.7), (0.9, 1.3)], seed=10)  # peaks past full scale
    noisy = ChannelChain(
        (
            Step("gate", {"threshold_db": -20, "hold_s": 0.1, "release_s": 0.05,
                          "floor_dbfs": -85}),
            Step("codec", {"name": "opus", "bitrate": 12000}),
            Step("quantize", {"bits": 8, "dither": "tpdf"}),
        ),
        seed=4,
    )  # fmt: skip
    first = apply(noisy, x, SR)
    np.testing.assert_array_equal(first, apply(noisy, x, SR))
    assert not np.array_equal(first, apply(ChannelChain(noisy.steps, seed=5), x, SR))
    for i in range(25):
        chain = random_channel(np.random.default_rng([12, i]))
        y = apply(chain, x, SR)
        assert y.dtype == np.float32 and y.shape == x.shape, chain
        assert np.isfinite(y).all() and np.abs(y).max() <= 1, chain
        np.testing.assert_array_equal(y, apply(chain, x, SR))
    np.testing.assert_array_equal(apply(ChannelChain(), x, SR), np.clip(x, -1, 1))


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("band", {"low_hz": -5, "high_hz": 3400, "order": 4}, r"low_hz .* got -5"),
        ("band", {"low_hz": 3000, "high_hz": 2000, "order": 4}, r"low_hz < high_hz, got 3000"),
        ("band", {"low_hz": 300, "high_hz": 3400, "order": 2.5}, r"order .*integer.* got 2.5"),
        ("codec", {"name": "gsm", "bitrate": 13000}, r"name must be one of .* got 'gsm'"),
        ("codec", {"name": "mp3", "bitrate": 33000}, r"bitrate must be one of .* got 33000"),
        ("clip", {"over_db": 6, "mode": "fuzzy"}, r"got 'fuzzy'"),
        ("quantize", {"bits": 1, "dither": "none"}, r"bits .* got 1"),
        ("gate", {"threshold_db": -30, "hold_s": 0.1, "release_s": 0.05, "floor_dbfs": -20},
         r"floor_dbfs .* got -20"),
        ("agc", {"target_dbfs": -20, "max_gain_db": "20", "attack_s": 0.05, "release_s": 1},
         r"max_gain_db .* got '20'"),
        ("compress", {"threshold_db": -20, "ratio": 0.5, "attack_s": 0.002, "release_s": 0.1,
                      "makeup_db": 0}, r"ratio .* got 0.5"),
        ("resample", {"rate": 8000, "quality": "HQ"}, r"unknown parameter.*quality"),
        ("resample", {}, r"missing parameter.*rate"),
        ("reverb", {}, r"unknown channel step 'reverb'"),
    ],
)  # fmt: skip
def test_bad_parameters_are_refused(kind: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Step(kind, params)
    if kind in channels.STEPS and set(params) == set(channels.PARAMS[kind]):
        with pytest.raises(ValueError, match=message):
            channels.STEPS[kind](np.zeros(SR, np.float32), SR, RNG, **params)


def test_bad_input_is_refused() -> None:
    chain = ChannelChain((Step("clip", {"over_db": 3, "mode": "hard"}),))
    with pytest.raises(ValueError, match=r"mono .* shape \(2, 100\)"):
        apply(chain, np.zeros((2, 100), np.float32), SR)
    with pytest.raises(ValueError, match="finite"):
        apply(chain, np.array([0.0, np.nan], np.float32), SR)
    with pytest.raises(ValueError, match="not a channel description"):
        ChannelChain.from_description({"seed": 1, "steps": [{"over_db": 3}]})
    with pytest.raises(ValueError, match="seed .* got -1"):
        ChannelChain.from_description({"seed": -1, "steps": []})
