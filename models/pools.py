"""What ``ocml-train synth`` mixes from: the configuration of a data set and the pools of decoded
speech, effects, music, recorded places and human non-speech it draws on.

The pools depend only on the seed and the installed sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ocml.models import sources
from ocml.models.catalogue import load_catalogue, materialised
from ocml.models.clips import split_long, trim, utterance_spans
from ocml.models.sources import Clip

# Every source of speech, by the group its clips are weighted by.
SPEECH_GROUPS = (
    "espeak-ng", "flite", "festival", "asterisk", "alsa", "freedesktop",
    "tuxpaint", "ktuberling", "hedgewars", "dir",
)  # fmt: skip
# How often each source provides a recording's main speaker (and its second); real recorded voices
# carry about half the weight (docs/models.md, "Training data").
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
    rt60_max: float = 0.9  # half the recordings are reverberant, RT60 uniform in [0.2, rt60_max] s
    second_speaker_db: float = 0.0  # a second speaker is up to this many dB quieter than the main

    def __post_init__(self) -> None:
        if self.recordings < 1:
            raise ValueError(f"recordings must be at least 1, got {self.recordings!r}")
        if not 0.0 <= self.channels <= 1.0:
            raise ValueError(f"channels must be a share in [0, 1], got {self.channels!r}")
        if not 5.0 <= self.min_seconds <= self.max_seconds:
            raise ValueError(
                f"need 5 <= min_seconds <= max_seconds, got {self.min_seconds!r}, {self.max_seconds!r}"
            )
        if not 0.2 <= self.rt60_max <= 3.0:
            raise ValueError(f"rt60_max must be in [0.2, 3] seconds, got {self.rt60_max!r}")
        if not 0.0 <= self.second_speaker_db <= 30.0:
            raise ValueError(
                f"second_speaker_db must be in [0, 30] dB, got {self.second_speaker_db!r}"
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
