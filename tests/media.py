"""Test helpers that make signals and encoded media files (numpy + soundfile/PyAV).

Shared by every test that needs real audio or video files; nothing here is a test itself.
Signals are float32 arrays shaped ``[samples]`` (mono) or ``[samples, channels]``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

# codec → (FFmpeg encoder, the sample format it is fed).
_CODECS = {
    "aac": ("aac", "fltp"),
    "opus": ("libopus", "flt"),
    "vorbis": ("vorbis", "fltp"),
    "mp3": ("libmp3lame", "fltp"),
    "flac": ("flac", "s16"),
}
_CONTAINERS = {
    ".mp4": "mp4",
    ".m4a": "ipod",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".mp3": "mp3",
    ".ogg": "ogg",
    ".opus": "ogg",
}


def tone_burst(
    sr: int,
    duration: float,
    *,
    start: float,
    length: float,
    freq: float = 1000.0,
    amplitude: float = 0.5,
    channels: int = 1,
) -> np.ndarray:
    """Silence of ``duration`` s with a sine of ``freq`` Hz from ``start`` for ``length`` s.

    The burst starts at exactly sample ``round(start * sr)`` with phase 0 (a hard onset, so the
    first sample above a small threshold marks ``start``). Several channels carry the same signal.
    """
    n = int(round(duration * sr))
    out = np.zeros(n, dtype=np.float32)
    first = int(round(start * sr))
    last = min(n, first + int(round(length * sr)))
    t = np.arange(last - first) / sr
    out[first:last] = amplitude * np.sin(2 * np.pi * freq * t + np.pi / 2)
    return out if channels == 1 else np.repeat(out[:, None], channels, axis=1)


def sine(sr: int, duration: float, *, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    """A mono float32 sine of ``duration`` seconds."""
    t = np.arange(int(round(duration * sr))) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def speechlike(
    sr: int,
    duration: float,
    segments: list[tuple[float, float]],
    *,
    seed: int = 0,
    noise_db: float = -50.0,
) -> np.ndarray:
    """Mono float32 "speech": a harmonic, syllable-rate modulated voice in ``segments`` over noise.

    Each ``[start, end]`` span holds a 100–220 Hz fundamental with 12 decaying harmonics whose pitch
    glides and whose loudness follows a 4 Hz syllable envelope; outside, only white noise at
    ``noise_db`` dBFS. Deterministic for a given ``seed``.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration * sr))
    out = (10 ** (noise_db / 20) * rng.standard_normal(n)).astype(np.float32)
    for start, end in segments:
        a, b = int(round(start * sr)), min(n, int(round(end * sr)))
        t = np.arange(b - a) / sr
        f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        voice = sum(np.sin(k * phase) / k for k in range(1, 13) if k * f0.max() < sr / 2)
        syllables = 0.5 * (1 - np.cos(2 * np.pi * rng.uniform(3, 5) * t))
        edge = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01) if len(t) else t
        out[a:b] += (0.25 * voice * syllables * edge).astype(np.float32)
    return out


def write_wav(path: Path | str, samples: np.ndarray, sr: int, *, subtype: str = "PCM_16") -> Path:
    """Write ``samples`` as WAV with a soundfile ``subtype`` (PCM_16, PCM_24, FLOAT, DOUBLE...)."""
    sf.write(str(path), samples, sr, subtype=subtype, format="WAV")
    return Path(path)


def write_soundfile(path: Path | str, samples: np.ndarray, sr: int, **kwargs: str) -> Path:
    """Write with libsndfile; the format follows the extension (.flac, .ogg, .mp3, ...)."""
    sf.write(str(path), samples, sr, **kwargs)
    return Path(path)


