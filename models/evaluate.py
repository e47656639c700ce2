"""`ocml-train evaluate`: score a model through the real pipeline against labelled recordings.

Each folder and the pool of all of them are scored with ``models.scoring`` (frame metrics and
their definitions), optionally after tuning the post-processing on the pool, and broken down by
recording condition with ``models.conditions``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ocml.models.conditions import by_condition as condition_table
from ocml.models.conditions import format_conditions, load_conditions
from ocml.models.datasets import Item, load_dataset
from ocml.models.errors import TrainingInputError
from ocml.models.scoring import COLLAR, Counts, FileRun, pool
from ocml.pipeline.model import Model
from ocml.pipeline.postprocess import SegmentParams

Echo = Callable[[str], None]


@dataclass(frozen=True)
class DataSet:
    """A labelled folder under the name it is reported by (the folder's name, made unique)."""

    name: str
    path: Path
    items: list[Item]


def load_data_sets(folders: Sequence[Path]) -> list[DataSet]:
    """The labelled recordings of each folder; names are the folders' names, made unique."""
    if not folders:
        raise TrainingInputError("no data folders given: name at least one labelled folder")
    resolved = [Path(f).resolve() for f in folders]
    for i, path in enumerate(resolved):
        if path in resolved[:i]:
            raise TrainingInputError(f"data folder {str(folders[i])!r} is given twice")
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
    model: Model,
    items: list[Item],
    params: SegmentParams,
    *,
    dataset: str = "",
    echo: Echo | None = None,
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


def rescore(runs: list[FileRun], params: SegmentParams) -> list[Counts]:
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
    if set(grid) != set(TUNE_GRID) or not all(grid[k] for k in TUNE_GRID):
        raise TrainingInputError(
            f"grid must give values for each of {list(TUNE_GRID)}, got {dict(grid)!r}"
        )

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


def run_data_sets(
    model: Model, sets: Sequence[DataSet], params: SegmentParams, *, echo: Echo | None = None
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
    from ocml.pipeline.model import load_model
    from ocml.pipeline.segment import tuned_params

    model = load_model(model_path)
    params = tuned_params(model, overrides=dict(overrides or {}))
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


def model_speed(model: Model, *, frames: int = 60_000, seconds: float = 3.0) -> float:
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


def read_metrics(path: Path) -> dict[str, Any]:
    """The summary of an ``ocml-train evaluate --json`` report that an exported model carries:
    data folder, collar, parameters, overall scores and each data set's overall scores."""
    try:
        report = json.loads(path.read_text())
        return {
            "data": Path(report["data"]).name,
            "collar": report["collar"],
            "params": report["params"],
            **report["overall"],
            "sets": {name: s["overall"] for name, s in report.get("sets", {}).items()},
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise TrainingInputError(
            f"{path}: not an evaluation report from `ocml-train evaluate --json` ({exc!r})"
        ) from None


def read_postprocess(path: Path) -> dict[str, Any]:
    """Tuned post-processing parameters (``evaluate --tune --json``'s ``params`` or a plain
    mapping) as JSON."""
    try:
        params = json.loads(path.read_text())
    except ValueError as exc:
        raise TrainingInputError(f"{path}: not JSON ({exc})") from None
    if not isinstance(params, dict):
        raise TrainingInputError(f"{path}: expected a JSON object of parameters")
    return params
