"""Export a per-frame Keras model as a SavedModel that loads with TensorFlow alone.

The SavedModel's ``serve`` signature maps float32 ``[batch, frames, n_mels]`` log-mels to
``[batch, frames]`` speech probabilities; ``assets/ocml.json`` carries the metadata that
``pipeline.model_metadata`` checks when loading. By default the serving signature is also
converted to ``assets/model.onnx`` (declared in ``ocml.json``), which ``pipeline.runtimes.onnx``
runs on ONNX Runtime without TensorFlow; every asset is checked against the SavedModel on TensorFlow before the
model is written.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ocml.models.errors import TrainingInputError
from ocml.pipeline.checks import check_int, check_text
from ocml.pipeline.errors import ModelError, OutputError
from ocml.pipeline.features import FeatureConfig
from ocml.pipeline.model import open_savedmodel
from ocml.pipeline.model_metadata import (
    ASSETS,
    FORMAT_VERSION,
    LABELS,
    METADATA_FILE,
    read_metadata,
)
from ocml.pipeline.native_noise import native_noise_filtered
from ocml.pipeline.result import utc_now
from ocml.pipeline.runtimes.tensorflow import serving_signature_name
from ocml.pipeline.threads import import_tensorflow

if TYPE_CHECKING:  # TensorFlow loads only when a command exports
    import keras

__all__ = [
    "export_savedmodel",
    "add_onnx",
    "read_metadata",
    "build_metadata",
    "write_checked",
    "check_assets",
    "onnx_from_savedmodel",
]

PROBE_FRAMES = 97
"""Length of the random probe batch that checks the export against the Keras model."""
TFLITE_FILE = "model.tflite"
ONNX_FILE = "model.onnx"
ONNX_OPSET = 17
ASSET_TOLERANCE = 1e-4
"""Largest difference from the SavedModel's probabilities on TensorFlow that a runtime's asset
(ONNX, TFLite) may show on the probe batch."""


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
    """The ``assets/ocml.json`` content (format_version 1), checked by the rules of
    ``pipeline.model_metadata``."""
    for key, value in (("name", name), ("version", version), ("architecture", architecture)):
        check_text(value, name=key)
    if not isinstance(features, FeatureConfig):
        raise TrainingInputError(f"features must be a FeatureConfig, got {features!r}")
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
    keras_model: keras.Model,
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
    onnx: bool = True,
    tflite: bool = False,
    overwrite: bool = False,
) -> Path:
    """Save ``keras_model`` ([B, T, n_mels] → [B, T] or [B, T, 1]) with metadata to ``out_dir``.

    Written into a temporary directory beside ``out_dir``, loaded back and compared with the
    Keras model, then renamed into place, so a failed export leaves nothing behind. ``onnx``
    also writes the serving signature as ``assets/model.onnx`` (`onnx_from_savedmodel`);
    ``tflite`` writes `tflite_flatbuffer` as ``assets/model.tflite``; each is declared in
    ``ocml.json`` and checked on its runtime against the SavedModel (`write_checked`).
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
    if onnx:
        metadata[ASSETS["onnx"].key] = {"file": ONNX_FILE}
    if tflite:
        metadata[ASSETS["litert"].key] = {"file": TFLITE_FILE, "batch_size": 1}
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


