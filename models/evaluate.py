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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
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
            "hours": round(FeatureConfig().grid.seconds(tp + fp + fn + tn) / 3600, 4),
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

    def binarize(self, params: Any, probabilities: np.ndarray | None = None) -> Spans:
        """Speech spans of this file's (or the given) probabilities post-processed with ``params``."""
        from ocml.pipeline.postprocess import Binarize

        segs = Binarize(params)(
            self.probabilities if probabilities is None else probabilities,
            duration=self.duration,
            grid=self.cfg.grid,
            energy=self.energy,
        )
        return [(s.start, s.end) for s in segs]


@dataclass(frozen=True)
class DataSet:
    """A labelled folder under the name it is reported by (the folder's name, made unique)."""

    name: str
    path: Path
    items: list[Item]


def load_data_sets(folders: Sequence[Path]) -> list[DataSet]:
    """The labelled recordings of each folder; names are the folders' names, made unique."""
    if not folders:
        raise ValueError("no data folders given: name at least one labelled folder")
    resolved = [Path(f).resolve() for f in folders]
    for i, path in enumerate(resolved):
        if path in resolved[:i]:
            raise ValueError(f"data folder {str(folders[i])!r} is given twice")
    names: list[str] = []
    for path in resolved:
        name, n = path.name, 2
        while name in names:
            name, n = f"{path.name}-{n}", n + 1
        names.append(name)
    return [
        DataSet(name, Path(folder), load_dataset(folder))
        for name, folder in zip(names, folders, strict=True)
    ]


def run_pipeline(
    model: Any, items: list[Item], params: Any, *, dataset: str = "", echo: Echo | None = None
) -> list[FileRun]:
    """Segment every item with the real pipeline (decode → features → inference → post-processing)."""
    from ocml.pipeline.segment import segment_file

    runs = []
    for item in items:
        result = segment_file(item.audio, model, params, keep_energy=True)
        runs.append(
            FileRun(
                item,
                np.asarray(result.probabilities, np.float32),
                result.input.duration,
                [(s.start, s.end) for s in result.segments],
                dataset=dataset,
                cfg=model.features,
                energy=result.energy,
            )
        )
        if echo is not None:
            echo(f"  {dataset}/{item.audio.name}: {result.input.duration:.1f} s")
    return runs


def rescore(runs: list[FileRun], params: Any) -> list[Counts]:
    """Counts per file after re-binarising the stored probabilities with ``params``."""
    return [r.score(r.binarize(params)) for r in runs]


def section(runs: list[FileRun], counts: Sequence[Counts]) -> dict[str, Any]:
    """Per set (files and overall) and pooled metrics of ``counts`` (one per run)."""
    sets: dict[str, Any] = {}
    for r, c in zip(runs, counts, strict=True):
        entry = sets.setdefault(r.dataset, {"files": {}, "counts": pool([])})
        entry["files"][r.item.audio.name] = c.metrics()
        entry["counts"] = entry["counts"] + c
    return {
        "sets": {
            name: {"files": e["files"], "overall": e["counts"].metrics()}
            for name, e in sets.items()
        },
        "overall": pool(counts).metrics(),
    }


TUNE_GRID: dict[str, Sequence[float]] = {
    "threshold": (0.02, 0.05, *(round(0.1 + 0.05 * i, 2) for i in range(17)), 0.95, 0.98),
    "neg_threshold_ratio": (0.6, 0.8, 1.0),
    "min_speech": (0.05, 0.15, 0.25),
    "min_silence": (0.1, 0.2, 0.25, 0.3, 0.35, 0.5),
    "pad": (0.0, 0.05, 0.1),
}
SNAP_GRID: dict[str, Sequence[float]] = {
    "snap_db": (20.0, 25.0, 30.0),
    "snap_max": (0.03, 0.05, 0.1),
}
TUNE_OBJECTIVE = "pooled frame F1 minus pooled DER (0.25 s collar)"


def tune_params(
    runs: list[FileRun], base: Any, *, grid: Mapping[str, Sequence[float]] = TUNE_GRID
) -> tuple[dict[str, float], dict[str, float]]:
    """Grid search of post-processing parameters maximising pooled F1 minus collar DER.

    Pooled over every frame of every run (all folders together); the model's probabilities are
    the ones stored in ``runs``, so each candidate only re-runs post-processing and counting.
    ``grid`` holds the candidate values of each key of ``TUNE_GRID``; the first best wins. Then,
    when every run kept its frames' energy, edge snapping (``SNAP_GRID``) is tried on the best
    and kept only if it scores higher.
    """
    from ocml.pipeline.postprocess import SegmentParams

    if set(grid) != set(TUNE_GRID) or not all(grid[k] for k in TUNE_GRID):
        raise ValueError(f"grid must give values for each of {list(TUNE_GRID)}, got {dict(grid)!r}")

    def scored(chosen: dict[str, float]) -> tuple[float, dict[str, float], dict[str, float]]:
        m = pool(rescore(runs, SegmentParams.from_mapping(chosen, base=base))).metrics()
        return m["f1"] - m["der_collar"], chosen, m

    best: tuple[float, dict[str, float], dict[str, float]] = (-np.inf, {}, {})
    keys = list(TUNE_GRID)
    for values in itertools.product(*(grid[k] for k in keys)):
        v = dict(zip(keys, values, strict=True))
        chosen = {
            "threshold": v["threshold"],
            "neg_threshold": round(v["threshold"] * v["neg_threshold_ratio"], 3),
            "min_speech": v["min_speech"],
            "min_silence": v["min_silence"],
            "pad_before": v["pad"],
            "pad_after": v["pad"],
        }
        best = max(best, scored(chosen), key=lambda b: b[0])
    if all(r.energy is not None for r in runs):
        for db, most in itertools.product(*SNAP_GRID.values()):
            best = max(
                best, scored({**best[1], "snap_db": db, "snap_max": most}), key=lambda b: b[0]
            )
    return best[1], best[2]