def encode(
    path: Path | str,
    samples: np.ndarray,
    sr: int,
    *,
    codec: str,
    container: str | None = None,
    bitrate: int | None = None,
    muxer_options: dict[str, str] | None = None,
) -> Path:
    """Encode ``samples`` with PyAV/FFmpeg: ``codec`` one of aac, opus, vorbis, mp3, flac.

    ``container`` is an FFmpeg muxer name; by default it follows the extension (.mp4, .m4a, .mov,
    .mkv, .webm, .mp3, .ogg, .opus); ``muxer_options`` go to that muxer (``{"write_xing": "0"}``:
    an MP3 without a Xing/Info header). The channel count follows ``samples``' second axis (1, 2, 6
    or 8). FFmpeg's own vorbis encoder (no libvorbis here) takes stereo only; for other vorbis
    files use `write_soundfile`.
    """
    path = Path(path)
    encoder, fmt = _CODECS[codec]
    data = samples if samples.ndim == 2 else samples[:, None]
    channels = data.shape[1]
    layout = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}[channels]
    muxer = container or _CONTAINERS[path.suffix]
    with av.open(str(path), "w", format=muxer, options=muxer_options or {}) as out:
        stream = out.add_stream(encoder, rate=sr, layout=layout, options={"strict": "experimental"})
        if bitrate:
            stream.bit_rate = bitrate
        _encode_all(out, stream, data, sr, fmt, layout)
    return path


def _encode_all(out, stream, data: np.ndarray, sr: int, fmt: str, layout: str) -> None:
    """Feed ``data`` to ``stream`` in 4096-sample frames with exact pts, then flush."""
    step = 4096
    for start in range(0, len(data), step):
        chunk = data[start : start + step]
        if fmt.startswith("s16"):
            chunk = np.clip(np.round(chunk * 32767), -32768, 32767).astype(np.int16)
        arr = np.ascontiguousarray(chunk.T) if fmt.endswith("p") else chunk.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout=layout)
        frame.sample_rate = sr
        frame.pts = start
        frame.time_base = Fraction(1, sr)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def write_video_without_audio(path: Path | str, *, seconds: float = 1.0) -> Path:
    """A tiny mp4 (by extension: mkv, mov, ...) with one 64×48 video stream and no audio."""
    path = Path(path)
    with av.open(str(path), "w", format=_CONTAINERS.get(path.suffix, "mp4")) as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(int(seconds * 10)):
            image = np.full((48, 64, 3), (i * 20) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def write_video_with_audio(
    path: Path | str,
    samples: np.ndarray,
    sr: int,
    *,
    audio_delay: float = 0.0,
    seconds: float | None = None,
) -> Path:
    """An mp4/mkv with a small video stream and an AAC audio stream starting ``audio_delay`` late.

    The delay is written as the audio stream's timestamps (its ``start_time``), the way capture
    hardware produces it; a decoder must place the audio by timestamp to keep sync.
    """
    path = Path(path)
    data = samples if samples.ndim == 2 else samples[:, None]
    layout = {1: "mono", 2: "stereo"}[data.shape[1]]
    seconds = seconds if seconds is not None else len(data) / sr + audio_delay
    with av.open(str(path), "w", format=_CONTAINERS[path.suffix]) as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=sr, layout=layout)
        for i in range(int(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        offset = int(round(audio_delay * sr))
        step = 1024
        for start in range(0, len(data), step):
            chunk = np.ascontiguousarray(data[start : start + step].T)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = sr
            frame.pts = start + offset
            frame.time_base = Fraction(1, sr)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
    return path


def jingle(sr: int, duration: float, *, seed: int = 0) -> np.ndarray:
    """A music intro: a drum hit every 0.5 s and a high bell note every 1.5 s (mono float32).

    Short tonal and percussive bursts: a speech detector may flag a few of them, never seconds
    of them in a row.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration * sr))
    t = np.arange(n) / sr
    out = np.zeros(n)
    notes = (1046.5, 1318.5, 1568.0, 2093.0, 1760.0, 1396.9)
    for k in range(int(duration / 0.5)):
        a = int(k * 0.5 * sr)
        hit = min(n, a + int(0.08 * sr)) - a
        out[a : a + hit] += 0.4 * rng.standard_normal(hit) * np.exp(-np.arange(hit) / sr * 40)
        if k % 3 == 0:
            b = min(n, a + int(0.25 * sr))
            tt = t[a:b] - t[a]
            out[a:b] += (
                0.3 * np.sin(2 * np.pi * notes[(k // 3) % len(notes)] * tt) * np.exp(-4 * tt)
            )
    return out.astype(np.float32)
