"""`ocml-train evaluate`: score a model through the real pipeline against labelled recordings.

Scores are computed on the 10 ms frame grid of the features (frame i's centre at
i × 10 ms + 12.5 ms): precision, recall, F1, accuracy; detection error rate
((false alarm + miss) / reference speech, pyannote's ``DetectionErrorRate``) with no collar and
with a collar — as in pyannote, the collar is the total width removed around every reference
boundary, half before and half after; and the mean boundary error (each reference onset/offset
to the nearest predicted onset/offset, capped at ``BOUNDARY_CAP`` s).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ocml.models.datasets import Item, frame_labels, load_dataset
from ocml.pipeline.features import FeatureConfig

COLLAR = 0.25
BOUNDARY_CAP = 1.0
Echo = Callable[[str], None]


@dataclass(frozen=True)
class Counts:
    """Frame counts of one comparison; add them up to pool files (duration-weighted)."""

    tp: int
    fp: int
    fn: int
    tn: int
    fa_collar: int
    miss_collar: int
    ref_collar: int
    boundary_errors: tuple[float, ...]

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
            self.tn + other.tn,
            self.fa_collar + other.fa_collar,
            self.miss_collar + other.miss_collar,
            self.ref_collar + other.ref_collar,
            self.boundary_errors + other.boundary_errors,
        )

    def metrics(self) -> dict[str, float]:
        """Precision, recall, F1, accuracy, DER without/with collar, mean boundary error (s)."""
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        ref = tp + fn
        return {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "accuracy": round((tp + tn) / max(1, tp + fp + fn + tn), 4),
            "der": round((fp + fn) / ref, 4) if ref else float(fp > 0),
            "der_collar": round((self.fa_collar + self.miss_collar) / self.ref_collar, 4)
            if self.ref_collar
            else float(self.fa_collar > 0),
            "boundary_error": round(float(np.mean(self.boundary_errors)), 4)
            if self.boundary_errors
            else 0.0,
            "hours": round((tp + fp + fn + tn) / 360000, 4),
        }


def spans_to_frames(
    spans: Sequence[tuple[float, float]], n_frames: int, cfg: FeatureConfig
) -> np.ndarray:
    """1 where a frame's centre lies inside one of ``spans`` (seconds)."""
    return frame_labels([tuple(map(float, s)) for s in spans], n_frames, cfg)


def collar_mask(
    reference: Sequence[tuple[float, float]],
    n_frames: int,
    cfg: FeatureConfig,
    collar: float = COLLAR,
) -> np.ndarray:
    """True for frames scored under the collar rule: farther than collar/2 from every reference boundary."""
    from ocml.pipeline.features import frame_times

    t = frame_times(n_frames, cfg)
    keep = np.ones(n_frames, bool)
    half = collar / 2
    for b in itertools.chain.from_iterable(reference):
        keep[(t > b - half) & (t < b + half)] = False
    return keep


def boundary_errors(
    reference: Sequence[tuple[float, float]],
    hypothesis: Sequence[tuple[float, float]],
    cap: float = BOUNDARY_CAP,
) -> tuple[float, ...]:
    """For each reference onset/offset, the distance to the nearest hypothesis onset/offset (capped)."""
    out = []
    for kind in (0, 1):
        hyp = np.array([h[kind] for h in hypothesis], float)
        for r in reference:
            out.append(min(cap, float(np.abs(hyp - r[kind]).min())) if hyp.size else cap)
    return tuple(out)


def compare(
    reference: Sequence[tuple[float, float]],
    hypothesis: Sequence[tuple[float, float]],
    n_frames: int,
    cfg: FeatureConfig,
    *,
    collar: float = COLLAR,
) -> Counts:
    """Frame-level comparison of reference and hypothesis speech intervals (seconds)."""
    ref = spans_to_frames(reference, n_frames, cfg).astype(bool)
    hyp = spans_to_frames(hypothesis, n_frames, cfg).astype(bool)
    keep = collar_mask(reference, n_frames, cfg, collar)
    return Counts(
        tp=int(np.sum(ref & hyp)),
        fp=int(np.sum(~ref & hyp)),
        fn=int(np.sum(ref & ~hyp)),
        tn=int(np.sum(~ref & ~hyp)),
        fa_collar=int(np.sum(~ref & hyp & keep)),
        miss_collar=int(np.sum(ref & ~hyp & keep)),
        ref_collar=int(np.sum(ref & keep)),
        boundary_errors=boundary_errors(reference, hypothesis),
    )


@dataclass
class FileRun:
    """One file's pipeline output kept for scoring, tuning and plotting."""

    item: Item
    probabilities: np.ndarray
    duration: float
    segments: list[tuple[float, float]]


def run_pipeline(model: Any, items: list[Item], params: Any) -> list[FileRun]:
    """Segment every item with the real pipeline (decode → features → inference → post-processing)."""
    from ocml.pipeline.segment import segment_file

    runs = []
    for item in items:
        result = segment_file(item.audio, model, params)
        runs.append(
            FileRun(
                item,
                np.asarray(result.probabilities, np.float32),
                result.input.duration,
                [(s.start, s.end) for s in result.segments],
            )
        )
    return runs


