"""Real channels: what microphones, processing and transports do to a whole recording.

Each step is a pure function ``step(x, sr, rng, **params) -> y`` on float32 mono samples that
keeps the length, stays finite and within [-1, 1], and treats speech and non-speech alike (a
channel applied to the whole mix never means "speech"). A `ChannelChain` is a list of steps
with their parameters, drawn by `random_channel`, described as JSON for a data set's manifest and
applied by `apply`. Levels that a fixed setting would make meaningless across recordings from
−60 to −5 dBFS (compressor and gate thresholds, clip points, quantiser range) are taken relative
to the recording; the automatic gain control's target is absolute, as a real one's is.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Concatenate, ParamSpec

import av
import numpy as np
import soxr

from ocml.models.errors import TrainingInputError


@dataclass(frozen=True)
class Codec:
    """An FFmpeg encoder as PyAV bundles it, the container it travels in and what it accepts."""

    encoder: str
    container: str
    rates: tuple[int, ...]
    bitrates: tuple[int, ...]
    sample_format: str
    options: tuple[tuple[str, str], ...] = ()

    def rate_for(self, sr: int) -> int:
        """The codec's sample rate for input at ``sr``: ``sr`` itself, else the nearest below."""
        if sr in self.rates:
            return sr
        below = [r for r in self.rates if r < sr]
        return max(below) if below else min(self.rates)


_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# The encoders PyAV 18's FFmpeg (8.1) bundles for speech transports. GSM has a decoder there but
# no encoder; AMR-NB, its successor on mobile networks, stands in. Speed options (LAME's fast
# mode, Opus complexity 0, FFmpeg AAC's fast coder) are what cheap devices run and make a round
# trip up to twice as fast as the defaults.
CODECS: dict[str, Codec] = {
    "mp3": Codec(
        "libmp3lame", "mp3", _RATES,
        tuple(k * 1000 for k in (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160)),
        "fltp", (("compression_level", "7"),),
    ),
    "opus": Codec(
        "libopus", "ogg", (8000, 12000, 16000, 24000, 48000),
        tuple(k * 1000 for k in (6, 8, 10, 12, 16, 20, 24, 32, 48, 64)),
        "flt", (("compression_level", "0"), ("application", "voip")),
    ),
    "aac": Codec(
        "aac", "mp4", _RATES,
        tuple(k * 1000 for k in (12, 16, 20, 24, 32, 48, 64, 96, 128)),
        "fltp", (("aac_coder", "fast"),),
    ),
    "mulaw": Codec("pcm_mulaw", "wav", (8000,), (64000,), "s16"),
    "alaw": Codec("pcm_alaw", "wav", (8000,), (64000,), "s16"),
    "amr_nb": Codec(
        "libopencore_amrnb", "amr", (8000,),
        (4750, 5150, 5900, 6700, 7400, 7950, 10200, 12200), "s16",
    ),
    "g726": Codec("g726", "wav", (8000,), (16000, 24000, 32000, 40000), "s16"),
}  # fmt: skip


@dataclass(frozen=True)
class _Num:
    """An inclusive numeric range a parameter must lie in (``None`` allowed when ``optional``)."""

    lo: float
    hi: float
    integer: bool = False
    optional: bool = False


