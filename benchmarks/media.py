"""Long, lecture-like benchmark recordings, synthesised deterministically and cached.

Speech-like phrases (``tests.media.speechlike``: a gliding harmonic voice with a syllable-rate
envelope) separated by short breaths and now and then a long pause (the lecturer writes on the
board), over white room noise at −50 dBFS and a faint 50 Hz hum. The audio is made and written
one minute at a time, so even the 3-hour file or the 48 kHz stereo hour is never held whole.
Files land in ``benchmarks/.cache/`` (git-ignored) with their labels beside them
(``NAME.json``, ``{"duration": s, "speech": [[start, end], ...]}``, the dev-set format).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.media import speechlike  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"
PIECE_SECONDS = 60
SYNTH_VERSION = 1
"""Bump when the synthesis changes, so cached files are made again."""
_ENCODE_FRAME = 4096


@dataclass(frozen=True)
class Recording:
    """One benchmark file: its length, format and how it is encoded."""

    minutes: float
    sample_rate: int
    channels: int
    container: str  # "flac" or "mp4" (AAC)
    seed: int = 0
    bitrate: int = 128_000

    @property
    def name(self) -> str:
        layout = "mono" if self.channels == 1 else f"{self.channels}ch"
        return (
            f"lecture-{self.minutes:g}min-{self.sample_rate // 1000}k-{layout}"
            f"-s{self.seed}-v{SYNTH_VERSION}.{self.container}"
        )

    @property
    def path(self) -> Path:
        return CACHE / self.name

    @property
    def labels_path(self) -> Path:
        return self.path.with_suffix(".json")

    @property
    def duration(self) -> float:
        return self.minutes * 60.0


def lecture_schedule(duration: float, *, seed: int) -> list[tuple[float, float]]:
    """Speech spans of a lecture: 0.8–6 s phrases, 0.15–1 s breaths, 3 % long pauses (4–25 s).

    No span crosses a whole minute, so every minute can be synthesised on its own.
    """
    rng = np.random.default_rng(seed)
    spans: list[tuple[float, float]] = []
    t = rng.uniform(0.5, 2.0)
    while t < duration:
        boundary = (int(t) // PIECE_SECONDS + 1) * PIECE_SECONDS
        end = min(t + rng.uniform(0.8, 6.0), duration, boundary - 0.2)
        if end - t >= 0.3:
            spans.append((round(t, 3), round(end, 3)))
        gap = rng.uniform(4.0, 25.0) if rng.random() < 0.03 else rng.uniform(0.15, 1.0)
        t = max(end, t) + gap
    return spans


def lecture_pieces(rec: Recording) -> Iterator[np.ndarray]:
    """The recording minute by minute: float32 ``[n]`` (mono) or ``[n, channels]``."""
    spans = lecture_schedule(rec.duration, seed=rec.seed)
    sr = rec.sample_rate
    total = int(round(rec.duration * sr))
    pieces = -(-total // (PIECE_SECONDS * sr))
    for index in range(pieces):
        first = index * PIECE_SECONDS * sr
        n = min(PIECE_SECONDS * sr, total - first)
        t0 = first / sr
        local = [
            (max(0.0, a - t0), min(n / sr, b - t0)) for a, b in spans if b > t0 and a < t0 + n / sr
        ]
        seed = rec.seed * 1_000_003 + index
        voice = speechlike(sr, n / sr, local, seed=seed, noise_db=-50.0)[:n]
        hum = 0.002 * np.sin(2 * np.pi * 50.0 * (first + np.arange(n)) / sr)
        mono = (voice + hum).astype(np.float32)
        if rec.channels == 1:
            yield mono
            continue
        rng = np.random.default_rng(seed + 7)
        extra = 10 ** (-56 / 20) * rng.standard_normal((n, rec.channels - 1))
        others = 0.85 * mono[:, None] + extra.astype(np.float32)
        yield np.concatenate([mono[:, None], others], axis=1)


def write_flac(rec: Recording, path: Path) -> None:
    """Write ``rec`` as 16-bit FLAC with libsndfile, one piece at a time."""
    with sf.SoundFile(
        str(path),
        "w",
        samplerate=rec.sample_rate,
        channels=rec.channels,
        format="FLAC",
        subtype="PCM_16",
    ) as out:
        for piece in lecture_pieces(rec):
            out.write(piece)


def write_mp4(rec: Recording, path: Path) -> None:
    """Encode ``rec`` as AAC in mp4 with PyAV (FFmpeg's aac encoder), one piece at a time."""
    layout = {1: "mono", 2: "stereo"}[rec.channels]
    sr = rec.sample_rate
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=sr, layout=layout)
        stream.bit_rate = rec.bitrate
        pts = 0
        for piece in lecture_pieces(rec):
            data = piece if piece.ndim == 2 else piece[:, None]
            for start in range(0, len(data), _ENCODE_FRAME):
                chunk = np.ascontiguousarray(data[start : start + _ENCODE_FRAME].T)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate = sr
                frame.pts = pts
                frame.time_base = Fraction(1, sr)
                pts += chunk.shape[1]
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def ensure(rec: Recording) -> Path:
    """The cached file for ``rec``, synthesised (atomically, with labels) when missing."""
    if rec.path.exists() and rec.labels_path.exists():
        return rec.path
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = rec.path.with_name(f".{rec.path.stem}.tmp{os.getpid()}{rec.path.suffix}")
    try:
        {"flac": write_flac, "mp4": write_mp4}[rec.container](rec, tmp)
        labels = {
            "duration": rec.duration,
            "speech": [list(s) for s in lecture_schedule(rec.duration, seed=rec.seed)],
        }
        rec.labels_path.write_text(json.dumps(labels))
        os.replace(tmp, rec.path)
    finally:
        tmp.unlink(missing_ok=True)
    return rec.path
