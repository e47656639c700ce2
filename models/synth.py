"""`ocml-train synth`: lecture-like labelled recordings mixed from speech, noise and music.

A recording is a main speaker (sometimes a second one) talking in utterances separated by pauses
of 0.2–10 s, with long quiet stretches at start and end, room tone, hum, clicks, steady noise
bursts, alerts, music, reverberation of the voice, the events and the music alike (tails labelled
non-speech), SNRs from 30 to 0 dB, levels from −60 to −5 dBFS, slow gain drift and occasional
clipping. With the catalogue of pinned real audio (``models/catalogue.py``) it adds recorded
voices, recorded places (streets, crowds, machines), human non-speech (coughs, cries, applause)
and crowd babble; with ``channels`` a share of recordings passes whole through a microphone,
processing and transport chain (``models/channels.py``), so a channel never means speech (without
it, as before, a fifth of the voices alone is telephone-band). Labels come from the clean
utterances.
Recording ``i`` depends only on ``(seed, i)`` and the sound pools, which depend only on the seed
and the installed sources, so the same command on the same machine gives the same data set.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ocml.models import channels, sources
from ocml.models.catalogue import load_catalogue, materialised
from ocml.models.sources import Clip

log = logging.getLogger(__name__)


# Every source of speech, by the group its clips are weighted by.
SPEECH_GROUPS = (
    "espeak-ng", "flite", "festival", "asterisk", "alsa", "freedesktop",
    "tuxpaint", "ktuberling", "hedgewars", "dir",
)  # fmt: skip
# How often each source provides a recording's main speaker (and its second). Real recorded voices
# carry half the weight: text-to-speech alone taught the model a narrow idea of a voice.
DEFAULT_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("espeak-ng", 0.18), ("flite", 0.04), ("festival", 0.12), ("asterisk", 0.12),
    ("alsa", 0.01), ("freedesktop", 0.01), ("tuxpaint", 0.28), ("ktuberling", 0.12),
    ("hedgewars", 0.12), ("dir", 1.0),
)  # fmt: skip


@dataclass(frozen=True)
class SynthConfig:
    """What to build; every count and range is validated so a typo fails before hours of work."""

    seed: int = 0
    recordings: int = 60
    min_seconds: float = 60.0
    max_seconds: float = 240.0
    sample_rate: int = 16000
    tts_utterances: int = 1500
    tts_engines: tuple[str, ...] = ("espeak-ng", "flite", "festival")
    system_sources: bool = True
    recorded_speech: tuple[str, ...] = tuple(sources.RECORDED_SOURCES)
    source_weights: tuple[tuple[str, float], ...] = DEFAULT_WEIGHTS
    midi_pieces: int = 60
    speech_dirs: tuple[str, ...] = ()
    noise_dirs: tuple[str, ...] = ()
    catalogue: tuple[str, ...] = ()
    catalogue_root: str = ""
    heldout: bool = False
    channels: float = 0.0  # share of recordings sent whole through a random channel
    floor_margin_db: float = 0.0  # speech must stand this far above a clip's noise floor (0: off)

    def __post_init__(self) -> None:
        if self.recordings < 1:
            raise ValueError(f"recordings must be at least 1, got {self.recordings!r}")
        if not 0.0 <= self.channels <= 1.0:
            raise ValueError(f"channels must be a share in [0, 1], got {self.channels!r}")
        if not 5.0 <= self.min_seconds <= self.max_seconds:
            raise ValueError(
                f"need 5 <= min_seconds <= max_seconds, got {self.min_seconds!r}, {self.max_seconds!r}"
            )
        if self.tts_utterances < 0 or self.midi_pieces < 0:
            raise ValueError(
                f"counts must be >= 0, got tts_utterances={self.tts_utterances!r}, "
                f"midi_pieces={self.midi_pieces!r}"
            )
        for d in (*self.speech_dirs, *self.noise_dirs):
            if not Path(d).is_dir():
                raise ValueError(f"source folder {d!r} does not exist")
        known = catalogue_names()
        if unknown := sorted(set(self.catalogue) - set(known)):
            raise ValueError(f"unknown catalogue source(s) {unknown}; known: {', '.join(known)}")
        if self.catalogue and not Path(self.catalogue_root).is_dir():
            raise ValueError(f"catalogue root {self.catalogue_root!r} is not a folder")
        for name, weight in self.source_weights:
            if name not in (*SPEECH_GROUPS, *known) or not weight >= 0:
                raise ValueError(
                    f"source weight {name}={weight!r}: need a weight >= 0 for one of "
                    f"{', '.join((*SPEECH_GROUPS, *known))}"
                )
        if unknown := set(self.recorded_speech) - set(sources.RECORDED_SOURCES):
            raise ValueError(f"unknown recorded speech source(s) {sorted(unknown)}")

    def weight(self, group: str) -> float:
        """How often a speaker is drawn from ``group`` relative to the others (unlisted: 0;
        a catalogue source that is not listed: 1)."""
        default = 1.0 if group in self.catalogue else 0.0
        return dict(self.source_weights).get(group, default)


def catalogue_names() -> tuple[str, ...]:
    """The names of every source in the catalogue of pinned real audio."""
    return tuple(load_catalogue())


@dataclass
class Pools:
    """Decoded clips the mixer draws from."""

    speech: list[Clip] = field(default_factory=list)
    effects: list[Clip] = field(default_factory=list)
    music: list[Clip] = field(default_factory=list)
    noise: list[Clip] = field(default_factory=list)  # recorded ambience: streets, rooms, crowds
    nonspeech: list[Clip] = field(default_factory=list)  # coughs, laughter, breaths, applause

    def summary(self) -> dict[str, object]:
        """Counts and hours per source, for the data set's manifest and the model card."""
        by: dict[str, list[float]] = {}
        for c in self.speech:
            by.setdefault(c.source.split(":")[0], []).append(c.samples.size)
        return {
            "speech_clips": {k: len(v) for k, v in sorted(by.items())},
            "speech_languages": len({c.language for c in self.speech if c.language}),
            "speech_voices": len({(c.source.split(":")[0], c.voice) for c in self.speech}),
            "effects": len(self.effects),
            "music_pieces": len(self.music),
            "noise_minutes": round(sum(c.samples.size for c in self.noise) / 16000 / 60, 1),
            "nonspeech_clips": len(self.nonspeech),
        }