def add_onnx(
    model_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write the SavedModel at ``model_path`` again with an ONNX asset, at ``out_dir`` (None: in
    place, replaced only once the new copy is whole and checked).

    For models exported before the asset existed: the SavedModel's files are copied unchanged
    (weights, signature, calibration, other assets) and its metadata keeps every value; only
    ``assets/model.onnx`` and its ``onnx`` entry are added, checked as `write_checked` checks
    every asset.
    """
    src = Path(model_path)
    out = src if out_dir is None else Path(out_dir)
    original = open_savedmodel(src)
    metadata = {**original.metadata, ASSETS["onnx"].key: {"file": ONNX_FILE}}

    def save(staging: Path) -> None:
        shutil.copytree(src, staging, dirs_exist_ok=True)

    probe = probe_batch(original.features.n_mels)
    return write_checked(
        out,
        save=save,
        metadata=metadata,
        probe=probe,
        expected=original.predict(probe),
        what="the original SavedModel",
        overwrite=overwrite or out_dir is None,
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
    (``what`` names their source), then rename it into place: a failed export leaves nothing.

    An ``onnx`` entry in ``metadata`` makes the ONNX asset here, from the saved SavedModel's
    serving signature (`onnx_from_savedmodel`); every declared runtime asset (ONNX, TFLite) is
    run on its runtime and refused if it differs from the SavedModel on TensorFlow by more than
    `ASSET_TOLERANCE`.
    """
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
        onnx_entry = metadata.get(ASSETS["onnx"].key)
        if onnx_entry:
            (staging / "assets" / onnx_entry["file"]).write_bytes(onnx_from_savedmodel(staging))
        check_assets(staging, probe, got, where=out)
        staging.chmod(0o755)  # mkdtemp makes it private; workers may run as another user
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def check_assets(
    path: str | os.PathLike[str],
    probe: np.ndarray,
    reference: np.ndarray,
    *,
    where: str | os.PathLike[str],
) -> None:
    """Run every runtime asset that the SavedModel at ``path`` declares (ONNX, TFLite) on its
    runtime over ``probe``; ``ModelError`` (naming ``where``) if one differs from ``reference``,
    the SavedModel's output on TensorFlow, by more than `ASSET_TOLERANCE`."""
    metadata = read_metadata(path)
    for runtime, asset in ASSETS.items():
        if not metadata.get(asset.key):
            continue
        other = open_savedmodel(path, runtime=runtime).predict(probe)
        error = float(np.abs(other - reference).max())
        if not error <= ASSET_TOLERANCE:  # NaN too
            raise ModelError(
                f"the {asset.kind} asset differs from the SavedModel on TensorFlow by "
                f"{error:.3g} (at most {ASSET_TOLERANCE} allowed); not written",
                path=str(where),
            )


def tflite_flatbuffer(keras_model: keras.Model, n_mels: int) -> bytes:
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


def onnx_from_savedmodel(path: str | os.PathLike[str]) -> bytes:
    """The serving signature of the SavedModel at ``path`` as a serialised ONNX model.

    Converted in-process with tf2onnx (opset `ONNX_OPSET`) the way its command line converts a
    SavedModel (the signature frozen with its captured constants): input and output named and
    shaped as in the signature, so batch and frame axes stay free. TensorFlow's ``Log1p`` (the
    calibration's logit), which tf2onnx does not convert, becomes ``Log(x + 1)``
    (`_log1p_as_log`). ``ModelError`` when the converter is missing or fails.
    """
    tf = import_tensorflow()
    try:
        import tf2onnx
        from tf2onnx import tf_loader
    except ImportError as exc:
        raise ModelError(
            f"writing the ONNX asset needs the onnx and tf2onnx packages "
            f"(pip install 'opencast-ml[train]'), or export without it ({exc})"
        ) from exc
    name = serving_signature_name(tf.saved_model.load(str(path)), path)
    tf2onnx.logging.set_level(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), native_noise_filtered():
        try:
            graph, inputs, outputs, renames = tf_loader.from_saved_model(
                str(path), None, None, signatures=[name], return_tensors_to_rename=True
            )
            proto, _ = tf2onnx.convert.from_graph_def(
                graph,
                input_names=inputs,
                output_names=outputs,
                opset=ONNX_OPSET,
                custom_op_handlers={"Log1p": (_log1p_as_log, [])},
                tensors_to_rename=renames,
            )
        except Exception as exc:  # the converter raises many types for unsupported graphs
            raise ModelError(
                f"cannot convert to ONNX: {type(exc).__name__}: {exc}", path=str(path)
            ) from exc
    return proto.SerializeToString()


def _log1p_as_log(ctx: Any, node: Any, name: str, args: list[Any]) -> None:
    """tf2onnx handler for TensorFlow's ``Log1p``, which ONNX lacks: ``Log(x + 1)``, in x's
    dtype (float64 in the calibration, so the sum loses nothing that matters at 1e-4)."""
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype))
    plus_one = ctx.make_node("Add", [node.input[0], one.output[0]], op_name_scope=name)
    ctx.replace_inputs(node, [plus_one.output[0]])
    node.type = "Log"


def _keras_probabilities(keras_model: keras.Model, probe: np.ndarray) -> np.ndarray:
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
