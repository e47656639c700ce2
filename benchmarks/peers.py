"""The peer detectors the benchmarks compare against, each runnable on its own in a fresh process.

- FFmpeg ``silencedetect`` exactly as Opencast's silence operation runs it (−40 dB, 10 s), with
  Opencast's post-processing (voice under 60 s dropped, 2 s kept before speech);
- WebRTC VAD (``webrtcvad-wheels``) on 30 ms frames at 16 kHz;
- Silero VAD: ``silero_vad/data/silero_vad.onnx`` from the installed ``silero-vad`` wheel run with
  onnxruntime the way its ``OnnxWrapper`` does (512-sample chunks at 16 kHz, 64 samples of context
  prepended, a ``[2, 1, 128]`` state, one intra-op thread) — without importing its torch code;
- TEN VAD (``ten-vad``; its bundled ``libten_vad.so`` needs Debian's ``libc++1``) on 16-bit PCM in
  hops of 256 samples, one stateful ``TenVad`` per recording, through its own Python API.

WebRTC, Silero and TEN VAD take mono 16 kHz float32 audio, either one array or an iterable of
blocks from ``pipeline.decode.stream`` (so they decode exactly like ``ocml segment``); each returns
one value per 10 ms feature frame of the pipeline. The names and signatures of ``ffmpeg_exe``,
``opencast_silencedetect``, ``webrtc_probabilities``, ``silero_probabilities``,
``ten_vad_probabilities`` and ``load_audio`` match ``benchmarks/accuracy.py``.

    python benchmarks/peers.py {webrtc,silero,tenvad} FILE [--mode 0-3]

decodes FILE through the pipeline, runs the peer and prints ``{"duration", "speech_seconds",
"seconds"}`` as JSON: what ``benchmarks/speed.py`` times as one process.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ocml.pipeline.features import PIPELINE_FEATURES  # noqa: E402

SR = 16000
CFG = PIPELINE_FEATURES
WEBRTC_FRAME = SR * 30 // 1000
SILERO_CHUNK = 512
SILERO_CONTEXT = 64
TEN_VAD_HOP = 256
"""TEN VAD's default hop: its other optimised hop, 160 samples (our 10 ms frames), ran as fast
and scored 0.002 F1 lower on dev, raw and with Silero's rules."""
Spans = list[tuple[float, float]]
Audio = np.ndarray | Iterable[np.ndarray]
_SILENCE = re.compile(r"silence_(start|end): (-?\d+(?:\.\d+)?)")


def load_audio(path: str | os.PathLike[str]) -> np.ndarray:
    """Mono float32 at 16 kHz through the pipeline's decoder (whole file: short files only)."""
    from ocml.pipeline.decode import stream

    return np.concatenate(list(stream(os.fspath(path), sample_rate=SR)))


def ffmpeg_exe() -> str:
    """An ffmpeg binary: the one on PATH, else the one bundled in the ``imageio-ffmpeg`` wheel."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def silencedetect_command(path: str | os.PathLike[str]) -> list[str]:
    """Opencast's silence detection command line for ``path``."""
    return [
        ffmpeg_exe(),
        "-nostdin",
        "-hide_banner",
        "-i",
        os.fspath(path),
        "-vn",
        "-filter:a",
        "silencedetect=noise=-40dB:duration=10",
        "-f",
        "null",
        "-",
    ]


def parse_silencedetect(log: str, duration: float) -> Spans:
    """Voice spans from a silencedetect log with Opencast's rules (voice ≥ 60 s, 2 s pre-roll).

    Also parses ``silence_end: 2`` without a decimal point, which Opencast's own parser misses.
    """
    silences, start = [], None
    for kind, value in _SILENCE.findall(log):
        if kind == "start":
            start = max(0.0, float(value))
        elif start is not None:
            silences.append((start, float(value)))
            start = None
    if start is not None:
        silences.append((start, duration))
    if not silences:
        return [(0.0, duration)]
    voice, cursor = [], 0.0
    for s, e in silences:
        if s - cursor >= 60.0:
            voice.append((max(0.0, cursor - 2.0) if cursor > 0 else 0.0, s))
        cursor = e
    if duration - cursor >= 60.0:
        voice.append((max(0.0, cursor - 2.0), duration))
    return voice


def opencast_silencedetect(path: str | os.PathLike[str], duration: float) -> Spans:
    """Run Opencast's silencedetect on ``path`` and return its voice spans."""
    log = subprocess.run(
        silencedetect_command(path), capture_output=True, text=True, check=True
    ).stderr
    return parse_silencedetect(log, duration)


def _pieces(audio: Audio, size: int) -> Iterator[np.ndarray]:
    """Consecutive ``size``-sample pieces of ``audio``, the last zero-padded (as OnnxWrapper does)."""
    blocks = [audio] if isinstance(audio, np.ndarray) else audio
    rest = np.zeros(0, np.float32)
    for block in blocks:
        data = np.concatenate([rest, np.asarray(block, np.float32)]) if len(rest) else block
        whole = len(data) // size * size
        yield from data[:whole].reshape(-1, size)
        rest = data[whole:]
    if len(rest):
        yield np.concatenate([rest, np.zeros(size - len(rest), np.float32)])


