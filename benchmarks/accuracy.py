"""Accuracy of our model against the peers on the same labelled recordings, in one table.

Peers: FFmpeg ``silencedetect`` with Opencast's shipped settings (−40 dB, 10 s silences, voice
under 60 s dropped, 2 s kept before speech), WebRTC VAD modes 0–3 (``webrtcvad-wheels``) and
Silero VAD (its ONNX model from the installed ``silero-vad`` package, run with onnxruntime the way
its ``OnnxWrapper`` does: 512-sample chunks at 16 kHz with 64 samples of context and a state).
Every system is scored by ``models.evaluate.compare`` on the same 10 ms frame grid; VAD decisions
are also shown after our default post-processing (hysteresis, minimum durations, padding).

Run:  python benchmarks/accuracy.py [DATA] [--model PATH] [--json out.json]
Needs: ``pip install webrtcvad-wheels onnxruntime imageio-ffmpeg`` (or an ``ffmpeg`` on PATH)
and ``silero-vad`` installed with ``--no-deps`` (its torch code is never imported).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.peers import (
    CFG,
    SR,
    Spans,
    load_audio,
    opencast_silencedetect,  # noqa: E402
    silero_probabilities,
    webrtc_probabilities,
)
from ocml.models.datasets import Item, load_dataset  # noqa: E402
from ocml.models.evaluate import Counts, compare  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"


def raw_spans(probs: np.ndarray, threshold: float = 0.5) -> Spans:
    """Frames at or above ``threshold`` as intervals (each frame covers its 10 ms)."""
    mask = np.concatenate([[0], (probs >= threshold).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(mask))
    hop, off = CFG.hop_length / SR, CFG.win_length / 2 / SR - CFG.hop_length / SR / 2
    return [(off + a * hop, off + b * hop) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def smoothed_spans(probs: np.ndarray, duration: float) -> Spans:
    """Our default post-processing applied to a peer's probabilities."""
    from ocml.pipeline.postprocess import Binarize, preset

    segs = Binarize(preset("default"))(probs, duration=duration, offset=CFG.win_length / 2 / SR)
    return [(s.start, s.end) for s in segs]


def score(items: list[Item], system: Callable[[Item], Spans]) -> tuple[dict[str, float], float]:
    """Pooled metrics of ``system`` over ``items`` and its seconds of processing."""
    total = Counts(0, 0, 0, 0, 0, 0, 0, ())
    seconds = 0.0
    for item in items:
        t = time.perf_counter()
        hyp = system(item)
        seconds += time.perf_counter() - t
        n = CFG.frames(int(round(_duration(item) * SR)))
        total = total + compare(item.labels.speech, hyp, n, CFG)
    return total.metrics(), seconds


_DURATIONS: dict[Path, float] = {}


def _duration(item: Item) -> float:
    if item.audio not in _DURATIONS:
        from ocml.pipeline.decode import probe

        _DURATIONS[item.audio] = probe(str(item.audio)).duration
    return _DURATIONS[item.audio]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "data", nargs="?", type=Path, default=DEV, help="labelled folder (default: shared dev set)"
    )
    parser.add_argument("--model", help="SavedModel (default: the shipped default model)")
    parser.add_argument("--json", type=Path, help="also write the table as JSON")
    args = parser.parse_args(argv)

    from ocml.pipeline.model import configure_tensorflow, load_model
    from ocml.pipeline.postprocess import preset
    from ocml.pipeline.segment import resolve_params, segment_file

    configure_tensorflow(1)
    items = load_dataset(args.data)
    audio_seconds = sum(_duration(i) for i in items)
    cache: dict[Path, np.ndarray] = {}

    def audio(item: Item) -> np.ndarray:
        if item.audio not in cache:
            cache[item.audio] = load_audio(item.audio)
        return cache[item.audio]

    model = load_model(args.model)
    params = resolve_params(model)
    systems: dict[str, Callable[[Item], Spans]] = {
        f"opencast-ml {model.name} {model.version} ({model.architecture})": lambda i: [
            (s.start, s.end) for s in segment_file(i.audio, model, params).segments
        ],
        "ffmpeg silencedetect (Opencast defaults)": lambda i: opencast_silencedetect(
            i.audio, _duration(i)
        ),
    }
    for mode in range(4):
        systems[f"WebRTC VAD mode {mode}"] = lambda i, m=mode: raw_spans(
            webrtc_probabilities(audio(i), m)
        )
        systems[f"WebRTC VAD mode {mode} + our post-processing"] = lambda i, m=mode: smoothed_spans(
            webrtc_probabilities(audio(i), m), _duration(i)
        )
    systems["Silero VAD (ONNX), threshold 0.5"] = lambda i: raw_spans(
        silero_probabilities(audio(i))
    )
    systems["Silero VAD (ONNX) + our post-processing"] = lambda i: smoothed_spans(
        silero_probabilities(audio(i)), _duration(i)
    )
    for item in items:  # decode outside the timed region for the peers that take samples
        audio(item)
    rows = []
    for name, system in systems.items():
        m, seconds = score(items, system)
        rows.append(
            {"system": name, **m, "x_realtime": round(audio_seconds / max(seconds, 1e-9), 1)}
        )
    print(
        f"{len(items)} files, {audio_seconds / 60:.1f} min of {args.data}; frame metrics on 10 ms frames, "
        f"DER collar {0.25} s (pyannote convention: ±0.125 s); default post-processing "
        f"{preset('default').to_dict()}"
    )
    cols = ("f1", "precision", "recall", "der", "der_collar", "boundary_error", "x_realtime")
    print(f"| {'system':<52} | " + " | ".join(f"{c:>14}" for c in cols) + " |")
    print(f"|{'-' * 54}|" + "|".join("-" * 16 for _ in cols) + "|")
    for r in rows:
        print(f"| {r['system']:<52} | " + " | ".join(f"{r[c]:>14}" for c in cols) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
