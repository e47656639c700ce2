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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocml.models.errors import TrainingInputError
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

# Debian packages whose files are allowed as training material (DEVELOPERS.md, data rules). Only
# allowed packages and languages are listed here; nothing else is ever read: not val's languages
# of Tux Paint and KTuberling, nor any package or language the rules reserve for evaluation.
SPEECH_DIRS = (
    "/usr/share/asterisk/sounds/en",  # asterisk-core-sounds-en-wav/-g722: Allison, 8 and 16 kHz
    "/usr/share/sounds/alsa",  # alsa-utils: "Front left" etc. (Noise.wav is not speech)
)
FREEDESKTOP_DIR = "/usr/share/sounds/freedesktop/stereo"  # voices: audio-channel-*.oga
TUXPAINT_ROOT = "/usr/share/tuxpaint/stamps"  # tuxpaint-stamps-default: *_desc_<lang>.ogg
TUXPAINT_LANGUAGES = ("fr", "ru", "ca", "es", "be", "da", "lt", "nl", "en", "ml")
KTUBERLING_ROOT = "/usr/share/ktuberling/sounds"  # ktuberling-data: <lang>/<word>.ogg
KTUBERLING_LANGUAGES = (
    "ca", "lt", "nn", "gl", "sl", "wa", "en", "fi", "ga", "nds", "pt", "sv",
    "sr", "sr@ijekavian", "sr@ijekavianlatin", "sr@latin",
)  # fmt: skip
HEDGEWARS_ROOT = "/usr/share/games/hedgewars/Data/Sounds/voices"  # hedgewars-data voice packs
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
LOCALE_ROOT = "/usr/share/locale"
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
# Festival voice → (language of its texts, encoding it reads); voices not installed are skipped.
FESTIVAL_VOICES = {
    "kal_diphone": ("en", "latin-1"),
    "ked_diphone": ("en", "latin-1"),  # festvox-kdlpc16k
    "cmu_us_slt_arctic_hts": ("en", "latin-1"),
    "upc_ca_ona_hts": ("ca", "latin-1"),
    "lp_diphone": ("it", "latin-1"),
    "pc_diphone": ("it", "latin-1"),
    "msu_ru_nsh_clunits": ("ru", "utf-8"),  # festvox-ru
    "suo_fi_lj_diphone": ("fi", "latin-1"),  # festvox-suopuhe-lj
    "hy_fi_mv_diphone": ("fi", "latin-1"),  # festvox-suopuhe-mv
    "hindi_NSK_diphone": ("hi", "utf-8"),  # festvox-hi-nsk
    "marathi_NSK_diphone": ("mr", "utf-8"),  # festvox-mr-nsk
    "telugu_NSK_diphone": ("te", "utf-8"),  # festvox-te-nsk
}
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
    spans: tuple[tuple[int, int], ...] = ()  # speech within the clip (samples); () = all of it

    @property
    def group(self) -> str:
        """The source a clip is weighted by: the engine or package (``espeak-ng``, ``tuxpaint``)."""
        return self.source.split(":")[0]


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
    """Decode every path of one folder, ``source`` naming both the source and the voice."""
    return load_speech([SpeechFile(p, source, source, "") for p in paths], sample_rate)


@dataclass(frozen=True)
class SpeechFile:
    """A recording of real speech: the file, its package, its speaker (or pack) and language."""

    path: Path
    source: str
    voice: str
    language: str


def tuxpaint_files(
    root: Path | str = TUXPAINT_ROOT, *, languages: tuple[str, ...] = TUXPAINT_LANGUAGES
) -> list[SpeechFile]:
    """Tux Paint's spoken stamp descriptions (``*_desc_<lang>.ogg``; English is ``*_desc.ogg``).

    Only ``languages`` are read, so val's languages cannot slip in through a glob. One voice per
    language: each language's descriptions were recorded by one or a few volunteers.
    """
    base = Path(root)
    found = []
    for lang in languages:
        pattern = "*_desc.ogg" if lang == "en" else f"*_desc_{lang}.ogg"
        found += [SpeechFile(p, "tuxpaint", f"tuxpaint-{lang}", lang) for p in base.rglob(pattern)]
    return sorted(found, key=lambda f: str(f.path))


