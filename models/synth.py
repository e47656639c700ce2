"""`ocml-train synth`'s scenes: lecture-like labelled recordings mixed from speech, noise and music.

A recording is a main speaker (sometimes a second one) talking in utterances separated by pauses
of 0.2–10 s, with long quiet stretches at start and end, room tone, hum, clicks, steady noise
bursts, alerts, music, reverberation of the voice, the events and the music alike (tails labelled
non-speech), SNRs from 30 to 0 dB, levels from −60 to −5 dBFS, slow gain drift and occasional
clipping. With the catalogue of pinned real audio (``models/catalogue.py``) it adds recorded
voices, recorded places (streets, crowds, machines), human non-speech (coughs, cries, applause)
and crowd babble; with ``channels`` a share of recordings passes whole through a microphone,
processing and transport chain (``models/channels.py``), so a channel never means speech (without
it, a fifth of the voices alone is telephone-band). Labels come from the clean utterances.
Recording ``i`` depends only on ``(seed, i)`` and the sound pools (``models/pools.py``), so the
same command on the same machine gives the same data set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ocml.models import channels, sounds, sources
from ocml.models.pools import Pools, SynthConfig
from ocml.models.sources import Clip
from ocml.pipeline.labels import merge_intervals


@dataclass(frozen=True)
class Mixture:
    """One synthetic recording: samples, speech intervals in seconds and what went into it."""

    samples: np.ndarray
    speech: list[tuple[float, float]]
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
    labels: list[tuple[float, float]] = []
    t = float(rng.uniform(0.3, min(30.0, duration / 5)))
    end = duration - float(rng.uniform(0.3, min(25.0, duration / 6)))
    phone = rng.random() < 0.2 and not cfg.channels  # a channel replaces speech-only phone
    by_source: dict[str, float] = {}
    by_language: dict[str, float] = {}
    second_clips = 0
    while True:
        second = rng.random() < second_share
        pick = by_group[groups[rng.choice(len(groups), p=weights)]] if second else main_clips
        chosen = pick[rng.integers(len(pick))]
        clip, spans = chosen.samples, chosen.spans or ((0, chosen.samples.size),)
        if rng.random() < 0.5:
            factor = float(rng.uniform(0.85, 1.15))
            clip = sounds.change_speed(clip, factor)
            spans = tuple((int(a / factor), min(int(b / factor), clip.size)) for a, b in spans)
        start = int(t * sr)
        if start + clip.size > int(end * sr):
            break
        gain = 10 ** (rng.uniform(-4, 4) / 20) / sounds.rms(clip)
        if second and cfg.second_speaker_db:  # a question from the audience: quieter, still speech
            gain *= 10 ** (-rng.uniform(0, cfg.second_speaker_db) / 20)
        second_clips += second
        if phone or (rng.random() < 0.05 and not cfg.channels):
            clip = sounds.telephone(clip, sr, rng)
        speech[start : start + clip.size] += clip * gain
        labels += [(round((start + a) / sr, 4), round((start + b) / sr, 4)) for a, b in spans]
        said = sum(b - a for a, b in spans) / sr
        by_source[chosen.group] = by_source.get(chosen.group, 0.0) + said
        language = chosen.language or "none"
        by_language[language] = by_language.get(language, 0.0) + said
        t = (start + clip.size) / sr + _pause(rng)
    active = (
        np.concatenate([speech[int(s * sr) : int(e * sr)] for s, e in labels]) if labels else speech
    )
    speech /= sounds.rms(active) if labels else 1.0
    rt60 = float(rng.uniform(0.2, cfg.rt60_max)) if rng.random() < 0.5 else None
    if rt60:
        speech = sounds.fft_convolve(speech, sounds.room_impulse(rng, rt60, sr))[:n]
        if labels:
            speech /= sounds.rms(
                np.concatenate([speech[int(s * sr) : int(e * sr)] for s, e in labels])
            )
    snr = float(rng.uniform(0, 30))
    noise, noise_kind = _noise_bed(rng, n, sr, pools)
    background = noise * 10 ** (-snr / 20)
    room_sounds = _events_and_music(rng, n, sr, pools, labels)
    if rt60:  # the room colours every sound in it, not only the voice: else reverberation = speech
        room_sounds = sounds.fft_convolve(room_sounds, sounds.room_impulse(rng, rt60, sr))[:n]
    background += room_sounds
    level_db = float(rng.uniform(-60, -5)) if rng.random() < 0.8 else float(rng.uniform(-35, -15))
    drift = sounds.drift(rng, n, sr)
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
        "second_speaker_clips": second_clips,
        "speech_seconds_by_source": {k: round(v, 2) for k, v in sorted(by_source.items())},
        "speech_seconds_by_language": {k: round(v, 2) for k, v in sorted(by_language.items())},
    }
    return Mixture(y.astype(np.float32), merge_intervals(labels), meta)


def _clips_by_group(clips: list[Clip]) -> dict[str, list[Clip]]:
    """Speech clips keyed by the source group they are weighted by."""
    out: dict[str, list[Clip]] = {}
    for c in clips:
        out.setdefault(c.group, []).append(c)
    return out


def _noise_bed(rng: np.random.Generator, n: int, sr: int, pools: Pools) -> tuple[np.ndarray, str]:
    """Background of unit RMS: coloured noise, room tone, hum, slow modulation, often a recorded
    place, sometimes crowd babble; and which of ``synthetic``, ``recorded``, ``babble`` leads."""
    parts = [sounds.colored_noise(rng, n, float(rng.choice([0.0, 1.0, 1.5, 2.0])))]
    if rng.random() < 0.6:
        parts.append(sounds.colored_noise(rng, n, 2.5) * rng.uniform(0.3, 1.0))
    if rng.random() < 0.35:  # up to 10 dB above the noise: a hum-dominated bed
        parts.append(sounds.hum(rng, n, sr) * 10 ** (rng.uniform(-15, 10) / 20))
    if rng.random() < 0.35:
        parts.append(sounds.fan(rng, n, sr) * 10 ** (rng.uniform(-10, 3) / 20))
    if pools.effects and rng.random() < 0.15:
        loop = pools.effects[rng.integers(len(pools.effects))].samples
        parts.append(np.resize(loop, n) / sounds.rms(loop) * rng.uniform(0.1, 0.5))
    kind = "synthetic"
    if pools.noise and rng.random() < 0.6:  # a recorded place: street, café, crowd, machines
        parts.append(_recorded_bed(rng, n, pools.noise) * 10 ** (rng.uniform(-6, 10) / 20))
        kind = "recorded"
    if rng.random() < 0.15:
        parts.append(sounds.babble(rng, n, sr, pools.speech) * 10 ** (rng.uniform(-6, 6) / 20))
        kind = "babble"
    y = sum(parts)
    if rng.random() < 0.3:
        y = y * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.02, 0.3) * np.arange(n) / sr))
    return (y / sounds.rms(y)).astype(np.float32), kind


def _events_and_music(
    rng: np.random.Generator, n: int, sr: int, pools: Pools, labels: list[tuple[float, float]]
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
            x = sounds.event(rng, str(rng.choice(sounds.EVENTS)), sr)
        _add_anywhere(rng, out, x[: n // 2] / sounds.rms(x) * 10 ** (rng.uniform(-25, 0) / 20))
    if rng.random() < 0.4:  # steady noise bursts, up to as loud as the voice
        for _ in range(int(rng.integers(2, 9))):
            _add_anywhere(
                rng, out, sounds.hiss(rng, sr)[: n // 2] * 10 ** (rng.uniform(-20, 0) / 20)
            )
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
            x = x[: n // 2] / sounds.rms(x) * 10 ** (rng.uniform(-20, 0) / 20)
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
        x = np.roll(x, int(rng.integers(x.size))) / sounds.rms(x)
        piece = x[: n - fill].astype(np.float32)
        ramp = min(fade, piece.size)
        piece[:ramp] *= np.linspace(0, 1, ramp, dtype=np.float32)
        out[fill : fill + piece.size] += piece
        fill += max(piece.size - ramp, 1)
    return out / sounds.rms(out)


def _add_anywhere(rng: np.random.Generator, out: np.ndarray, x: np.ndarray) -> None:
    """Adds ``x`` (at most half as long as ``out``) into ``out`` at a uniformly drawn start."""
    start = int(rng.integers(0, out.size - x.size))
    out[start : start + x.size] += x


def _pause(rng: np.random.Generator) -> float:
    """Pause between utterances: mostly short, sometimes long (0.2–10 s)."""
    r = rng.random()
    if r < 0.55:
        return float(rng.uniform(0.2, 1.0))
    if r < 0.9:
        return float(rng.uniform(1.0, 3.0))
    return float(rng.uniform(3.0, 10.0))
