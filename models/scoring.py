"""Frame-level scoring of speech spans against reference labels, shared by evaluation,
calibration and the metrics by recording condition.

Scores are computed on the 10 ms frame grid of the features (frame i's centre at
i × 10 ms + 12.5 ms): precision, recall, F1, accuracy; detection error rate
((false alarm + miss) / reference speech, pyannote's ``DetectionErrorRate``) with no collar and
with a collar — as in pyannote, the collar is the total width removed around every reference
boundary, half before and half after; and the mean boundary error (each reference onset/offset
to the nearest predicted onset/offset, capped at ``BOUNDARY_CAP`` s).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ocml.models.datasets import Item, frame_labels
from ocml.pipeline.features import PIPELINE_FEATURES, FeatureConfig
from ocml.pipeline.postprocess import Binarize, SegmentParams

COLLAR = 0.25
BOUNDARY_CAP = 1.0


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
            "hours": round(PIPELINE_FEATURES.grid.seconds(tp + fp + fn + tn) / 3600, 4),
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
    t = cfg.grid.times(n_frames)
    bounds = np.sort(np.fromiter(itertools.chain.from_iterable(reference), float))
    if bounds.size == 0:
        return np.ones(n_frames, bool)
    half = collar / 2
    right = np.minimum(np.searchsorted(bounds, t), bounds.size - 1)
    left = np.maximum(right - 1, 0)
    near = np.zeros(n_frames, bool)
    for b in (bounds[left], bounds[right]):
        near |= (t > b - half) & (t < b + half)
    return ~near


def boundary_errors(
    reference: Sequence[tuple[float, float]],
    hypothesis: Sequence[tuple[float, float]],
    cap: float = BOUNDARY_CAP,
) -> tuple[float, ...]:
    """For each reference onset/offset, the distance to the nearest hypothesis onset/offset (capped)."""
    ref = np.asarray(reference, float).reshape(-1, 2)
    hyp = np.asarray(hypothesis, float).reshape(-1, 2)
    out: list[float] = []
    for kind in (0, 1):
        if not hyp.size:
            out.extend([cap] * len(ref))
            continue
        edges = np.sort(hyp[:, kind])
        right = np.minimum(np.searchsorted(edges, ref[:, kind]), edges.size - 1)
        left = np.maximum(right - 1, 0)
        dist = np.minimum(np.abs(edges[left] - ref[:, kind]), np.abs(edges[right] - ref[:, kind]))
        out.extend(np.minimum(cap, dist).tolist())
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
    return count_frames(
        spans_to_frames(reference, n_frames, cfg).astype(bool),
        spans_to_frames(hypothesis, n_frames, cfg).astype(bool),
        collar_mask(reference, n_frames, cfg, collar),
        boundary_errors(reference, hypothesis),
    )


def count_frames(
    ref: np.ndarray,
    hyp: np.ndarray,
    keep: np.ndarray,
    boundaries: tuple[float, ...] = (),
    *,
    within: np.ndarray | None = None,
) -> Counts:
    """``Counts`` of boolean reference and hypothesis frames; ``keep`` marks frames outside the
    collar; ``within`` (optional) restricts the count to a subset of frames."""
    if within is not None:
        ref, hyp, keep = ref[within], hyp[within], keep[within]
    return Counts(
        tp=int(np.count_nonzero(ref & hyp)),
        fp=int(np.count_nonzero(~ref & hyp)),
        fn=int(np.count_nonzero(ref & ~hyp)),
        tn=int(np.count_nonzero(~ref & ~hyp)),
        fa_collar=int(np.count_nonzero(~ref & hyp & keep)),
        miss_collar=int(np.count_nonzero(ref & ~hyp & keep)),
        ref_collar=int(np.count_nonzero(ref & keep)),
        boundary_errors=boundaries,
    )


Spans = list[tuple[float, float]]


@dataclass
class FileRun:
    """One file's pipeline output kept for scoring, tuning and plotting.

    ``dataset`` names the folder the file came from; the reference frames and the collar mask
    are computed once and reused by every re-scoring.
    """

    item: Item
    probabilities: np.ndarray
    duration: float
    segments: list[tuple[float, float]]
    dataset: str = ""
    cfg: FeatureConfig = field(default_factory=FeatureConfig)
    energy: np.ndarray | None = None

    @cached_property
    def reference(self) -> np.ndarray:
        """Reference speech per frame (bool)."""
        return spans_to_frames(self.item.labels.speech, len(self.probabilities), self.cfg) > 0

    @cached_property
    def keep(self) -> np.ndarray:
        """Frames scored under the collar rule."""
        return collar_mask(self.item.labels.speech, len(self.probabilities), self.cfg)

    @property
    def key(self) -> str:
        """``set/file`` name of the file in a report."""
        return f"{self.dataset}/{self.item.audio.name}"

    @cached_property
    def centres(self) -> np.ndarray:
        """Centre time of each frame (seconds)."""
        return self.cfg.grid.times(len(self.probabilities))

    def hypothesis(self, spans: Sequence[tuple[float, float]]) -> np.ndarray:
        """Hypothesis speech per frame (bool) for sorted, disjoint ``spans`` in seconds: frames
        whose centre lies in a span, as ``spans_to_frames``, found by a search per span edge."""
        edges = np.searchsorted(self.centres, np.asarray(spans, float).reshape(-1, 2))
        steps = np.zeros(len(self.centres) + 1, np.int32)
        np.add.at(steps, edges[:, 0], 1)
        np.add.at(steps, edges[:, 1], -1)
        return np.cumsum(steps[:-1]) > 0

    def score(self, spans: Sequence[tuple[float, float]]) -> Counts:
        """``Counts`` of ``spans`` against this file's reference."""
        return count_frames(
            self.reference,
            self.hypothesis(spans),
            self.keep,
            boundary_errors(self.item.labels.speech, spans),
        )

    def binarize(self, params: SegmentParams, probabilities: np.ndarray | None = None) -> Spans:
        """Speech spans of this file's (or the given) probabilities post-processed with ``params``."""
        segs = Binarize(params)(
            self.probabilities if probabilities is None else probabilities,
            duration=self.duration,
            grid=self.cfg.grid,
            energy=self.energy,
        )
        return [(s.start, s.end) for s in segs]


def pool(counts: Iterable[Counts]) -> Counts:
    """The sum of ``counts`` (all zero for none): metrics over all their frames together."""
    return sum(counts, start=Counts(0, 0, 0, 0, 0, 0, 0, ()))
