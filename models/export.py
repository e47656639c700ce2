"""Export a per-frame Keras model as a SavedModel that loads with TensorFlow alone.

The SavedModel's ``serve`` signature maps float32 ``[batch, frames, n_mels]`` log-mels to
``[batch, frames]`` speech probabilities; ``assets/ocml.json`` carries the metadata that
``pipeline.model`` checks when loading.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ocml.pipeline.checks import check_int, check_text
from ocml.pipeline.errors import ModelError, OutputError
from ocml.pipeline.features import FeatureConfig
from ocml.pipeline.model import (
    FORMAT_VERSION,
    LABELS,
    METADATA_FILE,
    import_tensorflow,
    native_noise_filtered,
    open_savedmodel,
    read_metadata,
)
from ocml.pipeline.result import utc_now

__all__ = ["export_savedmodel", "read_metadata", "build_metadata", "write_checked"]

PROBE_FRAMES = 97
"""Length of the random probe batch that checks the export against the Keras model."""
TFLITE_FILE = "model.tflite"
TFLITE_TOLERANCE = 1e-4
"""Largest difference from the Keras model's probabilities a TFLite asset may show."""


def build_metadata(
    *,
    name: str,
    version: str,
    architecture: str,
    features: FeatureConfig,
    context_frames: int,
    postprocess: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    inference: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The ``assets/ocml.json`` content (format_version 1), validated by ``pipeline.model``'s rules."""
    for key, value in (("name", name), ("version", version), ("architecture", architecture)):
        check_text(value, name=key)
    if not isinstance(features, FeatureConfig):
        raise ValueError(f"features must be a FeatureConfig, got {features!r}")
    check_int(context_frames, name="context_frames", minimum=0)
    metadata = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "architecture": architecture,
        "features": features.to_dict(),
        "context_frames": context_frames,
        "labels": list(LABELS),
        "postprocess": dict(postprocess or {}),
        "training": dict(training or {}),
        "metrics": dict(metrics or {}),
        "created": utc_now(),
    }
    if inference:
        metadata["inference"] = dict(inference)
    return metadata


def export_savedmodel(
    keras_model: Any,
    out_dir: str | os.PathLike[str],
    *,
    name: str,
    version: str,
    architecture: str,
    features: FeatureConfig,
    context_frames: int,
    postprocess: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    inference: dict[str, int] | None = None,
    tflite: bool = False,
    overwrite: bool = False,
) -> Path:
    """Save ``keras_model`` ([B, T, n_mels] → [B, T] or [B, T, 1]) with metadata to ``out_dir``.

    Written into a temporary directory beside ``out_dir``, loaded back and compared with the
    Keras model, then renamed into place, so a failed export leaves nothing behind. ``tflite``
    also writes `tflite_flatbuffer` as ``assets/model.tflite`` (declared in ``ocml.json``) and
    checks it on LiteRT against the Keras model (within 1e-4).
    """
    tf = import_tensorflow()
    import keras

    metadata = build_metadata(
        name=name,
        version=version,
        architecture=architecture,
        features=features,
        context_frames=context_frames,
        postprocess=postprocess,
        training=training,
        metrics=metrics,
        inference=inference,
    )
    if tflite:
        metadata["tflite"] = {"file": TFLITE_FILE, "batch_size": 1}
    n_mels = features.n_mels

    def serve(log_mels):
        return tf.reshape(keras_model(log_mels, training=False), tf.shape(log_mels)[:2])

    def save(staging: Path) -> None:
        archive = keras.export.ExportArchive()
        archive.track(keras_model)
        archive.add_endpoint(
            name="serve",
            fn=serve,
            input_signature=[tf.TensorSpec([None, None, n_mels], tf.float32, name="log_mels")],
        )
        archive.write_out(str(staging), verbose=False)
        if tflite:
            (staging / "assets").mkdir(exist_ok=True)
            (staging / "assets" / TFLITE_FILE).write_bytes(tflite_flatbuffer(keras_model, n_mels))

    probe = probe_batch(n_mels)
    return write_checked(
        out_dir,
        save=save,
        metadata=metadata,
        probe=probe,
        expected=_keras_probabilities(keras_model, probe),
        what="the Keras model",
        overwrite=overwrite,
    )


