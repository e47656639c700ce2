"""How wide a silence the ``trim`` preset should bridge (``trim_bridge``), measured.

The trim keeps one segment: the lecture's sustained core (``trim_min_speech`` within
``trim_window``), extended outwards across speech separated from it by silences shorter than
``trim_bridge``. Too narrow a bridge cuts a lecturer's sparse opening and closing words; too wide a
one keeps what lies outside the lecture. This script makes lecture-like recordings in four kinds
(``tests.media.speechlike`` voices over room noise, every kind with a sparse opening and closing):

- ``sparse``: only the lecture — 4 short opening phrases (0.5–1.0 s each) 1–8 s apart, 2–6 s
  before the sustained core (120 s of 1–3 s phrases), 3 closing phrases 1.5–6 s apart after it;
- ``music``: a 30 s music intro (``tests.media.jingle``) ending 3–8 s before the first word;
- ``cough``: a lone 0.4–0.6 s voice-like burst 60 s before the first word;
- ``chatter``: 15–30 s after the last word, 40 s of chatter at half the level (0.4–1.0 s phrases
  2–5 s apart, too sparse to be sustained speech itself);

runs the model once per recording (``segment_file``, ONNX Runtime) and then the trim preset with
each bridge on its probabilities, and counts the lecture speech cut and what was kept outside the
lecture and its 2 s of padding.

Run:  python benchmarks/trim_bridge.py [--seeds 8] [--model PATH] [--markdown OUT.md]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ocml.pipeline.model import load_model  # noqa: E402
from ocml.pipeline.postprocess import Binarize, preset  # noqa: E402
from ocml.pipeline.segment import segment_file  # noqa: E402
from tests.media import jingle, speechlike, write_wav  # noqa: E402

SR = 16000
KINDS = ("sparse", "music", "cough", "chatter")
BRIDGES = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0, 60.0)
PAD = 2.0
Spans = list[tuple[float, float]]


@dataclass(frozen=True)
class Recording:
    """A made recording: its lecture's speech, the other voice-like sound, where music plays."""

    path: Path
    duration: float
    lecture: Spans
    outside: Spans
    music: tuple[float, float] | None


def phrases(rng: np.random.Generator, t: float, n: int, length: tuple, gap: tuple) -> Spans:
    """``n`` phrases from ``t`` on, lengths and the gaps between them drawn uniformly."""
    out = []
    for _ in range(n):
        end = t + rng.uniform(*length)
        out.append((round(t, 3), round(end, 3)))
        t = end + rng.uniform(*gap)
    return out


def lecture(rng: np.random.Generator, start: float) -> Spans:
    """A sparse opening, a 120 s sustained core and a sparse closing, from ``start``."""
    opening = phrases(rng, start, 4, (0.5, 1.0), (1.0, 8.0))
    t = opening[-1][1] + rng.uniform(2.0, 6.0)
    core = []
    while t < opening[-1][1] + 120:
        core += phrases(rng, t, 1, (1.0, 3.0), (0, 0))
        t = core[-1][1] + rng.uniform(0.3, 1.0)
    closing = phrases(rng, core[-1][1] + rng.uniform(2.0, 6.0), 3, (0.4, 1.0), (1.5, 6.0))
    return opening + core + closing


def make(kind: str, seed: int, folder: Path) -> Recording:
    """One recording of ``kind`` (see the module's docstring)."""
    rng = np.random.default_rng([KINDS.index(kind), seed])
    lead = {"sparse": 60.0, "music": 50.0 + rng.uniform(3, 8), "cough": 70.0, "chatter": 60.0}
    speech = lecture(rng, lead[kind])
    outside: Spans = []
    music = None
    end = speech[-1][1] + 60.0
    if kind == "cough":
        t = speech[0][0] - 60.0
        outside = [(t, t + rng.uniform(0.4, 0.6))]
    if kind == "chatter":
        outside = phrases(rng, speech[-1][1] + rng.uniform(15, 30), 12, (0.4, 1.0), (2.0, 5.0))
        outside = [s for s in outside if s[1] < outside[0][0] + 40]
        end = outside[-1][1] + 30.0
    loud = outside if kind == "cough" else []
    samples = speechlike(SR, end, speech + loud, seed=seed, noise_db=-55)
    if kind == "chatter":
        samples += 0.5 * speechlike(SR, end, outside, seed=seed + 100, noise_db=-200)
    if kind == "music":
        music = (20.0, 50.0)
        samples[int(20 * SR) : int(50 * SR)] += jingle(SR, 30.0, seed=seed)
    path = write_wav(folder / f"{kind}-{seed}.wav", samples, SR)
    return Recording(path, end, speech, outside, music)


def overlap(kept: Spans, spans: Spans) -> float:
    """Seconds of ``spans`` inside ``kept``."""
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e in spans for a, b in kept)


def score(rec: Recording, kept: Spans) -> dict[str, float]:
    """Lecture speech cut, and what was kept outside the lecture with its padding."""
    lecture_span = [(rec.lecture[0][0] - PAD, rec.lecture[-1][1] + PAD)]
    total = sum(e - s for s, e in kept)
    events = rec.outside + ([rec.music] if rec.music else [])
    return {
        "cut": sum(e - s for s, e in rec.lecture) - overlap(kept, rec.lecture),
        "extra": total - overlap(kept, lecture_span),
        "event_kept": float(overlap(kept, events) > 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    model = load_model(args.model, runtime="onnx")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for kind in KINDS:
            for seed in range(args.seeds):
                rec = make(kind, seed, Path(tmp))
                probs = segment_file(rec.path, model, preset("trim")).probabilities
                runs.append((kind, rec, probs))
        for bridge in BRIDGES:
            params = replace(preset("trim"), trim_bridge=bridge)
            scores = {kind: [] for kind in KINDS}
            for kind, rec, probs in runs:
                segments = Binarize(params)(probs, duration=rec.duration)
                scores[kind].append(score(rec, [(s.start, s.end) for s in segments]))
            rows.append((bridge, scores))
    lines = [
        "# trim_bridge: lecture words cut against sound kept outside the lecture",
        "",
        f"`python benchmarks/trim_bridge.py --seeds {args.seeds}` with the shipped model "
        "(`benchmarks/trim_bridge.py` describes the recordings).",
        "",
        f"{args.seeds} recordings of each kind. Losing words: recordings with more than 0.2 s of "
        "lecture speech cut (sparse / music / cough / chatter); kept: recordings whose kept "
        "segment reaches the music, the cough or the chatter; extra: seconds kept outside the "
        "lecture and its 2 s of padding, all recordings.",
        "",
        "| trim_bridge | losing words | lecture speech cut | music kept | cough kept "
        "| chatter kept | extra |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for bridge, scores in rows:
        losing = " / ".join(str(sum(s["cut"] > 0.2 for s in scores[k])) for k in KINDS)
        cut = sum(s["cut"] for k in KINDS for s in scores[k])
        kept = [f"{sum(s['event_kept'] for s in scores[k]):.0f}" for k in KINDS[1:]]
        extra = sum(s["extra"] for k in KINDS for s in scores[k])
        lines.append(
            f"| {bridge:g} s | {losing} | {cut:.1f} s | {' | '.join(kept)} | {extra:.1f} s |"
        )
    lines += [
        "",
        "trim_bridge 0 keeps the sustained core only (the trim before the bridge). Music counts as "
        "kept only where the model marks some of it as speech next to the lecture.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
