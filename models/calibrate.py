"""`ocml-train calibrate`: make the generic post-processing defaults right for a model.

A monotone transform of the model's speech probability, ``p' = sigmoid(a · logit(p) + b)``, is
fitted on labelled folders pooled (every frame of every file) so that the pipeline's generic
defaults (``SegmentParams()``, the ``default`` preset: threshold 0.5, neg_threshold 0.35, …)
give the highest pooled frame F1. The model is then written again with the transform inside the
SavedModel (same ``serve`` signature, ``[None, None, n_mels] float32 → [None, None]``) and a
``calibration`` record in ``assets/ocml.json``. The transform keeps the order of the
probabilities, so the precision/recall curve and the best tuned F1 stay as they were; only where
the defaults fall on it moves.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ocml.models.errors import TrainingInputError
from ocml.models.evaluate import Echo
from ocml.models.scoring import COLLAR, FileRun, pool
from ocml.pipeline.errors import ModelError, OutputError
from ocml.pipeline.postprocess import SegmentParams

EPS = 1e-6
"""Probabilities are clipped to [EPS, 1 − EPS] before the logit (float32 saturates at 0 and 1)."""
A_GRID = tuple(float(a) for a in np.round(np.geomspace(0.25, 4.0, 17), 4))
B_GRID = tuple(float(b) for b in np.round(np.arange(-6.0, 6.01, 0.25), 2))
REFINE_STEPS = 4
"""Refinement rounds around the best grid point, each halving the step in a (log) and b."""


@dataclass(frozen=True)
class Calibration:
    """``p' = sigmoid(a · logit(p) + b)``; ``a > 0`` keeps the order of the probabilities."""

    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("a", "b"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TrainingInputError(f"calibration {name} must be a number, got {value!r}")
            if not np.isfinite(value):
                raise TrainingInputError(f"calibration {name} must be finite, got {value!r}")
        if self.a <= 0:
            raise TrainingInputError(f"calibration a must be > 0 (monotone), got {self.a!r}")

    def apply_logits(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of ``logit(p)`` values, float32."""
        z = self.a * np.asarray(logits, np.float64) + self.b
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, float32."""
        return self.apply_logits(logit(probabilities))


def logit(probabilities: np.ndarray) -> np.ndarray:
    """``log(p / (1 − p))`` of ``p`` clipped to ``[EPS, 1 − EPS]``, float64."""
    p = np.clip(np.asarray(probabilities, np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def pooled_f1(
    runs: Sequence[FileRun], logits: Sequence[np.ndarray], cal: Calibration, params: SegmentParams
) -> float:
    """Pooled frame F1 of ``params`` on the calibrated probabilities of every run."""
    tp = fp = fn = 0
    for run, z in zip(runs, logits, strict=True):
        hyp = run.hypothesis(run.binarize(params, cal.apply_logits(z)))
        ref = run.reference
        tp += int(np.count_nonzero(ref & hyp))
        fp += int(np.count_nonzero(~ref & hyp))
        fn += int(np.count_nonzero(ref & ~hyp))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def fit_calibration(
    runs: Sequence[FileRun],
    *,
    params: SegmentParams | None = None,
    a_grid: Sequence[float] = A_GRID,
    b_grid: Sequence[float] = B_GRID,
    refine: int = REFINE_STEPS,
) -> tuple[Calibration, float]:
    """The (a, b) whose calibrated probabilities give ``params`` (default: the generic defaults)
    the highest pooled frame F1 over ``runs``, and that F1.

    A grid over ``a_grid`` × ``b_grid`` (the identity a = 1, b = 0 is always tried, so the fit
    never scores below the uncalibrated model), then ``refine`` rounds of a 5 × 5 grid around the
    best point with halved steps. Ties keep the point closest to the identity.
    """
    if not runs:
        raise TrainingInputError("no recordings to calibrate on")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise TrainingInputError(f"refine must be an integer >= 0, got {refine!r}")
    if not a_grid or not b_grid:
        raise TrainingInputError(
            f"a_grid and b_grid must not be empty, got {a_grid!r} and {b_grid!r}"
        )
    params = SegmentParams() if params is None else params
    logits = [logit(r.probabilities) for r in runs]

    def best_of(points: Sequence[tuple[float, float]]) -> tuple[float, float, float]:
        scored = [
            (pooled_f1(runs, logits, Calibration(a, b), params), -abs(np.log(a)) - abs(b), a, b)
            for a, b in dict.fromkeys(points)
        ]
        f1, _, a, b = max(scored)
        return f1, a, b

    f1, a, b = best_of([(1.0, 0.0), *itertools.product(a_grid, b_grid)])
    a_step = float(np.log(a_grid[1] / a_grid[0])) if len(a_grid) > 1 else 0.25
    b_step = float(b_grid[1] - b_grid[0]) if len(b_grid) > 1 else 0.25
    for _ in range(refine):
        a_step, b_step = a_step / 2, b_step / 2
        f1, a, b = best_of(
            [
                (round(a * float(np.exp(i * a_step)), 5), round(b + j * b_step, 5))
                for i in range(-2, 3)
                for j in range(-2, 3)
            ]
        )
    return Calibration(a, b), f1


def write_calibrated(
    model_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    calibration: Calibration,
    *,
    record: dict[str, Any],
    postprocess: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    version: str | None = None,
    onnx: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write the SavedModel at ``model_path`` again at ``out_dir`` with ``calibration`` applied to
    its output inside the graph; ``assets/ocml.json`` is copied with ``calibration`` (``a``,
    ``b`` and ``record``), and ``postprocess``, ``metrics`` and ``version`` replaced when given.
    The written model is loaded back and checked against the transform of the original's output.
    With ``onnx`` the calibrated model gets its own ONNX asset (converted from the written
    SavedModel, transform included); the original's runtime assets are never carried over.
    """
    from ocml.models.export import ONNX_FILE, probe_batch, write_checked
    from ocml.pipeline.model import open_savedmodel
    from ocml.pipeline.model_metadata import ASSETS
    from ocml.pipeline.result import utc_now
    from ocml.pipeline.runtimes.tensorflow import serving_signature_name
    from ocml.pipeline.threads import import_tensorflow

    src, out = Path(model_path), Path(out_dir)
    if out.resolve() == src.resolve():
        raise OutputError(
            "calibrate into a new directory, not over the model it reads", path=str(out)
        )
    original = open_savedmodel(src)
    metadata = dict(original.metadata)
    if "calibration" in metadata:
        raise ModelError(
            f"model is already calibrated ({metadata['calibration']!r}); calibrate the "
            "uncalibrated model instead",
            path=str(src),
        )
    metadata["calibration"] = {"a": calibration.a, "b": calibration.b, **record}
    for asset in ASSETS.values():  # they would lack the transform: not carried over
        metadata.pop(asset.key, None)
    if onnx:
        metadata[ASSETS["onnx"].key] = {"file": ONNX_FILE}
    if postprocess is not None:
        metadata["postprocess"] = dict(postprocess)
    if metrics is not None:
        metadata["metrics"] = dict(metrics)
    if version is not None:
        if not isinstance(version, str) or not version:
            raise TrainingInputError(f"version must be a non-empty string, got {version!r}")
        metadata["version"] = version
    metadata["created"] = utc_now()
    n_mels = original.features.n_mels
    tf = import_tensorflow()
    loaded = tf.saved_model.load(str(src))
    signature = loaded.signatures[serving_signature_name(loaded, src)]
    ((input_name, _),) = signature.structured_input_signature[1].items()
    ((output_key, _),) = signature.structured_outputs.items()

    class Calibrated(tf.Module):
        """The loaded model's serving function followed by the logit transform."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = loaded
            self.a = tf.Variable(calibration.a, dtype=tf.float64, trainable=False, name="a")
            self.b = tf.Variable(calibration.b, dtype=tf.float64, trainable=False, name="b")

        @tf.function(
            input_signature=[tf.TensorSpec([None, None, n_mels], tf.float32, name=input_name)]
        )
        def serve(self, log_mels):
            p = tf.cast(signature(**{input_name: log_mels})[output_key], tf.float64)
            p = tf.clip_by_value(p, EPS, 1.0 - EPS)
            z = self.a * (tf.math.log(p) - tf.math.log1p(-p)) + self.b
            return {output_key: tf.cast(tf.sigmoid(z), tf.float32)}

    module = Calibrated()

    def save(staging: Path) -> None:
        tf.saved_model.save(
            module, str(staging), signatures={"serve": module.serve.get_concrete_function()}
        )

    probe = probe_batch(n_mels)
    return write_checked(
        out,
        save=save,
        metadata=metadata,
        probe=probe,
        expected=calibration(original.predict(probe)),
        what="the calibrated original",
        overwrite=overwrite,
    )


def calibrate_dirs(
    model_path: Path,
    data: Sequence[Path],
    out: Path,
    *,
    tune: bool = True,
    version: str | None = None,
    onnx: bool = True,
    overwrite: bool = False,
    echo: Echo = print,
) -> dict[str, Any]:
    """Fit the calibration on the pooled ``data`` folders, write the calibrated model to ``out``
    and return a report: pooled F1 with the generic defaults and tuned, before and after.

    With ``tune`` the post-processing is tuned again on the calibrated probabilities (pool) and
    stored as the model's recommended values; otherwise the model recommends the generic
    defaults (an empty ``postprocess``). ``onnx``: the written model carries an ONNX asset.
    """
    from ocml.models.evaluate import (
        TUNE_OBJECTIVE,
        load_data_sets,
        rescore,
        run_data_sets,
        section,
    )
    from ocml.pipeline.model import load_model
    from ocml.pipeline.model_metadata import resolve_model_dir

    source = resolve_model_dir(model_path)
    model = load_model(source)
    generic = SegmentParams()
    sets = load_data_sets(data)
    runs = run_data_sets(model, sets, generic, echo=echo)
    pool_name = "+".join(ds.name for ds in sets)
    report: dict[str, Any] = {"model": str(source), "data": pool_name, "collar": COLLAR}
    report["before"] = summary(runs, generic, tune=tune)
    calibration, _ = fit_calibration(runs, params=generic)
    calibrated = [replace(r, probabilities=calibration(r.probabilities), segments=[]) for r in runs]
    report["after"] = summary(calibrated, generic, tune=tune)
    report["calibration"] = {"a": calibration.a, "b": calibration.b}
    postprocess: dict[str, Any] = report["after"].get("tuned_params", {})
    shipped = SegmentParams.from_mapping(postprocess, base=generic)
    scored = section(calibrated, rescore(calibrated, shipped))
    metrics = {
        "data": pool_name,
        "collar": COLLAR,
        "params": shipped.to_dict(),
        **scored["overall"],
        "sets": {name: s["overall"] for name, s in scored["sets"].items()},
    }
    record = {
        "fitted_on": [ds.name for ds in sets],
        "objective": "pooled frame F1 with the generic default post-processing "
        f"{generic.to_dict()}",
        "f1_default_before": report["before"]["default"]["f1"],
        "f1_default_after": report["after"]["default"]["f1"],
    }
    if tune:
        record["tune_objective"] = TUNE_OBJECTIVE
    report["path"] = str(
        write_calibrated(
            source,
            out,
            calibration,
            record=record,
            postprocess=postprocess,
            metrics=metrics,
            version=version,
            onnx=onnx,
            overwrite=overwrite,
        )
    )
    echo(format_summary(report))
    return report


def summary(runs: Sequence[FileRun], generic: SegmentParams, *, tune: bool) -> dict[str, Any]:
    """Pooled metrics with the generic defaults and (with ``tune``) with tuned post-processing."""
    from ocml.models.evaluate import rescore, tune_params

    out: dict[str, Any] = {"default": pool(rescore(list(runs), generic)).metrics()}
    if tune:
        params, metrics = tune_params(list(runs), generic)
        out["tuned_params"], out["tuned"] = params, metrics
    return out


def format_summary(report: dict[str, Any]) -> str:
    """Before/after lines of a calibration report."""
    cal = report["calibration"]
    lines = [
        f"calibration on {report['data']}: p' = sigmoid({cal['a']:.4g} * logit(p) "
        f"{'-' if cal['b'] < 0 else '+'} {abs(cal['b']):.4g})"
    ]
    for when in ("before", "after"):
        part = report[when]
        line = (
            f"  {when:<6} generic defaults: F1 {part['default']['f1']:.4f}  "
            f"DER(collar) {part['default']['der_collar']:.4f}"
        )
        if "tuned" in part:
            gap = part["tuned"]["f1"] - part["default"]["f1"]
            line += (
                f"   tuned: F1 {part['tuned']['f1']:.4f}  DER(collar) "
                f"{part['tuned']['der_collar']:.4f}   tuned - defaults: {gap:+.4f} F1"
            )
        lines.append(line)
    if "tuned_params" in report["after"]:
        lines.append(
            "  recommended post-processing (tuned on the calibrated probabilities): "
            f"{report['after']['tuned_params']}"
        )
    lines.append(f"wrote {report['path']}")
    return "\n".join(lines)