def probe_batch(n_mels: int) -> np.ndarray:
    """The random log-mel batch ``[2, PROBE_FRAMES, n_mels]`` an export is checked on."""
    return np.random.default_rng(0).normal(-5.0, 3.0, (2, PROBE_FRAMES, n_mels)).astype(np.float32)


def write_checked(
    out_dir: str | os.PathLike[str],
    *,
    save: Callable[[Path], None],
    metadata: dict[str, Any],
    probe: np.ndarray,
    expected: np.ndarray,
    what: str,
    overwrite: bool = False,
) -> Path:
    """``save`` a SavedModel into a temporary directory beside ``out_dir``, add ``metadata`` as
    ``assets/ocml.json``, load it back and compare its output on ``probe`` with ``expected``
    (``what`` names their source; a declared TFLite asset is compared too, on LiteRT, within
    `TFLITE_TOLERANCE`), then rename it into place: a failed export leaves nothing."""
    text = json.dumps(metadata, indent=2, sort_keys=True, allow_nan=False) + "\n"
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise OutputError(
            "export target already exists (pass overwrite=True to replace it)", path=str(out)
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        save(staging)
        (staging / METADATA_FILE).parent.mkdir(exist_ok=True)
        (staging / METADATA_FILE).write_text(text, encoding="utf-8")
        got = open_savedmodel(staging).predict(probe)
        if not np.allclose(got, expected, atol=1e-5):
            raise ModelError(
                f"exported model differs from {what} by {np.abs(got - expected).max():.3g}",
                path=str(out),
            )
        if metadata.get("tflite"):
            lite = open_savedmodel(staging, runtime="litert").predict(probe)
            if not np.allclose(lite, expected, atol=TFLITE_TOLERANCE):
                raise ModelError(
                    f"the TFLite asset differs from {what} by "
                    f"{np.abs(lite - expected).max():.3g} (at most {TFLITE_TOLERANCE} allowed)",
                    path=str(out),
                )
        staging.chmod(0o755)  # mkdtemp makes it private; workers may run as another user
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def tflite_flatbuffer(keras_model: Any, n_mels: int) -> bytes:
    """``keras_model`` as a TFLite flatbuffer of built-in ops: ``[1, T, n_mels]`` → ``[1, T]``.

    The batch is fixed at 1 and the length left free: that is what lets a recurrent layer convert
    without TensorFlow's (Flex) list ops, and each window still runs at its exact length.
    """
    tf = import_tensorflow()
    import keras

    inputs = keras.Input(batch_shape=(1, None, n_mels), name="log_mels")
    outputs = keras.layers.Reshape((-1,))(keras_model(inputs, training=False))
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, outputs))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with contextlib.redirect_stdout(io.StringIO()), native_noise_filtered():
        try:
            return converter.convert()
        except Exception as exc:  # the converter raises many types for unsupported ops
            raise ModelError(
                f"cannot convert to TFLite with built-in ops: {type(exc).__name__}: {exc}"
            ) from exc


def _keras_probabilities(keras_model: Any, probe: np.ndarray) -> np.ndarray:
    """The Keras model's output on ``probe`` as [B, T]; ``ModelError`` if not per-frame."""
    out = np.asarray(keras_model(probe, training=False))
    if out.shape not in (probe.shape[:2], (*probe.shape[:2], 1)):
        raise ModelError(
            f"model maps {probe.shape} to {out.shape}; expected per-frame output {probe.shape[:2]}"
        )
    return out.reshape(probe.shape[:2])


def _move_into_place(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``, replacing an existing ``out`` only after the new one is whole."""
    if not out.exists():
        staging.rename(out)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    out.rename(retired / out.name)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)
