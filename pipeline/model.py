"""Loading a speech-probability SavedModel and its ``assets/ocml.json`` metadata.

Only TensorFlow is needed, never the training code. TensorFlow is imported inside the functions
that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ocml.pipeline.checks import check_int
from ocml.pipeline.errors import ModelError
from ocml.pipeline.features import FeatureConfig

FORMAT_VERSION = 1
METADATA_FILE = "assets/ocml.json"
LABELS = ["non-speech", "speech"]
REQUIRED_KEYS = (
    "format_version",
    "name",
    "version",
    "architecture",
    "features",
    "context_frames",
    "labels",
)
PIPELINE_FEATURES = FeatureConfig()
"""The features this pipeline computes; a model trained on others is refused."""

SIGNATURES = ("serve", "serving_default")
INFERENCE_DEFAULTS = {"chunk_frames": 3000, "batch_size": 8}
"""How ``Inference`` runs a model whose metadata has no ``inference`` hint (right for convolutions)."""

log = logging.getLogger(__name__)


def inference_hint_problem(hint: Mapping[str, Any]) -> str | None:
    """What is wrong with an ``inference`` hint (metadata or recipe), or None when it is usable."""
    for key, value in hint.items():
        if key not in INFERENCE_DEFAULTS:
            return f"inference.{key} is unknown; known: {', '.join(INFERENCE_DEFAULTS)}"
        try:
            check_int(value, name=f"inference.{key}")
        except ValueError as exc:
            return str(exc)
    return None


def configure_tensorflow(threads: int = 1) -> None:
    """Quiet TensorFlow's start-up logging and pin its intra/inter-op thread pools to ``threads``.

    Idempotent. Once TensorFlow has run an op the pools can no longer change; then the existing
    setting is kept and a warning logged.
    """
    check_int(threads, name="threads")
    tf = import_tensorflow()
    pools = tf.config.threading
    for name, get, set_ in (
        (
            "intra_op",
            pools.get_intra_op_parallelism_threads,
            pools.set_intra_op_parallelism_threads,
        ),
        (
            "inter_op",
            pools.get_inter_op_parallelism_threads,
            pools.set_inter_op_parallelism_threads,
        ),
    ):
        if get() == threads:
            continue
        try:
            set_(threads)
        except RuntimeError:
            log.warning("TensorFlow already initialised; %s threads stay at %s", name, get())


def import_tensorflow():
    """Import TensorFlow with its C++ start-up messages (oneDNN notices) kept off stderr."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # absl logs to stderr before it is initialised, ignoring TF_CPP_MIN_LOG_LEVEL.
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow


def default_model_path() -> Path:
    """Directory of the shipped default model, ``models/pretrained/default`` in the package."""
    try:
        path = Path(str(importlib.resources.files("ocml.models.pretrained") / "default"))
    except ModuleNotFoundError as exc:
        raise ModelError(f"the default model is not installed ({exc})") from exc
    if not path.is_dir():
        raise ModelError("the default model is not installed", path=str(path))
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated ``assets/ocml.json`` of the SavedModel at ``path``; ``ModelError`` if unusable."""
    return _read_metadata(Path(path))[0]


def _read_metadata(path: Path) -> tuple[dict[str, Any], FeatureConfig]:
    """The validated metadata and its feature configuration, parsed once."""
    file = path / METADATA_FILE
    if not file.is_file():
        raise ModelError(
            f"no model metadata: {METADATA_FILE} is missing (not an opencast-ml model)",
            path=str(file),
        )
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"unreadable model metadata: {exc}", path=str(file)) from exc
    return data, _check_metadata(data, str(file))


def _check_metadata(data: Any, file: str) -> FeatureConfig:
    """Refuses unusable metadata with a ``ModelError``; returns its feature configuration."""
    if not isinstance(data, dict):
        raise ModelError(
            f"model metadata must be a JSON object, got {type(data).__name__}", path=file
        )
    if "format_version" in data and data["format_version"] != FORMAT_VERSION:
        raise ModelError(
            f"unsupported format_version {data['format_version']!r}; "
            f"this pipeline reads format_version {FORMAT_VERSION}",
            path=file,
        )
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ModelError(f"model metadata lacks keys {missing}", path=file)
    for key in ("name", "version", "architecture"):
        if not isinstance(data[key], str) or not data[key]:
            raise ModelError(
                f"metadata {key} must be a non-empty string, got {data[key]!r}", path=file
            )
    try:
        features = FeatureConfig.from_dict(data["features"])
    except ValueError as exc:
        raise ModelError(f"bad feature configuration: {exc}", path=file) from exc
    try:
        check_int(data["context_frames"], name="context_frames", minimum=0)
    except ValueError as exc:
        raise ModelError(str(exc), path=file) from None
    if data["labels"] != LABELS:
        raise ModelError(f"labels must be {LABELS}, got {data['labels']!r}", path=file)
    for key in ("postprocess", "training", "metrics", "inference"):
        if data.get(key) is not None and not isinstance(data[key], Mapping):
            raise ModelError(f"metadata {key} must be an object, got {data[key]!r}", path=file)
    problem = inference_hint_problem(data.get("inference") or {})
    if problem:
        raise ModelError(f"metadata {problem}", path=file)
    return features


def directory_sha256(path: str | os.PathLike[str]) -> str:
    """Stable hash of every file under ``path``: relative paths (sorted) and contents."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(
        (p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix()
    ):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


