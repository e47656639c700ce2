"""Sound sources for `ocml-train synth`: text-to-speech, recorded speech, effects and MIDI music.

Every source is optional at run time: a missing binary or folder is skipped with a warning, so the
synthesiser still works (tests run it on folders of audio they make themselves). Everything is
deterministic given the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import gettext
import logging
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocml.pipeline.errors import OcmlError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".mp3",
    ".opus",
    ".m4a",
    ".mp4",
    ".webm",
    ".mkv",
    ".g722",
)

# Debian packages whose files are allowed as training material (the data rules).
SPEECH_DIRS = (
    "/usr/share/asterisk/sounds/en",  # asterisk-core-sounds-en-wav/-g722: Allison, 8 kHz and wideband 16 kHz
    "/usr/share/sounds/alsa",  # alsa-utils: "Front left" etc. (Noise.wav is not speech)
)
FREEDESKTOP_DIR = "/usr/share/sounds/freedesktop/stereo"  # voices: audio-channel-*.oga
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
LOCALE_ROOT = "/usr/share/locale"
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = (
    "kal_diphone",
    "cmu_us_slt_arctic_hts",
    "upc_ca_ona_hts",
    "lp_diphone",
    "pc_diphone",
)
FESTIVAL_LANG = {"upc_ca_ona_hts": "ca", "lp_diphone": "it", "pc_diphone": "it"}
ESPEAK_VARIANTS = (
    "",
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "croak",
    "klatt",
    "klatt2",
    "klatt3",
    "Andy",
    "Annie",
    "Denis",
    "Gene",
    "Jacky",
    "Lee",
    "Mario",
    "Michael",
    "Mr serious",
    "Storm",
    "Tweaky",
    "anika",
    "belinda",
    "boris",
    "edward",
    "iven",
    "john",
    "kaukovalta",
    "linda",
    "max",
    "norbert",
    "quincy",
    "robert",
    "steph",
    "travis",
    "victor",
    "zac",
)
_ENGLISH = (
    "Good morning everyone, today we continue with the second part of the lecture.",
    "Please open your notes at the chapter on linear algebra.",
    "The main idea is simple, but the details matter a lot.",
    "Are there any questions so far? Then let us move on.",
    "This result was first published in nineteen sixty two.",
    "We will see three examples before the break.",
)


@dataclass(frozen=True)
class Clip:
    """A mono float32 clip at the synthesiser's sample rate, with where it came from."""

    samples: np.ndarray
    source: str
    voice: str = ""
    language: str = ""


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate`` through the pipeline's decoder."""
    from ocml.pipeline.decode import stream

    blocks = list(stream(str(path), sample_rate=sample_rate))
    return np.concatenate(blocks).astype(np.float32) if blocks else np.zeros(0, np.float32)


