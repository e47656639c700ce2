"""A loaded model: `Model`, from `load_model` (segmenting) or `open_savedmodel` (tools).

The metadata is checked at once (`model_metadata`); the network opens on one runtime
(`runtimes`), in a thread with ``background=True`` so the caller can start decoding meanwhile.
TensorFlow is the reference runtime; on ONNX Runtime or LiteRT, which run the model's assets,
TensorFlow is never imported.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from ocml.pipeline.errors import ModelError
from ocml.pipeline.features import PIPELINE_FEATURES, FeatureConfig
from ocml.pipeline.model_metadata import (
    INFERENCE_DEFAULTS,
    check_model_dir,
    directory_sha256,
    parse_metadata,
    resolve_model_dir,
)
from ocml.pipeline.runtimes.choice import runner_class
from ocml.pipeline.runtimes.names import TENSORFLOW
from ocml.pipeline.runtimes.runner import Runner


class Model:
    """A SavedModel's metadata and its network: ``predict([B, T, n_mels]) -> [B, T]``.

    The metadata attributes are there at once; the network may still be loading in a background
    thread (``load_model(..., background=True)``): ``predict`` and ``wait`` block until it is
    ready and raise its ``ModelError`` if loading failed.
    """

    def __init__(
        self,
        *,
        path: Path,
        metadata: dict[str, Any],
        runtime: str,
        runner: Future[Runner],
        features: FeatureConfig,
        sha256: str,
    ) -> None:
        self.path = path
        self.metadata = metadata
        self.runtime = runtime
        self.features = features
        self.context_frames: int = metadata["context_frames"]
        self.name: str = metadata["name"]
        self.version: str = metadata["version"]
        self.architecture: str = metadata["architecture"]
        self.postprocess: dict[str, Any] = dict(metadata.get("postprocess") or {})
        self.inference: dict[str, int] = {**INFERENCE_DEFAULTS, **(metadata.get("inference") or {})}
        self.sha256 = sha256
        self._runner = runner

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}, version={self.version!r}, architecture={self.architecture!r}, "
            f"runtime={self.runtime!r}, path='{self.path}')"
        )

    @property
    def ready(self) -> bool:
        """Whether the network has finished loading (or failed to): ``predict`` would not wait."""
        return self._runner.done()

    def wait(self) -> Model:
        """Block until the network is loaded; raises the loading's ``ModelError``."""
        self._runner.result()
        return self

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Speech probability per frame, float32 ``[B, T]``, for log-mel ``batch`` ``[B, T, n_mels]``."""
        data = np.asarray(batch, dtype=np.float32)
        if data.ndim != 3 or data.shape[2] != self.features.n_mels:
            raise ValueError(
                f"batch must be [batch, frames, {self.features.n_mels}] log-mels, "
                f"got shape {data.shape}"
            )
        if data.shape[0] == 0 or data.shape[1] == 0:
            return np.zeros(data.shape[:2], dtype=np.float32)
        out = self._runner.result()(data)
        if out.shape != data.shape[:2]:
            raise ModelError(
                f"model returned shape {out.shape} for input {data.shape}, "
                f"expected {data.shape[:2]}",
                path=str(self.path),
            )
        return out.astype(np.float32, copy=False)


def load_model(
    path: str | os.PathLike[str] | None = None,
    *,
    runtime: str = TENSORFLOW,
    background: bool = False,
) -> Model:
    """Load the SavedModel at ``path`` (None: the shipped default), refusing incompatible ones.

    ``runtime``: ``"tensorflow"`` (the reference), ``"onnx"`` (the model's ONNX asset on ONNX
    Runtime) or ``"litert"`` (its TFLite asset on LiteRT); on the last two TensorFlow is never
    imported. With ``background`` the metadata is checked at once and
    the network loads in a thread, so the caller can start decoding; TensorFlow must then not be
    forked while it loads (worker processes load after the fork, in the foreground).
    """
    root = resolve_model_dir(path)
    metadata, features = parse_metadata(check_model_dir(root))
    problems = features.mismatches(PIPELINE_FEATURES)
    if problems:
        raise ModelError(
            "model features differ from the pipeline's: " + "; ".join(problems), path=str(root)
        )
    return _model(root, metadata, features, runtime=runtime, background=background)


def open_savedmodel(path: str | os.PathLike[str], *, runtime: str = TENSORFLOW) -> Model:
    """Load the SavedModel at ``path`` with its metadata, whatever its feature configuration.

    For export checks and tools; segmenting uses ``load_model``, which also checks the features.
    """
    root = check_model_dir(resolve_model_dir(path))
    return _model(root, *parse_metadata(root), runtime=runtime, background=False)


def _model(
    root: Path,
    metadata: dict[str, Any],
    features: FeatureConfig,
    *,
    runtime: str,
    background: bool,
) -> Model:
    opener = runner_class(runtime, root, metadata)
    runner: Future[Runner] = Future()

    def load() -> None:
        try:
            runner.set_result(opener.open(root, metadata))
        except BaseException as exc:  # handed to whoever waits for the model
            runner.set_exception(exc)

    if background:
        # Not a daemon: the interpreter's exit waits for the load to end. A process that exits
        # while the thread is inside TensorFlow's or ONNX Runtime's native code (every file
        # failed before inference) is otherwise aborted ("terminate called without an active
        # exception", status -6).
        threading.Thread(target=load, name="ocml-model-load", daemon=False).start()
    else:
        load()
        runner.result()
    return Model(
        path=root,
        metadata=metadata,
        runtime=runtime,
        runner=runner,
        features=features,
        sha256=directory_sha256(root),
    )