class Model:
    """A loaded SavedModel: ``predict([B, T, n_mels]) -> [B, T]`` speech probabilities, plus metadata."""

    def __init__(
        self,
        *,
        path: Path,
        metadata: dict[str, Any],
        features: FeatureConfig,
        loaded: Any,
        signature: Any,
        input_name: str,
        output_key: str,
        sha256: str,
    ) -> None:
        self.path = path
        self.metadata = metadata
        self.features = features
        self.context_frames: int = metadata["context_frames"]
        self.name: str = metadata["name"]
        self.version: str = metadata["version"]
        self.architecture: str = metadata["architecture"]
        self.postprocess: dict[str, Any] = dict(metadata.get("postprocess") or {})
        self.inference: dict[str, int] = {**INFERENCE_DEFAULTS, **(metadata.get("inference") or {})}
        self.sha256 = sha256
        self._loaded = loaded  # keeps the signature's variables alive
        self._signature = signature
        self._input_name = input_name
        self._output_key = output_key

    def __repr__(self) -> str:
        return f"Model({self.name!r}, version={self.version!r}, architecture={self.architecture!r}, path='{self.path}')"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Speech probability per frame, float32 ``[B, T]``, for log-mel ``batch`` ``[B, T, n_mels]``."""
        data = np.asarray(batch, dtype=np.float32)
        if data.ndim != 3 or data.shape[2] != self.features.n_mels:
            raise ValueError(
                f"batch must be [batch, frames, {self.features.n_mels}] log-mels, got shape {data.shape}"
            )
        if data.shape[0] == 0 or data.shape[1] == 0:
            return np.zeros(data.shape[:2], dtype=np.float32)
        tf = import_tensorflow()
        out = self._signature(**{self._input_name: tf.constant(data)})[self._output_key].numpy()
        if out.shape != data.shape[:2]:
            raise ModelError(
                f"model returned shape {out.shape} for input {data.shape}, expected {data.shape[:2]}",
                path=str(self.path),
            )
        return out.astype(np.float32, copy=False)


def load_model(path: str | os.PathLike[str] | None = None) -> Model:
    """Load the SavedModel at ``path`` (None: the shipped default), refusing incompatible ones."""
    root = default_model_path() if path is None else Path(path)
    metadata, features = _read_metadata(_check_directory(root))
    problems = features.mismatches(PIPELINE_FEATURES)
    if problems:
        raise ModelError(
            "model features differ from the pipeline's: " + "; ".join(problems), path=str(root)
        )
    return _open(root, metadata, features)


def open_savedmodel(path: str | os.PathLike[str]) -> Model:
    """Load the SavedModel at ``path`` with its metadata, whatever its feature configuration.

    For export checks and tools; segmenting uses ``load_model``, which also checks the features.
    """
    root = _check_directory(Path(path))
    return _open(root, *_read_metadata(root))


def _check_directory(root: Path) -> Path:
    if not root.is_dir():
        raise ModelError("model directory does not exist", path=str(root))
    if not (root / "saved_model.pb").is_file():
        raise ModelError("not a SavedModel: saved_model.pb is missing", path=str(root))
    return root


def _open(root: Path, metadata: dict[str, Any], features: FeatureConfig) -> Model:
    configure_tensorflow()
    tf = import_tensorflow()
    try:
        loaded = tf.saved_model.load(str(root))
    except Exception as exc:  # TensorFlow raises many types for a damaged SavedModel
        raise ModelError(
            f"cannot load SavedModel: {type(exc).__name__}: {exc}", path=str(root)
        ) from exc
    name = next((s for s in SIGNATURES if s in loaded.signatures), None)
    if name is None:
        raise ModelError(
            f"SavedModel has no serving signature (looked for {list(SIGNATURES)}, "
            f"found {sorted(loaded.signatures)})",
            path=str(root),
        )
    signature = loaded.signatures[name]
    input_name = _check_input(signature, metadata, str(root))
    output_key = _check_output(signature, str(root))
    return Model(
        path=root,
        metadata=metadata,
        features=features,
        loaded=loaded,
        signature=signature,
        input_name=input_name,
        output_key=output_key,
        sha256=directory_sha256(root),
    )


def _check_input(signature: Any, metadata: dict[str, Any], where: str) -> str:
    """The signature's one input name, after checking it takes float32 ``[B, T, n_mels]``."""
    args, kwargs = signature.structured_input_signature
    if args or len(kwargs) != 1:
        raise ModelError(
            f"signature must take one input tensor, takes {args or kwargs}", path=where
        )
    ((name, spec),) = kwargs.items()
    n_mels = metadata["features"]["n_mels"]
    shape = spec.shape.as_list() if spec.shape.rank is not None else None
    if (
        spec.dtype.name != "float32"
        or shape is None
        or len(shape) != 3
        or shape[2] not in (None, n_mels)
    ):
        raise ModelError(
            f"signature input {name!r} is {spec.dtype.name} {shape}, expected float32 "
            f"[batch, frames, {n_mels}] (n_mels {n_mels} from metadata)",
            path=where,
        )
    return name


def _check_output(signature: Any, where: str) -> str:
    """The signature's one output key, after checking it is ``[batch, frames]``."""
    outputs = signature.structured_outputs
    if not isinstance(outputs, Mapping) or len(outputs) != 1:
        raise ModelError(f"signature must have one output, has {outputs}", path=where)
    ((key, spec),) = outputs.items()
    shape = spec.shape.as_list() if spec.shape.rank is not None else None
    if shape is None or len(shape) != 2:
        raise ModelError(
            f"signature output {key!r} has shape {shape}, expected [batch, frames]", path=where
        )
    return key