def audio_files(folder: Path | str) -> list[Path]:
    """Audio files under ``folder`` (recursively, symlinks resolved, duplicates dropped), sorted."""
    root = Path(folder)
    if not root.is_dir():
        return []
    seen: dict[Path, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file():
            seen.setdefault(p.resolve(), p)
    return sorted(seen.values())


def load_clips(paths: list[Path], sample_rate: int, *, source: str) -> list[Clip]:
    """Decode every path, skipping (with a warning) the ones the decoder refuses."""
    clips = []
    for p in paths:
        try:
            x = read_audio(p, sample_rate)
        except OcmlError as err:
            log.info("skipping %s: %s", p, err)
            continue
        if x.size:
            clips.append(Clip(x, source=f"{source}:{p.name}", voice=source))
    return clips


def system_speech_files() -> list[Path]:
    """Recorded speech from the allowed Debian packages that are installed."""
    files = [f for d in SPEECH_DIRS for f in audio_files(d) if f.name != "Noise.wav"]
    fd = Path(FREEDESKTOP_DIR)
    if fd.is_dir():
        files += sorted(fd.glob("audio-channel-*.oga"))
    return files


def system_effect_files() -> list[Path]:
    """Non-speech effects from the allowed Debian packages (alerts, ALSA's noise)."""
    files = [Path(d) / "Noise.wav" for d in SPEECH_DIRS if (Path(d) / "Noise.wav").is_file()]
    fd = Path(FREEDESKTOP_DIR)
    if fd.is_dir():
        files += sorted(f for f in fd.glob("*.oga") if not f.name.startswith("audio-channel-"))
    return files


_FORMAT = re.compile(r"%[-+ #0-9.]*[a-zA-Z]|\{[^}]*\}|<[^>]*>|\$\w+|[_&](?=\w)|\\[nt]")


def gettext_texts(
    root: Path | str = LOCALE_ROOT, *, per_language: int = 400
) -> dict[str, list[str]]:
    """Sentences per language code from the system's gettext catalogues, cleaned for TTS.

    Format specifiers, markup and keyboard accelerators are removed; only strings with at least
    three words are kept. The result is sorted, so the same system gives the same texts.
    """
    texts: dict[str, set[str]] = {}
    for mo in sorted(Path(root).glob("*/LC_MESSAGES/*.mo")):
        lang = mo.parent.parent.name.split("@")[0].lower().replace("_", "-")
        try:
            with mo.open("rb") as fh:
                catalog = gettext.GNUTranslations(fh)._catalog  # noqa: SLF001 - the parsed table
        except (OSError, ValueError, IndexError, KeyError, struct.error) as err:
            log.debug("skipping catalogue %s: %s", mo, err)
            continue
        bucket = texts.setdefault(lang, set())
        for value in catalog.values():
            if not isinstance(value, str) or len(bucket) >= per_language * 3:
                continue
            line = " ".join(_FORMAT.sub(" ", value).split())
            if 3 <= len(line.split()) <= 30 and 15 <= len(line) <= 220:
                bucket.add(line)
    return {k: sorted(v)[: per_language * 3] for k, v in sorted(texts.items()) if v}


def espeak_languages() -> list[str]:
    """Language codes of the installed espeak-ng voices (empty when espeak-ng is missing)."""
    if not shutil.which("espeak-ng"):
        return []
    out = subprocess.run(
        ["espeak-ng", "--voices"], capture_output=True, text=True, check=False
    ).stdout
    return sorted({line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1})


def _language_texts(lang: str, texts: dict[str, list[str]]) -> list[str]:
    """Texts for an espeak language code: exact catalogue, else same base language, else English."""
    if lang in texts:
        return texts[lang]
    base = lang.split("-")[0]
    for key in (base, *(k for k in texts if k.split("-")[0] == base)):
        if key in texts:
            return texts[key]
    return texts.get("en", []) or list(_ENGLISH)


def _run_to_clip(
    cmd: list[str], out: Path, sample_rate: int, stdin: bytes | None = None
) -> np.ndarray | None:
    """Run a TTS command that writes ``out`` and decode the result; None when it failed."""
    try:
        out.unlink(missing_ok=True)
        subprocess.run(cmd, input=stdin, capture_output=True, timeout=60, check=True)
        return read_audio(out, sample_rate)
    except (subprocess.SubprocessError, OSError, OcmlError) as err:
        log.info("TTS command %s failed: %s", cmd[0], err)
        return None


def tts_clips(
    rng: np.random.Generator,
    *,
    count: int,
    sample_rate: int,
    texts: dict[str, list[str]],
    engines: tuple[str, ...] = ("espeak-ng", "flite", "festival"),
) -> Iterator[Clip]:
    """Yield ``count`` TTS utterances spread over the installed engines, voices and languages.

    espeak-ng gets random speed, pitch, word gap and voice variant across all its languages; flite
    and festival speak English (and festival's Catalan/Italian voices their language). Missing
    engines are skipped with a warning.
    """
    available = [e for e in engines if shutil.which("text2wave" if e == "festival" else e)]
    for e in set(engines) - set(available):
        log.warning("TTS engine %s is not installed; skipping it", e)
    if not available:
        return
    langs = espeak_languages()
    fest_voices = [
        v for v in FESTIVAL_VOICES if list(Path("/usr/share/festival/voices").glob(f"*/{v}"))
    ]
    weights = {"espeak-ng": 0.5, "flite": 0.2, "festival": 0.3}
    probs = np.array([weights[e] for e in available])
    probs /= probs.sum()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "u.wav"
        for _ in range(count):
            engine = available[rng.choice(len(available), p=probs)]
            if engine == "espeak-ng" and langs:
                lang = langs[rng.integers(len(langs))] if rng.random() < 0.75 else "en"
                pool = _language_texts(lang, texts)
                text = pool[rng.integers(len(pool))]
                variant = ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))]
                voice = f"{lang}+{variant}" if variant else lang
                cmd = [
                    "espeak-ng",
                    "-v",
                    voice,
                    "-s",
                    str(int(rng.integers(110, 230))),
                    "-p",
                    str(int(rng.integers(20, 80))),
                    "-g",
                    str(int(rng.integers(0, 12))),
                    "-w",
                    str(out),
                    text,
                ]
                x = _run_to_clip(cmd, out, sample_rate)
            elif engine == "flite":
                lang, voice = "en", FLITE_VOICES[rng.integers(len(FLITE_VOICES))]
                pool = texts.get("en") or list(_ENGLISH)
                x = _run_to_clip(
                    ["flite", "-voice", voice, "-t", pool[rng.integers(len(pool))], "-o", str(out)],
                    out,
                    sample_rate,
                )
            else:
                if not fest_voices:
                    continue
                voice = fest_voices[rng.integers(len(fest_voices))]
                lang = FESTIVAL_LANG.get(voice, "en")
                pool = _language_texts(lang, texts)
                x = _run_to_clip(
                    ["text2wave", "-eval", f"(voice_{voice})", "-o", str(out)],
                    out,
                    sample_rate,
                    stdin=pool[rng.integers(len(pool))].encode("latin-1", "replace"),
                )
            if x is not None and x.size > sample_rate // 10:
                yield Clip(x, source=engine, voice=voice, language=lang)


