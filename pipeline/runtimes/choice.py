"""Which runtime runs a model: `choose_runtime` for ``auto``, and `runner_class`, the runtime's
`Runner` once the model and this install can run it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ocml.pipeline.errors import ModelError
from ocml.pipeline.extras import RUNTIME_EXTRAS, require
from ocml.pipeline.model_metadata import ASSETS
from ocml.pipeline.runtimes.litert import LiteRTRunner
from ocml.pipeline.runtimes.names import AUTO, LITERT, ONNX, RUNTIMES, TENSORFLOW
from ocml.pipeline.runtimes.onnx import OnnxRunner
from ocml.pipeline.runtimes.runner import Runner
from ocml.pipeline.runtimes.tensorflow import TensorFlowRunner

RUNNERS: dict[str, type[Runner]] = {
    TENSORFLOW: TensorFlowRunner,
    ONNX: OnnxRunner,
    LITERT: LiteRTRunner,
}
"""The class that opens a model on each runtime."""
LITERT_MAX_SECONDS = 1200.0
"""``choose_runtime`` picks LiteRT for jobs with at most this much audio: TensorFlow starts
later, LiteRT infers slower, and below this one process on LiteRT finishes first with a margin
(docs/performance.md)."""


def choose_runtime(requested: str, metadata: Mapping[str, Any], audio_seconds: float) -> str:
    """The runtime for a job: ``requested``, or for ``"auto"`` the faster one for this much audio.

    ``auto`` is ONNX Runtime when the model has an ONNX asset (faster than TensorFlow per frame
    and quicker to start, docs/performance.md); else LiteRT when the model has a TFLite asset
    and the job (one process's whole work) holds at most `LITERT_MAX_SECONDS` of audio; else
    TensorFlow. A worker, whose model serves job after job, passes ``math.inf``.
    """
    if requested != AUTO:
        return requested
    if metadata.get(ASSETS[ONNX].key):
        return ONNX
    small = audio_seconds <= LITERT_MAX_SECONDS
    return LITERT if small and metadata.get(ASSETS[LITERT].key) else TENSORFLOW


def runtime_depends_on_duration(metadata: Mapping[str, Any]) -> bool:
    """Whether ``choose_runtime("auto", metadata, …)`` depends on the audio's duration, i.e.
    whether a caller must read its inputs' durations before choosing."""
    return choose_runtime(AUTO, metadata, 0.0) != choose_runtime(AUTO, metadata, math.inf)


def runner_class(runtime: str, root: Path, metadata: Mapping[str, Any]) -> type[Runner]:
    """The `Runner` of ``runtime`` for the model at ``root``: ``ModelError`` for an unknown
    runtime or a model without the runtime's asset, ``MissingExtra`` when this install lacks
    the runtime's extra; nothing is imported or opened."""
    if runtime not in RUNTIMES:
        raise ModelError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    asset = ASSETS.get(runtime)
    if asset is not None and not metadata.get(asset.key):
        raise ModelError(
            f"runtime {runtime} needs the model's {asset.kind} in assets/ ({asset.how})",
            path=str(root),
        )
    if runtime in RUNTIME_EXTRAS:
        require(RUNTIME_EXTRAS[runtime], f"runtime {runtime}")
    return RUNNERS[runtime]
