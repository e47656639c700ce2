"""The LiteRT runtime: a TFLite asset exported beside the SavedModel gives the TensorFlow path's
probabilities within 1e-4, for a convolutional and a recurrent (CRNN, BiGRU) model, without
importing TensorFlow."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ocml.models.architectures import build
from ocml.models.export import TFLITE_FILE, export_savedmodel
from ocml.pipeline.errors import ModelError
from ocml.pipeline.features import FeatureConfig, logmel
from ocml.pipeline.inference import Inference
from ocml.pipeline.model import load_model
from ocml.pipeline.runtimes.choice import LITERT_MAX_SECONDS, choose_runtime
from tests.conftest import synthetic_recording
from tests.media import write_wav
from tests.runtimes import assert_same_result_as_tensorflow, assert_segments_without_tensorflow

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def lecture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    samples, _ = synthetic_recording(47.3, seed=5)
    return write_wav(tmp_path_factory.mktemp("litert") / "lecture.wav", samples, 16000)


def test_export_declares_the_asset(tiny_tflite_model_dir: Path) -> None:
    metadata = json.loads((tiny_tflite_model_dir / "assets" / "ocml.json").read_text())
    assert metadata["tflite"] == {"file": TFLITE_FILE, "batch_size": 1}
    assert (tiny_tflite_model_dir / "assets" / TFLITE_FILE).stat().st_size > 0


def test_segment_file_on_litert_matches_tensorflow(
    lecture: Path, tiny_tflite_model_dir: Path
) -> None:
    assert_same_result_as_tensorflow(tiny_tflite_model_dir, "litert", lecture, tolerance=TOLERANCE)


def test_litert_never_imports_tensorflow(lecture: Path, tiny_tflite_model_dir: Path) -> None:
    assert_segments_without_tensorflow(tiny_tflite_model_dir, "litert", lecture)


def test_recurrent_model_windows_and_tail_match(tmp_path: Path) -> None:
    """A CRNN with a BiGRU (the shipped model's family), untrained, over windows and a short tail."""
    import keras

    keras.utils.set_random_seed(3)
    cfg = FeatureConfig()
    params = {"front_filters": [4, 4], "front_pools": [4, 4], "units": 6, "time_pool": 2}
    built = build("crnn", cfg.n_mels, params)
    path = export_savedmodel(
        built.model,
        tmp_path / "crnn",
        name="crnn-lite",
        version="0.0.1",
        architecture="crnn",
        features=cfg,
        context_frames=built.context_frames,
        inference={"chunk_frames": 300, "batch_size": 3},
        tflite=True,
    )
    samples, _ = synthetic_recording(31.7, seed=9)
    feats = logmel(samples, cfg)
    chunks = [feats[i : i + 437] for i in range(0, len(feats), 437)]
    expected = np.concatenate(list(Inference(load_model(path))(chunks)))
    got = np.concatenate(list(Inference(load_model(path, runtime="litert"))(chunks)))
    assert got.shape == expected.shape == (len(feats),)
    assert np.abs(got - expected).max() < TOLERANCE


def test_litert_needs_the_asset(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelError, match="needs the model's TFLite flatbuffer"):
        load_model(tiny_model_dir, runtime="litert")
    with pytest.raises(ModelError, match="unknown runtime 'openvino'"):
        load_model(tiny_model_dir, runtime="openvino")


@pytest.mark.parametrize(
    "entry,message",
    [
        ({"file": "../x.tflite", "batch_size": 1}, "file name in assets"),
        ({"file": TFLITE_FILE, "batch_size": 4}, "batch_size must be 1"),
        ("model.tflite", "object with keys file and batch_size"),
    ],
)
def test_bad_tflite_entries_are_refused(
    tiny_tflite_model_dir: Path, tmp_path: Path, entry: object, message: str
) -> None:
    copy = tmp_path / "m"
    shutil.copytree(tiny_tflite_model_dir, copy)
    meta_file = copy / "assets" / "ocml.json"
    metadata = json.loads(meta_file.read_text())
    metadata["tflite"] = entry
    meta_file.write_text(json.dumps(metadata))
    with pytest.raises(ModelError, match=message):
        load_model(copy)


def test_damaged_asset_is_a_model_error(tiny_tflite_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m"
    shutil.copytree(tiny_tflite_model_dir, copy)
    (copy / "assets" / TFLITE_FILE).write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelError, match="cannot load the TFLite asset"):
        load_model(copy, runtime="litert")


def test_auto_picks_litert_only_for_short_jobs_of_models_with_the_asset() -> None:
    lite = {"tflite": {"file": TFLITE_FILE, "batch_size": 1}}
    assert choose_runtime("auto", lite, 600.0) == "litert"
    assert choose_runtime("auto", lite, LITERT_MAX_SECONDS + 1) == "tensorflow"
    assert choose_runtime("auto", lite, math.inf) == "tensorflow"  # a worker's steady state
    assert choose_runtime("auto", {}, 600.0) == "tensorflow"
    assert choose_runtime("litert", {}, math.inf) == "litert"  # asked for: load_model decides


def test_ocml_segment_runtime_auto_and_litert(lecture: Path, tiny_tflite_model_dir: Path, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCML_")}
    results = {}
    for runtime in ("tensorflow", "litert", "auto"):
        out = tmp_path / runtime
        subprocess.run(
            [str(Path(sys.executable).with_name("ocml")), "segment", str(lecture), "-o", str(out)]
            + ["--model", str(tiny_tflite_model_dir), "--runtime", runtime, "-q"],
            check=True,
            capture_output=True,
            env=env,
            timeout=300,
        )
        result = json.loads((out / "lecture.json").read_text())
        spans = [(s["start"], s["end"]) for s in result["segments"]]
        results[runtime] = (spans, result["input"], result["model"])
        confidences = [s["confidence"] for s in result["segments"]]
        np.testing.assert_allclose(confidences, results.setdefault("conf", confidences), atol=2e-4)
    assert results["tensorflow"] == results["litert"] == results["auto"]
