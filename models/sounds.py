"""Synthetic sounds the mixer builds a recording from: noise beds, hum, fans, rooms, lecture-hall
events, steady noise bursts, crowd babble, telephone band, speed and gain changes.

Every generator draws from the ``numpy`` generator it is given and nothing else, so a recording
stays a function of its seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ocml.models.sources import Clip


def rms(x: np.ndarray) -> float:
    """Root mean square, never zero."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Unit-RMS noise with a 1/f^exponent power spectrum (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / f ** (exponent / 2), n)
    return (y / rms(y)).astype(np.float32)


def hum(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Mains hum at 50 or 60 Hz with random odd/even harmonics, unit RMS."""
    t = np.arange(n) / sr
    f0 = 50.0 if rng.random() < 0.5 else 60.0
    y = sum(
        rng.uniform(0.05, 1.0) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3))
        for k in range(1, 8)
    )
    return (y / rms(y)).astype(np.float32)


def room_impulse(rng: np.random.Generator, rt60: float, sr: int) -> np.ndarray:
    """A synthetic room response: direct path, early reflections, exponentially decaying tail."""
    n = int(sr * rt60 * 1.2)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail = np.convolve(tail, np.ones(4) / 4, mode="same")  # a little air absorption
    h = tail * rng.uniform(0.2, 0.6)
    h[0] = 1.0
    for _ in range(6):
        h[int(rng.integers(sr // 500, sr // 40))] += rng.uniform(-0.5, 0.5)
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Full linear convolution through the FFT."""
    n = x.size + h.size - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[:n].astype(np.float32)


def telephone(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Telephone band: 300–3400 Hz band-pass and 8-bit µ-law quantisation."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(x.size, 1 / sr)
    lo, hi = rng.uniform(200, 400), rng.uniform(3000, 3600)
    spec *= 1 / (1 + (lo / np.maximum(f, 1)) ** 4) / (1 + (f / hi) ** 8)
    y = np.fft.irfft(spec, x.size)
    peak = np.abs(y).max() + 1e-9
    mu = 255.0
    q = np.sign(y / peak) * np.log1p(mu * np.abs(y / peak)) / np.log1p(mu)
    q = np.round(q * 127) / 127
    return (np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu * peak).astype(np.float32)


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (pitch and formants move with it): a new voice from an old one."""
    positions = np.arange(0, x.size - 1, factor)
    return np.interp(positions, np.arange(x.size), x).astype(np.float32)


EVENTS = (
    "click", "tap", "burst", "hiss", "knock", "door", "applause", "cough", "chair", "keyboard",
    "steps",
)  # fmt: skip


def _decaying(
    rng: np.random.Generator, sr: int, f: float, seconds: float, decay: float
) -> np.ndarray:
    """A damped resonance at ``f`` Hz with a noisy attack: the body of a knock, step or thump."""
    t = np.arange(int(sr * seconds)) / sr
    tone = np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) * np.exp(-t * decay)
    attack = rng.standard_normal(t.size) * np.exp(-t * decay * 6)
    return (tone + 0.5 * attack).astype(np.float32)


def _train_of(
    rng: np.random.Generator, sr: int, seconds: float, rate: float, hit: Callable[[], np.ndarray]
) -> np.ndarray:
    """``hit()`` repeated at random times, about ``rate`` per second, over ``seconds``."""
    out = np.zeros(int(sr * seconds) + sr, np.float32)
    t = 0.0
    while t < seconds:
        x = hit()
        start = int(t * sr)
        out[start : start + x.size] += x[: out.size - start]
        t += float(rng.exponential(1 / rate))
    return out


def _bandpass_noise(rng: np.random.Generator, n: int, lo: float, hi: float, sr: int) -> np.ndarray:
    """White noise limited to ``lo``–``hi`` Hz, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[(f < lo) | (f > hi)] = 0
    y = np.fft.irfft(spec, n)
    return (y / rms(y)).astype(np.float32)


def event(rng: np.random.Generator, kind: str, sr: int) -> np.ndarray:
    """A short synthetic lecture-hall sound (``EVENTS``), float32; all of them are non-speech."""
    return _event_samples(rng, kind, sr).astype(np.float32, copy=False)


def _event_samples(rng: np.random.Generator, kind: str, sr: int) -> np.ndarray:
    """The samples of one ``event``, in whatever float type its recipe produced."""
    if kind == "click":
        n = int(sr * rng.uniform(0.002, 0.02))
        return (rng.standard_normal(n) * np.exp(-np.arange(n) / (n / 4))).astype(np.float32)
    if kind == "tap":
        return _train_of(
            rng,
            sr,
            rng.uniform(0.1, 0.5),
            8.0,
            lambda: _decaying(rng, sr, rng.uniform(800, 4000), 0.03, 150),
        )
    if kind == "knock":  # two to five knocks on a door or desk, 4–8 per second
        f, count = rng.uniform(90, 400), int(rng.integers(2, 6))
        return _train_of(
            rng,
            sr,
            count / rng.uniform(4, 8),
            6.0,
            lambda: _decaying(rng, sr, f * rng.uniform(0.95, 1.05), 0.15, 40),
        )
    if kind == "door":  # a thump and the rattle after it
        thump = _decaying(rng, sr, rng.uniform(50, 120), 0.5, 12)
        rattle = _bandpass_noise(rng, thump.size, 800, 5000, sr) * np.exp(
            -np.arange(thump.size) / sr * 8
        )
        return thump + 0.3 * rattle
    if kind == "applause":  # many clappers, each clap a bright noise burst
        seconds, clappers = rng.uniform(1.5, 8.0), int(rng.integers(5, 60))
        out = _train_of(
            rng,
            sr,
            seconds,
            4.0 * clappers,
            lambda: (
                _bandpass_noise(rng, int(sr * 0.012), 600, 6000, sr)
                * np.exp(-np.arange(int(sr * 0.012)) / (sr * 0.003))
            ),
        )
        return out * np.sin(np.linspace(0, np.pi, out.size)) ** 0.3
    if kind == "cough":  # an explosive broadband burst shaped by a random vocal tract, 1–3 times

        def one() -> np.ndarray:
            n = int(sr * rng.uniform(0.15, 0.4))
            env = np.exp(-np.arange(n) / (n / 5)) * (1 - np.exp(-np.arange(n) / (sr * 0.005)))
            return _bandpass_noise(rng, n, rng.uniform(200, 500), rng.uniform(2500, 6000), sr) * env

        return _train_of(rng, sr, rng.uniform(0.01, 1.0), 2.5, one)
    if kind == "chair":  # a scrape: narrow-band noise whose centre glides
        n = int(sr * rng.uniform(0.3, 1.5))
        centre = np.linspace(rng.uniform(300, 1500), rng.uniform(300, 1500), n)
        carrier = np.sin(2 * np.pi * np.cumsum(centre) / sr)
        return (carrier * _bandpass_noise(rng, n, 50, 600, sr) * np.hanning(n)).astype(np.float32)
    if kind == "keyboard":
        return _train_of(
            rng,
            sr,
            rng.uniform(1, 6),
            rng.uniform(4, 10),
            lambda: _decaying(rng, sr, rng.uniform(1500, 5000), 0.02, 300),
        )
    if kind == "steps":
        return _train_of(
            rng,
            sr,
            rng.uniform(1, 5),
            rng.uniform(1.5, 2.5),
            lambda: _decaying(rng, sr, rng.uniform(60, 200), 0.12, 35),
        )
    if kind == "hiss":
        return hiss(rng, sr)
    n = int(sr * rng.uniform(0.1, 0.8))
    env = np.sin(np.linspace(0, np.pi, n)) ** 2
    return (colored_noise(rng, n, rng.uniform(0, 2)) * env).astype(np.float32)


def hiss(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Steady noise of any colour for 0.3–4 s, switched on and off within 2–100 ms: a test signal,
    a vent, a radio between stations. Speech detectors take its sudden broadband energy for a
    voice, so it is trained as non-speech often and at every level."""
    n = int(sr * rng.uniform(0.3, 4.0))
    ramp = min(n // 2, int(sr * rng.uniform(0.002, 0.1)))
    env = np.ones(n)
    env[:ramp] = env[n - ramp :][::-1] = np.linspace(0, 1, ramp)
    return colored_noise(rng, n, float(rng.uniform(0, 2.5))) * env.astype(np.float32)


def fan(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A projector fan or HVAC: broadband noise with a blade-pass tone and its harmonics, slowly
    modulated; unit RMS."""
    t = np.arange(n) / sr
    blade = rng.uniform(80, 400)
    tones = sum(rng.uniform(0.1, 1) / k * np.sin(2 * np.pi * blade * k * t) for k in range(1, 5))
    air = colored_noise(rng, n, float(rng.uniform(0.5, 2.0)))
    y = air + rng.uniform(0.1, 0.6) * tones
    y = y * (1 + rng.uniform(0, 0.3) * np.sin(2 * np.pi * rng.uniform(0.1, 2) * t))
    return (y / rms(y)).astype(np.float32)


def babble(rng: np.random.Generator, n: int, sr: int, speech: list[Clip]) -> np.ndarray:
    """Distant crowd chatter, unit RMS: six to twelve voices talking at once through a room.

    Labelled non-speech: no word of it can be followed. Many overlapping voices have the flat
    envelope of a crowd, unlike the one quieter second speaker that the labels call speech.
    """
    out = np.zeros(n, np.float32)
    for _ in range(int(rng.integers(6, 13))):
        voice = np.zeros(n, np.float32)
        t = int(rng.integers(0, sr))
        while t < n:
            x = speech[rng.integers(len(speech))].samples
            x = x[: n - t] / rms(x)
            voice[t : t + x.size] += x
            t += x.size + int(rng.uniform(0.05, 0.5) * sr)
        out += voice
    out = fft_convolve(out, room_impulse(rng, float(rng.uniform(0.5, 1.2)), sr))[:n]
    return (out / rms(out)).astype(np.float32)


def drift(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Slow gain drift of up to ±4 dB (a speaker walking, an automatic gain control)."""
    knots = max(2, n // (sr * 20))
    db = np.interp(np.arange(n), np.linspace(0, n, knots), rng.uniform(-4, 4, knots) * rng.random())
    return (10 ** (db / 20)).astype(np.float32)