def _midi_file(rng: np.random.Generator, seconds: float) -> bytes:
    """A random format-0 MIDI file: one instrument, a melody over chords, ``seconds`` long."""
    ticks, tempo_us = 480, 500_000
    events: list[tuple[int, bytes]] = []
    program = int(rng.integers(0, 96))
    events.append((0, bytes([0xC0, program])))
    if rng.random() < 0.5:
        events.append((0, bytes([0xC1, int(rng.integers(0, 96))])))
    else:
        events.append((0, bytes([0xC1, program])))
    root = int(rng.integers(48, 64))
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    t, end = 0, int(seconds * 2 * ticks)
    while t < end:
        dur = int(ticks * rng.choice([0.25, 0.5, 1.0, 2.0]))
        chord = root + scale[[0, 2, 4]] + 12 * int(rng.integers(-1, 1))
        note = int(root + 12 + scale[rng.integers(7)])
        for n, ch, vel in [(note, 0, int(rng.integers(60, 110)))] + [
            (int(c), 1, 50) for c in chord
        ]:
            events.append((t, bytes([0x90 | ch, n, vel])))
            events.append((t + dur, bytes([0x80 | ch, n, 0])))
        t += dur
    events.sort(key=lambda e: (e[0], e[1][0] & 0xF0 == 0x90))
    body, last = bytearray(struct.pack(">BBBB", 0, 0xFF, 0x51, 3) + tempo_us.to_bytes(3, "big")), 0
    for when, data in events:
        delta, last = when - last, when
        var = [delta & 0x7F]
        while delta > 0x7F:
            delta >>= 7
            var.insert(0, (delta & 0x7F) | 0x80)
        body += bytes(var) + data
    body += b"\x00\xff\x2f\x00"
    return (
        b"MThd"
        + struct.pack(">IHHH", 6, 0, 1, ticks)
        + b"MTrk"
        + struct.pack(">I", len(body))
        + body
    )


def midi_clips(rng: np.random.Generator, *, count: int, sample_rate: int) -> list[Clip]:
    """``count`` random MIDI pieces of 10–40 s rendered with fluidsynth and a GM soundfont."""
    font = next((f for f in SOUNDFONTS if Path(f).is_file()), None)
    if not shutil.which("fluidsynth") or font is None:
        log.warning("fluidsynth or a GM soundfont is missing; using synthetic tone music only")
        return []
    clips = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            mid, wav = Path(tmp) / f"{i}.mid", Path(tmp) / f"{i}.wav"
            mid.write_bytes(_midi_file(rng, float(rng.uniform(10, 60))))
            x = _run_to_clip(
                [
                    "fluidsynth",
                    "-ni",
                    "-q",
                    "-g",
                    "0.8",
                    "-r",
                    str(sample_rate),
                    "-F",
                    str(wav),
                    font,
                    str(mid),
                ],
                wav,
                sample_rate,
            )
            if x is not None and np.abs(x).max() > 1e-4:
                clips.append(Clip(x, source="midi"))
    return clips


def tone_music(rng: np.random.Generator, seconds: float, sample_rate: int) -> np.ndarray:
    """Synthetic music without any package: harmonic notes with envelopes on a scale."""
    n = int(seconds * sample_rate)
    out = np.zeros(n, np.float32)
    pos, root = 0, float(rng.uniform(110, 330))
    while pos < n:
        length = int(sample_rate * rng.choice([0.15, 0.3, 0.6, 1.2]))
        f0 = root * 2 ** (rng.choice([0, 2, 4, 5, 7, 9, 11, 12]) / 12)
        t = np.arange(min(length, n - pos)) / sample_rate
        env = np.exp(-t * rng.uniform(1, 8))
        note = sum(np.sin(2 * np.pi * f0 * k * t) / k ** rng.uniform(1, 2.5) for k in range(1, 7))
        out[pos : pos + t.size] += (env * note).astype(np.float32)
        pos += t.size
    return out / (np.abs(out).max() + 1e-9)