# Every step's parameters and what each accepts; steps and chains are checked against this.
PARAMS: dict[str, dict[str, _Num | tuple[str, ...]]] = {
    "band": {"low_hz": _Num(0, 4000), "high_hz": _Num(500, 48000), "order": _Num(1, 12, True)},
    "microphone": {
        "highpass_hz": _Num(0, 1000),
        "peak_hz": _Num(100, 12000),
        "peak_db": _Num(-12, 18),
        "q": _Num(0.1, 10),
        "lowpass_hz": _Num(1000, 48000),
    },
    "resample": {"rate": _Num(2000, 192000, True)},
    "agc": {
        "target_dbfs": _Num(-50, -3),
        "max_gain_db": _Num(0, 50),
        "attack_s": _Num(0.001, 2),
        "release_s": _Num(0.01, 20),
    },
    "compress": {
        "threshold_db": _Num(-60, 0),
        "ratio": _Num(1, 50),
        "attack_s": _Num(0.0005, 0.2),
        "release_s": _Num(0.005, 2),
        "makeup_db": _Num(0, 40),
    },
    "gate": {
        "threshold_db": _Num(-80, 0),
        "hold_s": _Num(0, 2),
        "release_s": _Num(0.001, 1),
        "floor_dbfs": _Num(-140, -50, optional=True),
    },
    "codec": {"name": tuple(CODECS), "bitrate": _Num(1000, 512000, True)},
    "clip": {"over_db": _Num(0, 40), "mode": ("hard", "soft")},
    "quantize": {"bits": _Num(2, 16, True), "dither": ("none", "tpdf")},
}


def _validate(kind: str, params: Mapping[str, Any]) -> None:
    """Refuse an unknown step, a missing or unknown parameter or a value out of range."""
    if kind not in PARAMS:
        raise TrainingInputError(f"unknown channel step {kind!r}; known: {', '.join(PARAMS)}")
    spec = PARAMS[kind]
    if unknown := sorted(set(params) - set(spec)):
        raise TrainingInputError(
            f"{kind}: unknown parameter(s) {unknown}; known: {', '.join(spec)}"
        )
    if missing := sorted(set(spec) - set(params)):
        raise TrainingInputError(f"{kind}: missing parameter(s) {missing}")
    for key, rule in spec.items():
        value = params[key]
        if isinstance(rule, tuple):
            if value not in rule:
                raise TrainingInputError(
                    f"{kind}: {key} must be one of {list(rule)}, got {value!r}"
                )
            continue
        if value is None and rule.optional:
            continue
        number = isinstance(value, int if rule.integer else int | float)
        if isinstance(value, bool) or not number or not rule.lo <= value <= rule.hi:
            kind_of = "an integer" if rule.integer else "a number"
            raise TrainingInputError(
                f"{kind}: {key} must be {kind_of} in [{rule.lo:g}, {rule.hi:g}], "
                f"got {value!r} ({type(value).__name__})"
            )
    if kind == "band" and not params["low_hz"] < params["high_hz"]:
        raise TrainingInputError(
            f"band: need low_hz < high_hz, got {params['low_hz']!r}, {params['high_hz']!r}"
        )
    if kind == "codec" and params["bitrate"] not in CODECS[params["name"]].bitrates:
        raise TrainingInputError(
            f"codec {params['name']}: bitrate must be one of "
            f"{list(CODECS[params['name']].bitrates)}, got {params['bitrate']!r}"
        )