def config_from_recipe(
    section: Mapping[str, Any],
    *,
    overrides: Mapping[str, Any] | None = None,
    weights: Mapping[str, float] | None = None,
    **fields: Any,
) -> SynthConfig:
    """A ``SynthConfig`` from a recipe's ``synth:`` section, then ``overrides`` and ``weights``."""
    values = {**section, **(overrides or {})}
    merged = {**dict(DEFAULT_WEIGHTS), **values.pop("source_weights", {}), **(weights or {})}
    for key in ("recorded_speech", "catalogue"):
        if key in values:
            values[key] = tuple(values[key])
    return SynthConfig(**values, source_weights=tuple(sorted(merged.items())), **fields)


def build_pools(cfg: SynthConfig) -> Pools:
    """Decode folders and system sounds and render TTS and MIDI, deterministically by seed."""
    rng = np.random.default_rng([cfg.seed, 1])
    sr = cfg.sample_rate
    pools = Pools()
    for d in cfg.speech_dirs:
        pools.speech += sources.load_clips(sources.audio_files(d), sr, source=f"dir:{Path(d).name}")
    for d in cfg.noise_dirs:
        pools.effects += sources.load_clips(
            sources.audio_files(d), sr, source=f"dir:{Path(d).name}"
        )
    if cfg.system_sources:
        files = sources.recorded_speech_files(cfg.recorded_speech)
        pools.speech += sources.load_speech(files, sr)
        pools.effects += sources.load_clips(sources.system_effect_files(), sr, source="system")
        pools.music += sources.midi_clips(rng, count=cfg.midi_pieces, sample_rate=sr)
    if cfg.catalogue:
        _add_catalogue(pools, cfg)
    if cfg.tts_utterances and cfg.tts_engines:
        texts = sources.gettext_texts()
        pools.speech += list(
            sources.tts_clips(
                rng, count=cfg.tts_utterances, sample_rate=sr, texts=texts, engines=cfg.tts_engines
            )
        )
    pools.speech = [
        Clip(trimmed, c.source, c.voice, c.language, utterance_spans(trimmed, sr, margin_db=m))
        for c in pools.speech
        if cfg.weight(c.group) > 0
        for piece in split_long(c.samples, sr)
        if (trimmed := trim(piece, sr, margin_db=(m := cfg.floor_margin_db))).size >= sr // 20
    ]
    if not pools.speech:
        raise ValueError("no speech source found: pass speech folders or install a TTS engine")
    return pools


