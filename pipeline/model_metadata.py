"""What a model directory holds: the ``assets/ocml.json`` schema and its checks, the runtime
assets it may declare, where a ``--model`` path leads, and the directory's digest."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocml.pipeline.checks import check_int
from ocml.pipeline.errors import ModelError
from ocml.pipeline.features import FeatureConfig
from ocml.pipeline.runtimes.names import LITERT, ONNX

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
RUN_MODEL_DIR = "savedmodel"
RUN_RECIPE = "recipe.yaml"
"""A training run's directory holds its recipe and, once trained, its model in ``savedmodel/``."""


@dataclass(frozen=True)
class Asset:
    """A file in the SavedModel's ``assets/`` that lets another runtime run the model, as
    ``ocml.json`` declares it: ``{key: {"file": NAME, **fields}}``, ``fields`` fixed values."""

    key: str
    fields: Mapping[str, Any]
    kind: str
    how: str
    """How a model gets the asset, for the error when a runtime needs it and the model lacks it."""


ASSETS = {
    ONNX: Asset("onnx", {}, "ONNX model", "ocml-train export and calibrate write one"),
    LITERT: Asset("tflite", {"batch_size": 1}, "TFLite flatbuffer", "export it with --tflite"),
}
"""The runtimes other than TensorFlow and the asset each of them runs."""
INFERENCE_DEFAULTS = {"chunk_frames": 3000, "batch_size": 8}
"""How ``Inference`` runs a model whose metadata has no ``inference`` hint (right for convolutions)."""


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


def default_model_path() -> Path:
    """Directory of the shipped default model, ``models/pretrained/default`` in the package."""
    try:
        path = Path(str(importlib.resources.files("ocml.models.pretrained") / "default"))
    except ModuleNotFoundError as exc:
        raise ModelError(f"the default model is not installed ({exc})") from exc
    if not path.is_dir():
        raise ModelError("the default model is not installed", path=str(path))
    return path


def resolve_model_dir(path: str | os.PathLike[str] | None) -> Path:
    """The SavedModel a ``--model`` path names: the shipped default for None, a training run's
    exported ``savedmodel/`` for a run directory (``ocml-train train --out``), else ``path``."""
    if path is None:
        return default_model_path()
    root = Path(path)
    if not (root / "saved_model.pb").is_file() and (root / RUN_MODEL_DIR).is_dir():
        return root / RUN_MODEL_DIR
    return root


def check_model_dir(root: Path) -> Path:
    """``root`` if it holds a SavedModel; a ``ModelError`` that says what it holds instead."""
    if not root.is_dir():
        raise ModelError("model directory does not exist", path=str(root))
    if (root / RUN_RECIPE).is_file() and not (root / "saved_model.pb").is_file():
        raise ModelError(
            f"a training run without an exported model ({RUN_MODEL_DIR}/ is missing: the run "
            "has not finished; `ocml-train export` writes one from its checkpoints)",
            path=str(root),
        )
    if not (root / "saved_model.pb").is_file():
        raise ModelError("not a SavedModel: saved_model.pb is missing", path=str(root))
    return root


def read_metadata(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The validated ``assets/ocml.json`` of the model at ``path`` (as ``resolve_model_dir``
    finds it); ``ModelError`` if unusable."""
    return parse_metadata(check_model_dir(resolve_model_dir(path)))[0]


def parse_metadata(root: Path) -> tuple[dict[str, Any], FeatureConfig]:
    """The validated metadata of the SavedModel at ``root`` and its feature configuration,
    parsed once."""
    file = root / METADATA_FILE
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
    for asset in ASSETS.values():
        problem = _asset_problem(asset, data.get(asset.key))
        if problem:
            raise ModelError(f"metadata {problem}", path=file)
    return features


def _asset_problem(asset: Asset, entry: Any) -> str | None:
    """What is wrong with a runtime's asset entry (a file name in ``assets/`` and the asset's
    fixed fields), or None; an absent entry is fine."""
    if entry is None:
        return None
    keys = ("file", *asset.fields)
    if not isinstance(entry, Mapping) or set(entry) != set(keys):
        return f"{asset.key} must be an object with keys {' and '.join(keys)}, got {entry!r}"
    name = entry["file"]
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        return f"{asset.key}.file must be a file name in assets/, got {name!r}"
    for field, value in asset.fields.items():
        if entry[field] != value:
            return f"{asset.key}.{field} must be {value!r}, got {entry[field]!r}"
    return None


def asset_file(root: Path, metadata: Mapping[str, Any], asset: Asset) -> Path:
    """The path of the ``asset`` that ``metadata`` declares; ``ModelError`` naming it if missing."""
    file = root / "assets" / metadata[asset.key]["file"]
    if not file.is_file():
        raise ModelError(
            f"the {asset.kind} that {METADATA_FILE} declares is missing", path=str(file)
        )
    return file


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