def _mono(x: np.ndarray, sr: int) -> np.ndarray:
    """``x`` as finite float32 mono samples; refuses anything else, and a bad rate."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise TrainingInputError(f"need mono samples (a 1-D array), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise TrainingInputError("samples must be finite")
    if not isinstance(sr, int | np.integer) or sr < 1000:
        raise TrainingInputError(f"sample rate must be an integer >= 1000, got {sr!r}")
    return x


def _out(y: np.ndarray) -> np.ndarray:
    """float32 samples within [-1, 1]: every stage of a digital chain is bounded at full scale."""
    return np.clip(y, -1.0, 1.0).astype(np.float32, copy=False)


P = ParamSpec("P")
StepFunction = Callable[Concatenate[np.ndarray, int, np.random.Generator, P], np.ndarray]
STEPS: dict[str, StepFunction[...]] = {}
"""Every step function by the name a `Step` gives it."""


def _step(kind: str) -> Callable[[StepFunction[P]], StepFunction[P]]:
    """Registers a step in `STEPS` and wraps it: its parameters are validated against `PARAMS`,
    the samples checked (`_mono`), empty input returned as is and the output bounded (`_out`)."""

    def register(body: StepFunction[P]) -> StepFunction[P]:
        @functools.wraps(body)
        def run(
            x: np.ndarray, sr: int, rng: np.random.Generator, *args: P.args, **params: P.kwargs
        ) -> np.ndarray:
            _validate(kind, params)
            x = _mono(x, sr)
            return x.copy() if x.size == 0 else _out(body(x, sr, rng, *args, **params))

        STEPS[kind] = run
        return run

    return register


_TAPS = 1024
_BLOCK = 16384


def _filter(x: np.ndarray, sr: int, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Zero-phase filtering by the magnitude response ``gain(f)``: a 1,024-tap linear-phase FIR
    (the response sampled and Hann-windowed) applied by overlap-add of 16,384-sample blocks, its
    delay removed. Three times faster than one FFT over a 4-minute recording."""
    if x.size == 0:
        return x.copy()
    h = np.fft.irfft(gain(np.fft.rfftfreq(_TAPS, 1 / sr)), _TAPS)
    h = np.roll(h, _TAPS // 2) * np.hanning(_TAPS + 1)[:-1]
    size = _BLOCK + _TAPS
    blocks = -(-x.size // _BLOCK)
    xb = np.zeros((blocks, _BLOCK), np.float32)
    xb.reshape(-1)[: x.size] = x
    response = np.fft.rfft(h, size).astype(np.complex64)
    yb = np.fft.irfft(np.fft.rfft(xb, size, axis=1) * response, size, axis=1)
    out = np.zeros((blocks + 1) * _BLOCK, np.float32)
    out[: blocks * _BLOCK] = yb[:, :_BLOCK].reshape(-1)
    out[_BLOCK:].reshape(blocks, _BLOCK)[:, :_TAPS] += yb[:, _BLOCK:]
    return out[_TAPS // 2 : _TAPS // 2 + x.size]


def _highpass(f: np.ndarray, cutoff: float, order: int) -> np.ndarray:
    """Butterworth high-pass magnitude (1 everywhere when ``cutoff`` is 0)."""
    if cutoff <= 0:
        return np.ones_like(f)
    return 1 / np.sqrt(1 + (cutoff / np.maximum(f, 1e-3)) ** (2 * order))


def _lowpass(f: np.ndarray, cutoff: float, order: int) -> np.ndarray:
    """Butterworth low-pass magnitude."""
    return 1 / np.sqrt(1 + (f / cutoff) ** (2 * order))


@_step("band")
def band(
    x: np.ndarray, sr: int, rng: np.random.Generator, *, low_hz: float, high_hz: float, order: int
) -> np.ndarray:
    """Band limits: a telephone's 300–3,400 Hz, a 4–7 kHz low-pass (``low_hz`` 0: none)."""
    return _filter(x, sr, lambda f: _highpass(f, low_hz, order) * _lowpass(f, high_hz, order))


@_step("microphone")
def microphone(
    x: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    *,
    highpass_hz: float,
    peak_hz: float,
    peak_db: float,
    q: float,
    lowpass_hz: float,
) -> np.ndarray:
    """A cheap microphone: thin bass (2nd-order high-pass), a resonant presence peak of
    ``peak_db`` at ``peak_hz`` with quality ``q``, and a gentle top roll-off."""

    def gain(f: np.ndarray) -> np.ndarray:
        ratio = np.maximum(f, 1e-3) / peak_hz
        peak = 1 + (10 ** (peak_db / 20) - 1) / (1 + q**2 * (ratio - 1 / ratio) ** 2)
        return _highpass(f, highpass_hz, 2) * peak * _lowpass(f, lowpass_hz, 2)

    return _filter(x, sr, gain)


def _fit(y: np.ndarray, n: int, delay: int = 0) -> np.ndarray:
    """``y`` advanced by ``delay`` samples (delayed when negative), cut or zero-padded to ``n``."""
    if delay < 0:
        y = np.concatenate([np.zeros(-delay, y.dtype), y])
        delay = 0
    y = y[delay : delay + n]
    return np.pad(y, (0, n - y.size)) if y.size < n else y


@_step("resample")
def resample(x: np.ndarray, sr: int, rng: np.random.Generator, *, rate: int) -> np.ndarray:
    """A round trip through ``rate`` (e.g. 16 → 8 → 16 kHz) with soxr: loses all above rate/2."""
    if rate == sr:
        return x.copy()
    return _fit(soxr.resample(soxr.resample(x, sr, rate), rate, sr), x.size)


def _levels_db(x: np.ndarray, hop: int) -> np.ndarray:
    """Mean-square level in dB of each ``hop`` samples (the last block zero-padded), ≥ −120."""
    blocks = -(-x.size // hop)
    padded = np.pad(x, (0, blocks * hop - x.size)).reshape(blocks, hop)
    return 10 * np.log10(np.mean(np.square(padded, dtype=np.float64), axis=1) + 1e-12)


def _reference_db(x: np.ndarray, sr: int) -> float:
    """The recording's loud level: the 95th percentile of its 10 ms levels, in dBFS."""
    return float(np.percentile(_levels_db(x, sr // 100), 95))


def _follow(levels: np.ndarray, attack: float, release: float) -> np.ndarray:
    """A level detector: follows rising ``levels`` with coefficient ``attack``, falling ones with
    ``release`` (one-pole smoothing per block)."""
    out = []
    state = float(levels[0])
    for value in levels.tolist():
        state += (attack if value > state else release) * (value - state)
        out.append(state)
    return np.array(out)


def _coef(seconds: float, hop_s: float) -> float:
    """The one-pole coefficient whose step response reaches 63 % in ``seconds``."""
    return float(1 - np.exp(-hop_s / seconds))


def _apply_gain_db(x: np.ndarray, gain_db: np.ndarray, hop: int) -> np.ndarray:
    """``x`` times a gain given in dB per block of ``hop``, interpolated between block centres."""
    centres = np.arange(gain_db.size) * hop + hop / 2
    return x * np.interp(np.arange(x.size), centres, 10 ** (gain_db / 20)).astype(np.float32)


@_step("agc")
def agc(
    x: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    *,
    target_dbfs: float,
    max_gain_db: float,
    attack_s: float,
    release_s: float,
) -> np.ndarray:
    """Automatic gain control: steers the 10 ms level toward ``target_dbfs`` (at most
    ``max_gain_db`` up). Its slow release lifts the background in pauses: noise that a detector
    then takes for speech."""
    hop = sr // 100
    level = _follow(_levels_db(x, hop), _coef(attack_s, hop / sr), _coef(release_s, hop / sr))
    return _apply_gain_db(x, np.minimum(target_dbfs - level, max_gain_db), hop)


@_step("compress")
def compress(
    x: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    *,
    threshold_db: float,
    ratio: float,
    attack_s: float,
    release_s: float,
    makeup_db: float,
) -> np.ndarray:
    """Dynamic range compression: levels above the threshold (dB relative to the recording's
    loud level) are reduced by ``ratio``, then ``makeup_db`` is added; a 1 ms detector."""
    hop = sr // 1000
    threshold = _reference_db(x, sr) + threshold_db
    level = _follow(_levels_db(x, hop), _coef(attack_s, hop / sr), _coef(release_s, hop / sr))
    reduction = np.maximum(level - threshold, 0) * (1 - 1 / ratio)
    return _apply_gain_db(x, makeup_db - reduction, hop)


@_step("gate")
def gate(
    x: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    *,
    threshold_db: float,
    hold_s: float,
    release_s: float,
    floor_dbfs: float | None,
) -> np.ndarray:
    """A noise gate: digital silence (exact zeros, or noise at ``floor_dbfs`` when given) where
    the 5 ms level stays ``threshold_db`` below the recording's loud level for longer than
    ``hold_s``, fading out over ``release_s``; it opens 5 ms ahead of a sound."""
    hop = sr // 200
    is_open = _levels_db(x, hop) > _reference_db(x, sr) + threshold_db
    is_open[:-1] |= is_open[1:]
    blocks = np.arange(is_open.size)
    last_open = np.maximum.accumulate(np.where(is_open, blocks, -(10**9)))
    since = (blocks - last_open) * hop / sr
    gain = np.clip(1 - (since - hold_s) / release_s, 0, 1)
    g = np.interp(np.arange(x.size), blocks * hop + hop / 2, gain).astype(np.float32)
    y = x * g
    if floor_dbfs is not None:
        shut = np.flatnonzero(g == 0)
        y[shut] = rng.standard_normal(shut.size) * 10 ** (floor_dbfs / 20)
    return y


def _roundtrip(x: np.ndarray, sr: int, name: str, bitrate: int) -> np.ndarray:
    """``x`` encoded by codec ``name`` into an in-memory container and decoded back at ``sr``,
    before any alignment (the container's priming information is honoured by FFmpeg)."""
    spec = CODECS[name]
    rate = spec.rate_for(sr)
    z = x if rate == sr else soxr.resample(x, sr, rate)
    if spec.sample_format == "s16":
        z = np.round(np.clip(z, -1, 1) * 32767).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format=spec.container) as out:
        stream = out.add_stream(spec.encoder, rate=rate, layout="mono", options=dict(spec.options))
        stream.codec_context.format = spec.sample_format
        stream.bit_rate = bitrate
        for start in range(0, z.size, rate):
            frame = av.AudioFrame.from_ndarray(
                z[start : start + rate].reshape(1, -1), format=spec.sample_format, layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf, "r") as inp:
        frames = list(inp.decode(audio=0))
    y = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    y = y.astype(np.float32) / 32768 if y.dtype == np.int16 else y.astype(np.float32)
    rate_out = frames[0].sample_rate  # Opus decodes at 48 kHz whatever it was fed
    return y if rate_out == sr else soxr.resample(y, rate_out, sr)


def _lag(x: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    """The delay of ``y`` behind ``x`` in samples (negative: ahead), by the peak of their
    cross-correlation within ±``max_lag``."""
    size = 1 << (x.size + y.size).bit_length()
    c = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size)), size)
    window = np.concatenate([c[-max_lag:], c[: max_lag + 1]])
    return int(np.argmax(window)) - max_lag


@functools.cache
def codec_delay(name: str, bitrate: int, sr: int) -> int:
    """Samples (at ``sr``) by which codec ``name``'s decoded output trails its input once the
    container's own compensation is applied: measured once on a probe and remembered.

    The probe is a voiced-like pulse train with a gliding pitch inside 300–3,000 Hz, which every
    codec here keeps, so the cross-correlation has one clear peak even for 4.75 kbit/s AMR."""
    t = np.arange(2 * sr) / sr
    pitch = 110 + 90 * t  # 110 → 290 Hz: no period repeats, so no second peak
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    pulses = sum(np.cos(k * phase) for k in range(1, 28) if k * 290 < sr / 2)
    probe = _filter(
        pulses.astype(np.float32), sr, lambda f: _highpass(f, 300, 4) * _lowpass(f, 3000, 4)
    )
    probe = (0.1 * probe / np.sqrt(np.mean(probe**2))).astype(np.float32)
    return _lag(probe, _roundtrip(probe, sr, name, bitrate), sr // 10)


@_step("codec")
def codec(
    x: np.ndarray, sr: int, rng: np.random.Generator, *, name: str, bitrate: int
) -> np.ndarray:
    """A round trip through a real encoder and decoder (FFmpeg in PyAV) at the codec's own rate
    (8 kHz for the telephone codecs), aligned to the input to the sample, cut to its length."""
    return _fit(_roundtrip(x, sr, name, bitrate), x.size, codec_delay(name, bitrate, sr))


@_step("clip")
def clip(
    x: np.ndarray, sr: int, rng: np.random.Generator, *, over_db: float, mode: str
) -> np.ndarray:
    """Overdrive: the recording's peak (99.9th percentile of |x|) driven ``over_db`` past the
    clip point, clipped hard or soft (tanh), and the gain brought back down."""
    c = max(float(np.quantile(np.abs(x), 0.999)), 1e-9) * 10 ** (-over_db / 20)
    return np.clip(x, -c, c) if mode == "hard" else c * np.tanh(x / c)


@_step("quantize")
def quantize(
    x: np.ndarray, sr: int, rng: np.random.Generator, *, bits: int, dither: str
) -> np.ndarray:
    """Requantisation to ``bits`` bits, with or without TPDF dither, over the recording's own
    peak range (a converter whose gain was set for it), so quiet recordings are not erased."""
    peak = float(np.max(np.abs(x), initial=0.0))
    if peak == 0:
        return x.copy()
    steps = 2 ** (bits - 1) - 1
    scaled = x / peak * steps
    if dither == "tpdf":
        scaled = scaled + (rng.random(x.size) - rng.random(x.size))
    return np.clip(np.round(scaled), -steps, steps) / steps * peak


@dataclass(frozen=True)
class Step:
    """One step of a chain: a `STEPS` name and all its parameters (validated, read-only)."""

    kind: str
    params: Mapping[str, Any]

    def __post_init__(self) -> None:
        _validate(self.kind, self.params)
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


@dataclass(frozen=True)
class ChannelChain:
    """Steps applied in order; ``seed`` drives the ones that draw noise (gate floor, dither)."""

    steps: tuple[Step, ...] = ()
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        """A JSON-able description: ``{"seed": …, "steps": [{"kind": …, **params}, …]}``."""
        return {"seed": self.seed, "steps": [{"kind": s.kind, **s.params} for s in self.steps]}

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> ChannelChain:
        """The chain that `describe` described (parameters validated again)."""
        try:
            steps = tuple(
                Step(d["kind"], {k: v for k, v in d.items() if k != "kind"})
                for d in description["steps"]
            )
            seed = description["seed"]
        except (KeyError, TypeError, AttributeError) as err:
            raise TrainingInputError(
                f"not a channel description ({type(err).__name__}: {err}): {description!r}"
            ) from err
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise TrainingInputError(f"channel seed must be an integer >= 0, got {seed!r}")
        return cls(steps, seed)


def apply(chain: ChannelChain, x: np.ndarray, sr: int) -> np.ndarray:
    """``x`` through every step of ``chain``: float32, same length, finite, within [-1, 1]."""
    rng = np.random.default_rng(chain.seed)
    y = _out(_mono(x, sr))
    for step in chain.steps:
        y = STEPS[step.kind](y, sr, rng, **step.params)
    return y


def _pickup(rng: np.random.Generator) -> Step:
    """What the microphone or the first band limit does."""
    r = rng.random()
    if r < 0.3:  # telephone band
        low, high = round(rng.uniform(250, 350)), round(rng.uniform(3200, 3600))
        return Step("band", {"low_hz": low, "high_hz": high, "order": int(rng.integers(4, 9))})
    if r < 0.6:  # a low-pass at 4–7 kHz
        high = round(rng.uniform(4000, 7000))
        return Step("band", {"low_hz": 0, "high_hz": high, "order": int(rng.integers(2, 9))})
    return Step(
        "microphone",
        {
            "highpass_hz": round(rng.uniform(80, 300)),
            "peak_hz": round(rng.uniform(1500, 6000)),
            "peak_db": round(rng.uniform(3, 12), 1),
            "q": round(rng.uniform(0.7, 4), 2),
            "lowpass_hz": round(rng.uniform(5000, 9000)),
        },
    )


def _processing(rng: np.random.Generator) -> Step:
    """What a device's or a meeting app's dynamics processing does."""
    r = rng.random()
    if r < 0.4:
        return Step(
            "agc",
            {
                "target_dbfs": round(rng.uniform(-26, -14), 1),
                "max_gain_db": round(rng.uniform(10, 30), 1),
                "attack_s": round(rng.uniform(0.02, 0.2), 3),
                "release_s": round(rng.uniform(0.5, 4), 2),
            },
        )
    if r < 0.75:
        threshold, ratio = round(rng.uniform(-30, -10), 1), round(rng.uniform(2, 10), 1)
        return Step(
            "compress",
            {
                "threshold_db": threshold,
                "ratio": ratio,
                "attack_s": round(rng.uniform(0.001, 0.01), 4),
                "release_s": round(rng.uniform(0.05, 0.3), 3),
                "makeup_db": round(-threshold * (1 - 1 / ratio) * rng.uniform(0.3, 0.8), 1),
            },
        )
    return Step(
        "gate",
        {
            "threshold_db": round(rng.uniform(-40, -15), 1),
            "hold_s": round(rng.uniform(0.1, 0.4), 3),
            "release_s": round(rng.uniform(0.02, 0.2), 3),
            "floor_dbfs": None if rng.random() < 0.6 else round(rng.uniform(-100, -80), 1),
        },
    )


# Codecs a transport draws, how often, and the bit rates it uses them at.
_TRANSPORTS: tuple[tuple[str, float, tuple[int, ...]], ...] = (
    ("mp3", 0.25, (32000, 40000, 48000, 56000, 64000)),
    ("opus", 0.2, (8000, 12000, 16000, 20000, 24000)),
    ("aac", 0.15, (16000, 24000, 32000)),
    ("mulaw", 0.08, (64000,)),
    ("alaw", 0.07, (64000,)),
    ("amr_nb", 0.1, (4750, 5900, 7400, 10200, 12200)),
    ("g726", 0.05, (16000, 24000, 32000, 40000)),
)


def _transport(rng: np.random.Generator) -> Step:
    """A codec round trip, or (one time in ten) a plain 8–12 kHz resampling round trip."""
    r = rng.random()
    if r < 0.1:
        return Step("resample", {"rate": int(rng.choice([8000, 11025, 12000]))})
    weights = np.array([w for _, w, _ in _TRANSPORTS])
    name, _, bitrates = _TRANSPORTS[rng.choice(len(_TRANSPORTS), p=weights / weights.sum())]
    return Step("codec", {"name": name, "bitrate": int(rng.choice(bitrates))})


def _damage(rng: np.random.Generator) -> Step:
    """Clipping (hard or soft) or a coarse quantiser at the end of the chain."""
    if rng.random() < 0.7:
        over = round(rng.uniform(1, 12), 1)
        return Step("clip", {"over_db": over, "mode": "hard" if rng.random() < 0.6 else "soft"})
    dither = "tpdf" if rng.random() < 0.5 else "none"
    return Step("quantize", {"bits": int(rng.choice([8, 10, 12])), "dither": dither})


_STAGES = (_pickup, _processing, _transport, _damage)


def random_channel(rng: np.random.Generator, *, none_share: float = 0.35) -> ChannelChain:
    """A plausible channel: nothing ``none_share`` of the time, else 1–3 steps from distinct
    stages in a device's order: microphone/band → AGC/compressor/gate → codec → clipping."""
    if not 0 <= none_share <= 1:
        raise TrainingInputError(f"none_share must be in [0, 1], got {none_share!r}")
    seed = int(rng.integers(2**31))
    if rng.random() < none_share:
        return ChannelChain((), seed)
    count = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
    stages = sorted(rng.choice(len(_STAGES), size=count, replace=False).tolist())
    return ChannelChain(tuple(_STAGES[i](rng) for i in stages), seed)
