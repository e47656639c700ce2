"""A copy of a shipped SavedModel with a TFLite asset, for measuring the LiteRT runtime.

``ocml-train export --tflite`` adds the asset when a model is exported from its training run; the
shipped default model was exported before that existed and its run is not in the repository. For
an uncalibrated model (1.0.0 and earlier; a calibrated one is refused with what to do instead) this
rebuilds its Keras model from the recipe in its metadata, takes the weights from the SavedModel's
variables and the feature standardisation from the two constants the Normalization layer left in
its graph, checks the rebuilt model against the SavedModel (1e-5), and exports it again with
``tflite=True`` (which checks the flatbuffer on LiteRT within 1e-4).

    python benchmarks/litert_model.py [--model PATH] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ocml.pipeline.model_metadata import read_metadata  # noqa: E402
from ocml.pipeline.threads import import_tensorflow, set_inference_threads  # noqa: E402

DEFAULT_MODEL = ROOT / "models" / "pretrained" / "default"
CACHE = ROOT / "benchmarks" / ".cache"


def standardisation(path: Path, n_mels: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation baked into the SavedModel's graph by the Normalization layer."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import tensor_util

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((path / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    found = {
        n.name: tensor_util.MakeNdarray(n.attr["value"].tensor).reshape(-1)
        for n in nodes
        if n.op == "Const"
        and [d.size for d in n.attr["value"].tensor.tensor_shape.dim] == [1, 1, n_mels]
    }
    if len(found) != 2:
        raise SystemExit(f"{path}: expected 2 standardisation constants, found {sorted(found)}")
    variance = next(v for v in found.values() if (v > 0).all())
    mean = next(v for v in found.values() if v is not variance)
    return mean, np.sqrt(variance)


def rebuild(path: Path):
    """The SavedModel's Keras model, rebuilt from its recipe and weights."""
    tf = import_tensorflow()
    from ocml.models.architectures import build

    metadata = read_metadata(path)
    if "calibration" in metadata:
        raise SystemExit(
            f"{path}: a calibrated model (the shipped default since 2.0.0) keeps its calibration "
            "outside the Keras model and cannot be rebuilt here; give its training run a TFLite "
            "asset with `ocml-train export RUN OUT --tflite` and pass OUT as --litert-model"
        )
    recipe = metadata["training"]["recipe"]
    n_mels = metadata["features"]["n_mels"]
    mean, std = standardisation(path, n_mels)
    built = build(recipe["arch"], n_mels, recipe["model"], mean=mean, std=std)
    loaded = tf.saved_model.load(str(path))
    variables = {v.name.removesuffix(":0"): v for v in loaded.variables}
    for weight in built.model.weights:
        weight.assign(variables[weight.path].numpy())
    probe = np.random.default_rng(0).normal(-5, 3, (2, 777, n_mels)).astype(np.float32)
    signature = loaded.signatures["serve"]
    (reference,) = signature(log_mels=tf.constant(probe)).values()
    rebuilt = np.asarray(built.model(probe, training=False)).reshape(probe.shape[:2])
    error = np.abs(rebuilt - reference.numpy()).max()
    if error > 1e-5:
        raise SystemExit(f"{path}: the rebuilt Keras model differs by {error:.3g}")
    return built.model, metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=CACHE / "default-litert")
    args = parser.parse_args(argv)
    set_inference_threads(1)
    from ocml.models.export import export_savedmodel
    from ocml.pipeline.features import FeatureConfig

    keras_model, metadata = rebuild(args.model)
    export_savedmodel(
        keras_model,
        args.out,
        name=metadata["name"],
        version=metadata["version"],
        architecture=metadata["architecture"],
        features=FeatureConfig.from_dict(metadata["features"]),
        context_frames=metadata["context_frames"],
        postprocess=metadata.get("postprocess"),
        training=metadata.get("training"),
        metrics=metadata.get("metrics"),
        inference=metadata.get("inference"),
        tflite=True,
        overwrite=True,
    )
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