def pool(counts: Iterable[Counts]) -> Counts:
    """The sum of ``counts`` (all zero for none): metrics over all their frames together."""
    return sum(counts, start=Counts(0, 0, 0, 0, 0, 0, 0, ()))


def run_data_sets(
    model: Any, sets: Sequence[DataSet], params: Any, *, echo: Echo | None = None
) -> list[FileRun]:
    """``run_pipeline`` over every folder: the model's probabilities, computed once per file."""
    return [
        r for ds in sets for r in run_pipeline(model, ds.items, params, dataset=ds.name, echo=echo)
    ]


def evaluate_dirs(
    model_path: Path,
    data: Sequence[Path],
    *,
    overrides: Mapping[str, float] | None = None,
    plots: Path | None = None,
    tune: bool = False,
    by_condition: bool = False,
    echo: Echo = print,
) -> dict[str, Any]:
    """Evaluate a model on labelled folders, each and pooled; print tables, return the report.

    With ``tune`` the post-processing is tuned on the pool and every folder is scored again with
    the tuned values. Frame metrics by recording condition (``models.conditions``) are in the
    report whenever a folder has a ``manifest.json``; ``by_condition`` also prints them.
    """
    from ocml.models.conditions import by_condition as condition_table
    from ocml.models.conditions import format_conditions, load_conditions
    from ocml.pipeline.model import load_model
    from ocml.pipeline.segment import resolve_params

    model = load_model(model_path)
    params = resolve_params(model, overrides=dict(overrides or {}))
    sets = load_data_sets(data)
    runs = run_data_sets(model, sets, params, echo=echo)
    conditions = load_conditions(sets)
    report: dict[str, Any] = {
        "model": {"name": model.name, "version": model.version, "architecture": model.architecture},
        "data": "+".join(ds.name for ds in sets),
        "folders": {ds.name: str(ds.path) for ds in sets},
        "params": params.to_dict(),
        "collar": COLLAR,
        **section(runs, [r.score(r.segments) for r in runs]),
    }
    report["worst_file"] = worst_file(report)
    echo(format_table(report))
    if conditions:
        report["by_condition"] = condition_table(runs, [r.segments for r in runs], conditions)
        if by_condition:
            echo(format_conditions(report["by_condition"]))
    elif by_condition:
        echo("no manifest.json in the data folders: no metrics by condition")
    report["frames_per_second"] = model_speed(model)
    echo(
        f"model speed: {report['frames_per_second']:,.0f} frames/s "
        f"({model.features.grid.seconds(report['frames_per_second']):,.0f}x real time) "
        "through Inference, "
        f"{model.inference['batch_size']} x {model.inference['chunk_frames']}-frame chunks "
        f"+ {model.context_frames} frames of context each side"
    )
    shown = params
    if tune:
        from ocml.pipeline.postprocess import SegmentParams

        tuned, _ = tune_params(runs, params)
        shown = SegmentParams.from_mapping(tuned, base=params)
        spans = [r.binarize(shown) for r in runs]
        report["tuned"] = {
            "objective": TUNE_OBJECTIVE,
            "params": tuned,
            **section(runs, [r.score(s) for r, s in zip(runs, spans, strict=True)]),
        }
        report["tuned"]["worst_file"] = worst_file(report["tuned"])
        echo(f"\ntuned on the pool ({report['data']}, {TUNE_OBJECTIVE}): {tuned}")
        echo(format_table(report["tuned"]))
        if conditions:
            report["tuned"]["by_condition"] = condition_table(runs, spans, conditions)
            if by_condition:
                echo(format_conditions(report["tuned"]["by_condition"]))
    if plots is not None:
        from ocml.models.plots import write_plots

        for path in write_plots(runs, model.features, plots, params=shown):
            echo(f"wrote {path}")
    return report


def worst_file(part: Mapping[str, Any]) -> str:
    """``set/file`` with the lowest F1 in a report section (ties: the higher collar DER)."""
    return min(
        (m["f1"], -m["der_collar"], f"{name}/{file}")
        for name, s in part["sets"].items()
        for file, m in s["files"].items()
    )[2]


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


TABLE_COLUMNS = ("precision", "recall", "f1", "accuracy", "der", "der_collar", "boundary_error")


def format_table(part: Mapping[str, Any]) -> str:
    """Per-file, per-set and pooled metrics of a report section as an aligned text table."""
    cols = TABLE_COLUMNS
    width = max(24, *(len(f"{n}/{f}") + 2 for n, s in part["sets"].items() for f in s["files"]))
    head = f"{'file':<{width}}" + "".join(f"{c:>15}" for c in cols)

    def row(label: str, m: Mapping[str, float]) -> str:
        return f"{label:<{width}}" + "".join(f"{m[c]:>15.4f}" for c in cols)

    rows = [head]
    for name, s in part["sets"].items():
        rows.extend(row(f"{name}/{file}", m) for file, m in s["files"].items())
        rows.append(row(f"{name} overall", s["overall"]))
    if len(part["sets"]) > 1:
        rows.append(row("pool overall", part["overall"]))
    return "\n".join(rows)