def ktuberling_files(
    root: Path | str = KTUBERLING_ROOT, *, languages: tuple[str, ...] = KTUBERLING_LANGUAGES
) -> list[SpeechFile]:
    """KTuberling's spoken words, ``<root>/<lang>/*.ogg``, for ``languages`` only."""
    base = Path(root)
    return [
        SpeechFile(p, "ktuberling", f"ktuberling-{lang}", lang.split("@")[0])
        for lang in languages
        for p in sorted((base / lang).glob("*.ogg"))
    ]


def hedgewars_files(root: Path | str = HEDGEWARS_ROOT) -> list[SpeechFile]:
    """Hedgewars' voice packs (``<root>/<pack>/*.ogg``): short shouted words, one voice a pack."""
    base = Path(root)
    packs = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    return [
        SpeechFile(p, "hedgewars", f"hedgewars-{pack.name}", _pack_language(pack.name))
        for pack in packs
        for p in sorted(pack.glob("*.ogg"))
    ]


def _pack_language(pack: str) -> str:
    """Language of a Hedgewars voice pack from its name (``Default_ru`` → ru; else English)."""
    suffix = pack.rsplit("_", 1)[-1]
    return suffix if "_" in pack and len(suffix) == 2 else ("ru" if pack == "Russian" else "en")


def system_speech_files() -> list[SpeechFile]:
    """Asterisk's English prompts (Allison), ALSA's and freedesktop's channel-name voices."""
    files = [
        SpeechFile(f, "asterisk" if "asterisk" in str(f) else "alsa", "system", "en")
        for d in SPEECH_DIRS
        for f in audio_files(d)
        if f.name != "Noise.wav"
    ]
    fd = Path(FREEDESKTOP_DIR)
    if fd.is_dir():
        files += [
            SpeechFile(f, "freedesktop", "freedesktop", "en")
            for f in sorted(fd.glob("audio-channel-*.oga"))
        ]
    return files


def recorded_speech_files(sources: tuple[str, ...]) -> list[SpeechFile]:
    """The installed real-speech files of the named ``sources`` (see ``RECORDED_SOURCES``)."""
    unknown = sorted(set(sources) - set(RECORDED_SOURCES))
    if unknown:
        raise TrainingInputError(
            f"unknown speech source(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(RECORDED_SOURCES)}"
        )
    files = []
    for name in sources:
        found = RECORDED_SOURCES[name]()
        if not found:
            log.warning("speech source %s is not installed; skipping it", name)
        files += found
    return files


RECORDED_SOURCES: dict[str, Callable[[], list[SpeechFile]]] = {
    "system": system_speech_files,
    "tuxpaint": tuxpaint_files,
    "ktuberling": ktuberling_files,
    "hedgewars": hedgewars_files,
}


def load_speech(files: list[SpeechFile], sample_rate: int) -> list[Clip]:
    """Decode files into clips that keep their source, voice and language, skipping (with a
    log line) the ones the decoder refuses."""
    clips = []
    for f in files:
        try:
            x = read_audio(f.path, sample_rate)
        except OcmlError as err:
            log.info("skipping %s: %s", f.path, err)
            continue
        if x.size:
            clips.append(
                Clip(x, source=f"{f.source}:{f.path.name}", voice=f.voice, language=f.language)
            )
    return clips


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