def rescore(runs: list[FileRun], params: Any, cfg: FeatureConfig) -> list[Counts]:
    """Counts per file after re-binarising the stored probabilities with ``params``."""
    from ocml.pipeline.postprocess import Binarize

    binarize = Binarize(params)
    offset = cfg.win_length / 2 / cfg.sample_rate
    out = []
    for r in runs:
        segs = binarize(
            r.probabilities,
            duration=r.duration,
            hop=cfg.hop_length / cfg.sample_rate,
            offset=offset,
        )
        out.append(
            compare(
                r.item.labels.speech, [(s.start, s.end) for s in segs], len(r.probabilities), cfg
            )
        )
    return out


TUNE_GRID: dict[str, Sequence[float]] = {
    "threshold": (0.3, 0.4, 0.5, 0.6, 0.7),
    "neg_threshold_ratio": (0.6, 0.8, 1.0),
    "min_speech": (0.05, 0.15, 0.25),
    "min_silence": (0.1, 0.2, 0.25, 0.3, 0.35, 0.5),
    "pad": (0.0, 0.05, 0.1),
}


def tune_params(
    runs: list[FileRun], base: Any, cfg: FeatureConfig
) -> tuple[dict[str, float], dict[str, float]]:
    """Grid search of post-processing parameters maximising pooled F1 minus collar DER."""
    from ocml.pipeline.postprocess import SegmentParams

    best: tuple[float, dict[str, float], dict[str, float]] = (-np.inf, {}, {})
    keys = list(TUNE_GRID)
    for values in itertools.product(*(TUNE_GRID[k] for k in keys)):
        v = dict(zip(keys, values, strict=True))
        chosen = {
            "threshold": v["threshold"],
            "neg_threshold": round(v["threshold"] * v["neg_threshold_ratio"], 3),
            "min_speech": v["min_speech"],
            "min_silence": v["min_silence"],
            "pad_before": v["pad"],
            "pad_after": v["pad"],
        }
        params = SegmentParams.from_mapping(chosen, base=base)
        m = sum(rescore(runs, params, cfg), start=_ZERO).metrics()
        score = m["f1"] - m["der_collar"]
        if score > best[0]:
            best = (score, chosen, m)
    return best[1], best[2]


_ZERO = Counts(0, 0, 0, 0, 0, 0, 0, ())


def resolve_model_path(path: Path) -> Path:
    """A SavedModel directory, or a training run's directory holding ``savedmodel/``."""
    return path / "savedmodel" if (path / "savedmodel" / "saved_model.pb").is_file() else path


def evaluate_dir(
    model_path: Path,
    data: Path,
    *,
    overrides: Mapping[str, float] | None = None,
    plots: Path | None = None,
    tune: bool = False,
    echo: Echo = print,
) -> dict[str, Any]:
    """Evaluate a model on a labelled folder; print a table and return the full report."""
    from ocml.pipeline.model import load_model
    from ocml.pipeline.segment import resolve_params

    model = load_model(resolve_model_path(model_path))
    params = resolve_params(model, overrides=dict(overrides or {}))
    items = load_dataset(data)
    runs = run_pipeline(model, items, params)
    cfg = model.features
    counts = [compare(r.item.labels.speech, r.segments, len(r.probabilities), cfg) for r in runs]
    report: dict[str, Any] = {
        "model": {"name": model.name, "version": model.version, "architecture": model.architecture},
        "data": str(data),
        "params": params.to_dict(),
        "collar": COLLAR,
        "files": {r.item.audio.name: c.metrics() for r, c in zip(runs, counts, strict=True)},
        "overall": sum(counts, start=_ZERO).metrics(),
    }
    echo(format_table(report))
    report["frames_per_second"] = model_speed(model)
    echo(
        f"model speed: {report['frames_per_second']:,.0f} frames/s "
        f"({report['frames_per_second'] / 100:,.0f}x real time) through Inference, "
        f"{model.inference['batch_size']} x {model.inference['chunk_frames']}-frame chunks "
        f"+ {model.context_frames} frames of context each side"
    )
    if tune:
        tuned, m = tune_params(runs, params, cfg)
        report["tuned"] = {"params": tuned, "overall": m}
        echo(f"tuned post-processing: {tuned}")
        echo(
            f"  tuned overall: F1 {m['f1']:.4f}  DER {m['der']:.4f}  DER(collar) {m['der_collar']:.4f}"
        )
    if plots is not None:
        from ocml.models.plots import write_plots

        for path in write_plots(runs, cfg, plots):
            echo(f"wrote {path}")
    return report


def model_speed(model: Any, *, frames: int = 60_000, seconds: float = 3.0) -> float:
    """Recording frames per second through ``Inference`` (the model's chunking, batching and context
    overlap; the threads TensorFlow was configured with), on 10 minutes of random log-mels."""
    import time

    from ocml.pipeline.inference import Inference

    x = np.random.default_rng(0).normal(-6, 3, (frames, model.features.n_mels)).astype(np.float32)
    infer = Inference(model)
    sum(len(p) for p in infer([x[: 2 * model.inference["chunk_frames"]]]))
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sum(len(p) for p in infer([x]))
        runs += 1
    return round(frames * runs / (time.perf_counter() - start), 1)


def format_table(report: Mapping[str, Any]) -> str:
    """The per-file and overall metrics as an aligned text table."""
    cols = ("precision", "recall", "f1", "accuracy", "der", "der_collar", "boundary_error")
    head = f"{'file':<24}" + "".join(f"{c:>15}" for c in cols)
    rows = [
        f"{name:<24}" + "".join(f"{m[c]:>15.4f}" for c in cols)
        for name, m in report["files"].items()
    ]
    rows.append(f"{'overall':<24}" + "".join(f"{report['overall'][c]:>15.4f}" for c in cols))
    return "\n".join([head, *rows])