def _add_catalogue(pools: Pools, cfg: SynthConfig) -> None:
    """Decode the catalogue's materialised sources into the pools their kind names.

    Only the sources that are (or are not, for ``cfg.heldout``) held out for the real-recordings
    yardstick are read, so a training set and the yardstick never share a file.
    """
    catalogue = load_catalogue()
    root = Path(cfg.catalogue_root)
    for name in cfg.catalogue:
        source = catalogue[name]
        folder = materialised(source, root)
        if folder is None:
            raise ValueError(
                f"catalogue source {name!r} is not in {root} at version {source.version}: "
                "run ocml-train sources fetch first"
            )
        files = [f for f in source.files(folder) if source.is_heldout(f) == cfg.heldout]
        if source.kind == "speech":
            found = [
                sources.SpeechFile(f, name, source.voice_of(f), source.language_of(f))
                for f in files
            ]
            pools.speech += sources.load_speech(found, cfg.sample_rate)
        else:
            clips = sources.load_clips(files, cfg.sample_rate, source=name)
            {"noise": pools.noise, "nonspeech": pools.nonspeech, "music": pools.music}[
                source.kind
            ].extend(clips)


def split_long(x: np.ndarray, sr: int, *, max_seconds: float = 12.0) -> list[np.ndarray]:
    """A long recording cut at its pauses into pieces of at most about ``max_seconds``.

    A read chapter or a podcast is minutes long; the mixer places whole clips between pauses,
    so a clip longer than a recording would never be used. Cuts fall in the middle of pauses;
    a stretch without any pause is cut where it must be.
    """
    limit = int(max_seconds * sr)
    if x.size <= limit:
        return [x]
    spans = utterance_spans(x, sr)
    pieces, start, last_end = [], 0, 0
    for a, b in spans:
        if b - start > limit and last_end > start:
            cut = (last_end + a) // 2
            pieces.append(x[start:cut])
            start = cut
        last_end = b
    pieces.append(x[start:])
    return [p for piece in pieces for p in np.array_split(piece, -(-piece.size // (2 * limit)))]


def _loud_frames(
    x: np.ndarray, sr: int, floor_db: float, margin_db: float = 0.0
) -> tuple[int, np.ndarray]:
    """The 10 ms hop in samples and the indices of the hops louder than ``floor_db`` below the
    clip's loudest 10 ms and, with ``margin_db``, than ``margin_db`` above its own noise floor
    (its 10th-percentile hop): a phone recording's room noise is not speech (none for a clip
    shorter than one hop)."""
    hop = sr // 100
    n = x.size // hop
    if n == 0:
        return hop, np.zeros(0, np.intp)
    energy = (x[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(axis=1)
    floor = energy.max() * 10 ** (floor_db / 10)
    if margin_db:
        floor = max(floor, float(np.percentile(energy, 10)) * 10 ** (margin_db / 10))
    return hop, np.flatnonzero(energy > floor)


def trim(x: np.ndarray, sr: int, *, floor_db: float = -40.0, margin_db: float = 0.0) -> np.ndarray:
    """Cut leading/trailing parts quieter than ``floor_db`` below the clip's loudest 10 ms (and,
    with ``margin_db``, not that far above its noise floor)."""
    hop, loud = _loud_frames(x, sr, floor_db, margin_db)
    return x[loud[0] * hop : (loud[-1] + 1) * hop] if loud.size else x[:0]


def utterance_spans(
    x: np.ndarray, sr: int, *, floor_db: float = -40.0, min_gap: float = 0.3, margin_db: float = 0.0
) -> tuple[tuple[int, int], ...]:
    """Spans of a trimmed clip split at pauses of at least ``min_gap`` s quieter than ``floor_db``.

    A recorded description of several sentences is labelled sentence by sentence, as a listener
    would, not as one block that teaches the model to bridge half-second pauses.
    """
    hop, loud = _loud_frames(x, sr, floor_db, margin_db)
    if loud.size == 0:
        return ((0, x.size),)
    breaks = np.flatnonzero(np.diff(loud) > round(min_gap * 100))
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
    spans = [(int(s) * hop, int(e) * hop) for s, e in zip(starts, ends)]
    spans[-1] = (spans[-1][0], max(spans[-1][1], x.size))
    return tuple(spans)


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


def _pause(rng: np.random.Generator) -> float:
    """Pause between utterances: mostly short, sometimes long (0.2–10 s)."""
    r = rng.random()
    if r < 0.55:
        return float(rng.uniform(0.2, 1.0))
    if r < 0.9:
        return float(rng.uniform(1.0, 3.0))
    return float(rng.uniform(3.0, 10.0))


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


def _event(rng: np.random.Generator, kind: str, sr: int) -> np.ndarray:
    """A short synthetic lecture-hall sound (``EVENTS``), float32; all of them are non-speech."""
    return _event_samples(rng, kind, sr).astype(np.float32, copy=False)


def _event_samples(rng: np.random.Generator, kind: str, sr: int) -> np.ndarray:
    """The samples of one ``_event``, in whatever float type its recipe produced."""
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
        return _hiss(rng, sr)
    n = int(sr * rng.uniform(0.1, 0.8))
    env = np.sin(np.linspace(0, np.pi, n)) ** 2
    return (colored_noise(rng, n, rng.uniform(0, 2)) * env).astype(np.float32)


def _hiss(rng: np.random.Generator, sr: int) -> np.ndarray:
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


@dataclass(frozen=True)
class Mixture:
    """One synthetic recording: samples, speech intervals in seconds and what went into it."""

    samples: np.ndarray
    speech: list[list[float]]
    meta: dict[str, object]


def mix(pools: Pools, index: int, cfg: SynthConfig) -> Mixture:
    """Recording ``index`` of the set; depends only on ``(cfg.seed, index)`` and the pools."""
    rng = np.random.default_rng([cfg.seed, 2, index])
    sr = cfg.sample_rate
    duration = float(rng.uniform(cfg.min_seconds, cfg.max_seconds))
    n = int(duration * sr)
    by_group = _clips_by_group(pools.speech)
    groups = sorted(by_group)
    weights = np.array([cfg.weight(g) for g in groups])
    weights /= weights.sum()
    group = groups[rng.choice(len(groups), p=weights)]
    voices = sorted({c.voice for c in by_group[group]})
    main = voices[rng.integers(len(voices))]
    main_clips = [c for c in by_group[group] if c.voice == main]
    if len(main_clips) < 5 or rng.random() < 0.3:
        main_clips = by_group[group]
    second_share = float(rng.choice([0.0, 0.1, 0.3]))
    speech = np.zeros(n, np.float32)
    labels: list[list[float]] = []
    t = float(rng.uniform(0.3, min(30.0, duration / 5)))
    end = duration - float(rng.uniform(0.3, min(25.0, duration / 6)))
    phone = rng.random() < 0.2 and not cfg.channels  # a channel replaces speech-only phone
    by_source: dict[str, float] = {}
    by_language: dict[str, float] = {}
    while True:
        if rng.random() < second_share:
            pick = by_group[groups[rng.choice(len(groups), p=weights)]]
        else:
            pick = main_clips
        chosen = pick[rng.integers(len(pick))]
        clip, spans = chosen.samples, chosen.spans or ((0, chosen.samples.size),)
        if rng.random() < 0.5:
            factor = float(rng.uniform(0.85, 1.15))
            clip = change_speed(clip, factor)
            spans = tuple((int(a / factor), min(int(b / factor), clip.size)) for a, b in spans)
        start = int(t * sr)
        if start + clip.size > int(end * sr):
            break
        gain = 10 ** (rng.uniform(-4, 4) / 20) / rms(clip)
        if phone or (rng.random() < 0.05 and not cfg.channels):
            clip = telephone(clip, sr, rng)
        speech[start : start + clip.size] += clip * gain
        labels += [[round((start + a) / sr, 4), round((start + b) / sr, 4)] for a, b in spans]
        said = sum(b - a for a, b in spans) / sr
        by_source[chosen.group] = by_source.get(chosen.group, 0.0) + said
        language = chosen.language or "none"
        by_language[language] = by_language.get(language, 0.0) + said
        t = (start + clip.size) / sr + _pause(rng)
    active = (
        np.concatenate([speech[int(s * sr) : int(e * sr)] for s, e in labels]) if labels else speech
    )
    speech /= rms(active) if labels else 1.0
    rt60 = float(rng.uniform(0.2, 0.9)) if rng.random() < 0.5 else None
    if rt60:
        speech = fft_convolve(speech, room_impulse(rng, rt60, sr))[:n]
        if labels:
            speech /= rms(np.concatenate([speech[int(s * sr) : int(e * sr)] for s, e in labels]))
    snr = float(rng.uniform(0, 30))
    noise, noise_kind = _noise_bed(rng, n, sr, pools)
    background = noise * 10 ** (-snr / 20)
    room_sounds = _events_and_music(rng, n, sr, pools, labels)
    if rt60:  # the room colours every sound in it, not only the voice: else reverberation = speech
        room_sounds = fft_convolve(room_sounds, room_impulse(rng, rt60, sr))[:n]
    background += room_sounds
    level_db = float(rng.uniform(-60, -5)) if rng.random() < 0.8 else float(rng.uniform(-35, -15))
    drift = _drift(rng, n, sr)
    y = (speech + background) * 10 ** (level_db / 20) * drift
    channel = channels.ChannelChain()
    if cfg.channels:  # microphone, processing and transport act on the voice and the room alike
        channel_rng = np.random.default_rng([cfg.seed, 3, index])
        channel = channels.random_channel(channel_rng, none_share=1.0 - cfg.channels)
        y = channels.apply(channel, y, sr)
    clipped = rng.random() < 0.1
    if clipped:
        y = np.clip(y * 10 ** (rng.uniform(6, 20) / 20), -1.0, 1.0)
    y = np.clip(y + rng.uniform(-0.003, 0.003) * (rng.random() < 0.2), -1.0, 1.0)
    if rng.random() < 0.15:
        y[: int(sr * rng.uniform(0.1, min(3.0, labels[0][0] if labels else 3.0)))] = 0.0
    meta = {
        "index": index,
        "audio": f"synth-{index:05d}.flac",
        "duration": round(n / sr, 4),
        "snr_db": round(snr, 1),
        "rt60": rt60,
        "level_dbfs": round(level_db, 1),
        "telephone": phone,
        "channel": channel.describe(),
        "noise": noise_kind,
        "clipped": clipped,
        "main_voice": f"{group}/{main}",
        "utterances": len(labels),
        "speech_seconds_by_source": {k: round(v, 2) for k, v in sorted(by_source.items())},
        "speech_seconds_by_language": {k: round(v, 2) for k, v in sorted(by_language.items())},
    }
    return Mixture(y.astype(np.float32), _merge(labels), meta)


def _clips_by_group(clips: list[Clip]) -> dict[str, list[Clip]]:
    """Speech clips keyed by the source group they are weighted by."""
    out: dict[str, list[Clip]] = {}
    for c in clips:
        out.setdefault(c.group, []).append(c)
    return out


def _merge(labels: list[list[float]]) -> list[list[float]]:
    """Sorted, non-overlapping speech intervals."""
    out: list[list[float]] = []
    for s, e in sorted(labels):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def _noise_bed(rng: np.random.Generator, n: int, sr: int, pools: Pools) -> tuple[np.ndarray, str]:
    """Background of unit RMS: coloured noise, room tone, hum, slow modulation, often a recorded
    place, sometimes crowd babble; and which of ``synthetic``, ``recorded``, ``babble`` leads."""
    parts = [colored_noise(rng, n, float(rng.choice([0.0, 1.0, 1.5, 2.0])))]
    if rng.random() < 0.6:
        parts.append(colored_noise(rng, n, 2.5) * rng.uniform(0.3, 1.0))
    if rng.random() < 0.35:  # up to 10 dB above the noise: a hum-dominated bed
        parts.append(hum(rng, n, sr) * 10 ** (rng.uniform(-15, 10) / 20))
    if rng.random() < 0.35:
        parts.append(fan(rng, n, sr) * 10 ** (rng.uniform(-10, 3) / 20))
    if pools.effects and rng.random() < 0.15:
        loop = pools.effects[rng.integers(len(pools.effects))].samples
        parts.append(np.resize(loop, n) / rms(loop) * rng.uniform(0.1, 0.5))
    kind = "synthetic"
    if pools.noise and rng.random() < 0.6:  # a recorded place: street, café, crowd, machines
        parts.append(_recorded_bed(rng, n, pools.noise) * 10 ** (rng.uniform(-6, 10) / 20))
        kind = "recorded"
    if rng.random() < 0.15:
        parts.append(babble(rng, n, sr, pools.speech) * 10 ** (rng.uniform(-6, 6) / 20))
        kind = "babble"
    y = sum(parts)
    if rng.random() < 0.3:
        y = y * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.02, 0.3) * np.arange(n) / sr))
    return (y / rms(y)).astype(np.float32), kind


def _events_and_music(
    rng: np.random.Generator, n: int, sr: int, pools: Pools, labels: list[list[float]]
) -> np.ndarray:
    """Lecture-hall events, alerts and music placed anywhere (relative to speech RMS 1).

    Music is MIDI (every General MIDI family, often with drums), synthetic tones or a wordless
    sung melody, often as an intro or outro before the first or after the last word.
    """
    out = np.zeros(n, np.float32)
    for _ in range(int(rng.integers(0, 16))):
        r = rng.random()
        if pools.nonspeech and r < 0.3:  # a cough, a laugh, a breath, applause
            x = pools.nonspeech[rng.integers(len(pools.nonspeech))].samples
        elif pools.effects and r < 0.45:
            x = pools.effects[rng.integers(len(pools.effects))].samples
        else:
            x = _event(rng, str(rng.choice(EVENTS)), sr)
        _add_anywhere(rng, out, x[: n // 2] / rms(x) * 10 ** (rng.uniform(-25, 0) / 20))
    if rng.random() < 0.4:  # steady noise bursts, up to as loud as the voice
        for _ in range(int(rng.integers(2, 9))):
            _add_anywhere(rng, out, _hiss(rng, sr)[: n // 2] * 10 ** (rng.uniform(-20, 0) / 20))
    if rng.random() < 0.7:
        for _ in range(int(rng.integers(1, 4))):
            seconds = float(rng.uniform(3, 40))
            r = rng.random()
            if pools.music and r < 0.7:
                x = pools.music[rng.integers(len(pools.music))].samples[: int(seconds * sr)]
            elif r < 0.85:
                x = sources.sung_tones(rng, seconds, sr)
            else:
                x = sources.tone_music(rng, seconds, sr)
            x = x[: n // 2] / rms(x) * 10 ** (rng.uniform(-20, 0) / 20)
            if (
                labels and rng.random() < 0.7
            ):  # intro/outro music before the first or after the last word
                lo, hi = (
                    (0, int(labels[0][0] * sr))
                    if rng.random() < 0.5
                    else (int(labels[-1][1] * sr), n)
                )
            else:
                lo, hi = 0, n
            start = int(rng.integers(lo, max(lo + 1, hi - x.size)))
            out[start : start + x.size] += x[: n - start]
    return out


def _recorded_bed(rng: np.random.Generator, n: int, clips: list[Clip]) -> np.ndarray:
    """``n`` samples of recorded ambience: clips drawn at random offsets, joined end to end with
    short crossfades, unit RMS."""
    out = np.zeros(n, np.float32)
    fill, fade = 0, 160
    while fill < n:
        x = clips[rng.integers(len(clips))].samples
        x = np.roll(x, int(rng.integers(x.size))) / rms(x)
        piece = x[: n - fill].astype(np.float32)
        ramp = min(fade, piece.size)
        piece[:ramp] *= np.linspace(0, 1, ramp, dtype=np.float32)
        out[fill : fill + piece.size] += piece
        fill += max(piece.size - ramp, 1)
    return out / rms(out)


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


def _add_anywhere(rng: np.random.Generator, out: np.ndarray, x: np.ndarray) -> None:
    """Adds ``x`` (at most half as long as ``out``) into ``out`` at a uniformly drawn start."""
    start = int(rng.integers(0, out.size - x.size))
    out[start : start + x.size] += x


def _drift(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Slow gain drift of up to ±4 dB (a speaker walking, an automatic gain control)."""
    knots = max(2, n // (sr * 20))
    db = np.interp(np.arange(n), np.linspace(0, n, knots), rng.uniform(-4, 4, knots) * rng.random())
    return (10 ** (db / 20)).astype(np.float32)


def speech_minutes(metas: list[dict[str, Any]], key: str) -> dict[str, float]:
    """Minutes of labelled speech per source (or language) over a data set's recordings,
    most first: what the model card reports as the training data's make-up."""
    total: dict[str, float] = {}
    for meta in metas:
        for name, seconds in meta[key].items():
            total[name] = total.get(name, 0.0) + seconds
    return {k: round(v / 60, 1) for k, v in sorted(total.items(), key=lambda kv: -kv[1])}


def write_dataset(
    cfg: SynthConfig, out: Path, *, progress: Callable[[int, int], None] | None = None
) -> dict[str, object]:
    """Build the pools, write ``synth-NNNNN.flac`` + ``.json`` labels and ``manifest.json``."""
    out.mkdir(parents=True, exist_ok=True)
    pools = build_pools(cfg)
    metas, speech_s, total_s = [], 0.0, 0.0
    for i in range(cfg.recordings):
        m = mix(pools, i, cfg)
        name = f"synth-{i:05d}"
        sf.write(out / f"{name}.flac", m.samples, cfg.sample_rate, subtype="PCM_16")
        duration = m.samples.size / cfg.sample_rate
        (out / f"{name}.json").write_text(json.dumps({"duration": duration, "speech": m.speech}))
        metas.append(m.meta)
        speech_s += sum(e - s for s, e in m.speech)
        total_s += duration
        if progress:
            progress(i + 1, cfg.recordings)
    manifest = {
        "config": asdict(cfg),
        "pools": pools.summary(),
        "hours": round(total_s / 3600, 3),
        "speech_fraction": round(speech_s / max(total_s, 1e-9), 4),
        "speech_minutes_by_source": speech_minutes(metas, "speech_seconds_by_source"),
        "speech_minutes_by_language": speech_minutes(metas, "speech_seconds_by_language"),
        "recordings": metas,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