def espeak_variants() -> list[str]:
    """Voice variants of the installed espeak-ng (``""`` is the language's own voice)."""
    if not shutil.which("espeak-ng"):
        return [""]
    out = subprocess.run(
        ["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=False
    ).stdout
    found = {tok[3:] for line in out.splitlines() for tok in line.split() if tok.startswith("!v/")}
    return ["", *sorted(found)]


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

    espeak-ng gets random speed, pitch, word gap and voice variant (every installed one) across
    all its languages; flite speaks English; festival's voices speak their own language
    (``FESTIVAL_VOICES``). Missing engines and voices are skipped with a warning.
    """
    available = [e for e in engines if shutil.which("text2wave" if e == "festival" else e)]
    for e in set(engines) - set(available):
        log.warning("TTS engine %s is not installed; skipping it", e)
    if not available:
        return
    langs = espeak_languages()
    variants = espeak_variants()
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
                variant = variants[rng.integers(len(variants))]
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
                lang, encoding = FESTIVAL_VOICES[voice]
                pool = _language_texts(lang, texts)
                x = _run_to_clip(
                    ["text2wave", "-eval", f"(voice_{voice})", "-o", str(out)],
                    out,
                    sample_rate,
                    stdin=pool[rng.integers(len(pool))].encode(encoding, "replace"),
                )
            if x is not None and x.size > sample_rate // 10:
                yield Clip(x, source=engine, voice=voice, language=lang)


GM_FAMILIES = 16  # General MIDI: 128 programs in 16 families of 8 (piano … sound effects)
_DRUMS = {"kick": 36, "snare": 38, "hat": 42, "open_hat": 46, "crash": 49, "ride": 51, "tom": 45}


def _varlen(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    while value > 0x7F:
        value >>= 7
        out.insert(0, (value & 0x7F) | 0x80)
    return bytes(out)


def _midi_file(rng: np.random.Generator, seconds: float) -> bytes:
    """A random format-0 MIDI file ``seconds`` long: melody and chords, often a drum kit.

    The melody's program is drawn family by family, so every General MIDI family (choir "aahs",
    breath, applause and the other sound effects included) is as likely as the piano.
    """
    ticks = 480
    tempo_us = int(60e6 / rng.uniform(60, 180))
    events: list[tuple[int, bytes]] = []
    program = int(rng.integers(GM_FAMILIES)) * 8 + int(rng.integers(8))
    events.append((0, bytes([0xC0, program])))
    chords = program if rng.random() < 0.5 else int(rng.integers(GM_FAMILIES)) * 8
    events.append((0, bytes([0xC1, chords])))
    root = int(rng.integers(40, 68))
    scale = (
        np.array([0, 2, 4, 5, 7, 9, 11]) if rng.random() < 0.7 else np.array([0, 2, 3, 5, 7, 8, 10])
    )
    end = int(seconds * 1e6 / tempo_us * ticks)
    t = 0
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
    if rng.random() < 0.6:  # a drum kit on channel 10: kick, snare and hats on a beat grid
        step = ticks // 2
        for beat in range(0, end, step):
            k = (beat // step) % 8
            hits = ["hat"] + (["kick"] if k in (0, 4) or rng.random() < 0.1 else [])
            hits += ["snare"] if k in (2, 6) else []
            hits += ["crash"] if k == 0 and rng.random() < 0.1 else []
            for hit in hits:
                events.append((beat, bytes([0x99, _DRUMS[hit], int(rng.integers(50, 120))])))
                events.append((beat + step // 2, bytes([0x89, _DRUMS[hit], 0])))
    events.sort(key=lambda e: (e[0], e[1][0] & 0xF0 == 0x90))
    body = bytearray(struct.pack(">BBBB", 0, 0xFF, 0x51, 3) + tempo_us.to_bytes(3, "big"))
    last = 0
    for when, data in events:
        body += _varlen(when - last) + data
        last = when
    body += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks)
    return header + b"MTrk" + struct.pack(">I", len(body)) + body


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


# Formants (Hz) of sung vowels a, e, i, o, u: a singer's "la la" is voiced and formant-shaped like
# speech, and must still be learned as music.
_VOWELS = (
    (800, 1150, 2900),
    (400, 1600, 2700),
    (300, 2300, 3000),
    (450, 800, 2830),
    (325, 700, 2530),
)


def sung_tones(rng: np.random.Generator, seconds: float, sample_rate: int) -> np.ndarray:
    """A wordless sung melody: legato notes with vibrato, a glottal-like source through vowel formants."""
    n = int(seconds * sample_rate)
    root = float(rng.uniform(110, 440))
    pieces, total = [], 0
    while total < n:
        semitone = float(rng.choice([0, 2, 4, 5, 7, 9, 12, -3, -5]))
        length = int(sample_rate * rng.uniform(0.3, 1.5))
        pieces.append(np.full(length, root * 2 ** (semitone / 12)))
        total += length
    f0 = np.concatenate(pieces)[:n]
    t = np.arange(n) / sample_rate
    f0 = f0 * 2 ** (rng.uniform(0.2, 0.6) / 12 * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * t))
    phase = np.cumsum(f0) / sample_rate
    source = (phase % 1.0) * 2 - 1  # sawtooth: every harmonic, falling 6 dB per octave
    spec = np.fft.rfft(source)
    f = np.fft.rfftfreq(n, 1 / sample_rate)
    vowel = _VOWELS[rng.integers(len(_VOWELS))]
    spec *= sum(1 / (1 + ((f - fc) / (60 + fc * 0.08)) ** 2) for fc in vowel)
    y = np.fft.irfft(spec, n)
    return (y / (np.abs(y).max() + 1e-9)).astype(np.float32)