class _Counted:
    """Passes blocks through and counts their samples."""

    def __init__(self, audio: Audio) -> None:
        self.audio = [audio] if isinstance(audio, np.ndarray) else audio
        self.samples = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for block in self.audio:
            self.samples += len(block)
            yield block


def webrtc_probabilities(x: Audio, mode: int) -> np.ndarray:
    """WebRTC VAD decisions (aggressiveness ``mode``) on 30 ms frames, as 0/1 per feature frame."""
    import webrtcvad

    if mode not in (0, 1, 2, 3):
        raise ValueError(f"WebRTC VAD mode must be 0..3, got {mode!r}")
    vad = webrtcvad.Vad(mode)
    counted = _Counted(x)
    decisions = []
    for block in _blocks_int16(counted):
        raw = block.tobytes()
        step = 2 * WEBRTC_FRAME
        decisions.extend(
            vad.is_speech(raw[i : i + step], SR) for i in range(0, len(raw) - step + 1, step)
        )
    return _to_frames(np.array(decisions, np.float32), WEBRTC_FRAME, counted.samples)


def _blocks_int16(audio: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Blocks as 16-bit PCM in whole 30 ms frames (a trailing partial frame is not classified)."""
    rest = np.zeros(0, np.float32)
    for block in audio:
        data = np.concatenate([rest, block]) if len(rest) else block
        whole = len(data) // WEBRTC_FRAME * WEBRTC_FRAME
        yield _pcm16(data[:whole])
        rest = data[whole:]


def _pcm16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as 16-bit PCM (what WebRTC and TEN VAD take)."""
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


def silero_model_path() -> Path:
    """``silero_vad.onnx`` of the installed ``silero-vad`` package, found without importing it."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("silero-vad is not installed: pip install --no-deps silero-vad")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no silero_vad.onnx in the installed silero-vad package")
    return path


def silero_probabilities(x: Audio) -> np.ndarray:
    """Silero VAD speech probability per 512-sample chunk, as a value per feature frame."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(silero_model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros((1, SILERO_CONTEXT), np.float32)
    sr = np.array(SR, np.int64)
    counted = _Counted(x)
    out = []
    for piece in _pieces(counted, SILERO_CHUNK):
        chunk = np.concatenate([context, piece[None, :]], axis=1)
        prob, state = session.run(None, {"input": chunk, "state": state, "sr": sr})
        context = chunk[:, -SILERO_CONTEXT:]
        out.append(float(prob[0, 0]))
    return _to_frames(np.array(out, np.float32), SILERO_CHUNK, counted.samples)


def ten_vad_probabilities(x: Audio, *, hop: int = TEN_VAD_HOP) -> np.ndarray:
    """TEN VAD speech probability per ``hop`` samples, as a value per feature frame.

    Its own flag is this probability ≥ 0.5 (identical on every dev frame): thresholding the
    values at 0.5 gives the flag.
    """
    from ten_vad import TenVad

    vad = TenVad(hop_size=hop)
    counted = _Counted(x)
    out = [vad.process(_pcm16(piece))[0] for piece in _pieces(counted, hop)]
    return _to_frames(np.array(out, np.float32), hop, counted.samples)


def _to_frames(values: np.ndarray, step: int, n_samples: int) -> np.ndarray:
    """Per-chunk values (chunks of ``step`` samples) on the feature frame centres."""
    centres = np.arange(CFG.frames(n_samples)) * CFG.hop_length + CFG.win_length // 2
    idx = np.minimum(centres // step, max(0, len(values) - 1))
    return values[idx] if len(values) else np.zeros(len(centres), np.float32)


def run_on_file(peer: str, path: str, *, mode: int = 3) -> dict[str, float]:
    """Decode ``path`` through the pipeline, run ``peer`` on it, summarise what it found."""
    from ocml.pipeline.decode import stream

    started = time.perf_counter()
    counted = _Counted(stream(path, sample_rate=SR))
    if peer == "webrtc":
        probs = webrtc_probabilities(counted, mode)
    elif peer == "silero":
        probs = silero_probabilities(counted)
    elif peer == "tenvad":
        probs = ten_vad_probabilities(counted)
    else:
        raise ValueError(f"unknown peer {peer!r}: choose webrtc, silero or tenvad")
    return {
        "duration": counted.samples / SR,
        "speech_seconds": round(CFG.grid.seconds(int((probs >= 0.5).sum())), 2),
        "seconds": round(time.perf_counter() - started, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run one peer VAD on one file (decoded by the "
        "pipeline) and print a JSON summary."
    )
    parser.add_argument("peer", choices=("webrtc", "silero", "tenvad"))
    parser.add_argument("path")
    parser.add_argument(
        "--mode", type=int, default=3, choices=range(4), help="WebRTC aggressiveness (default 3)"
    )
    args = parser.parse_args(argv)
    print(json.dumps(run_on_file(args.peer, args.path, mode=args.mode)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
