"""The ONNX Runtime path: the ONNX asset that export writes beside the SavedModel gives the
TensorFlow path's probabilities within 1e-4 (the tiny model, the shipped CRNN over a real
recording), the same segments through ``ocml segment``, and never imports TensorFlow."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ocml.models.export import ONNX_FILE, add_onnx, check_assets, onnx_from_savedmodel, probe_batch
from ocml.pipeline.errors import ModelError
from ocml.pipeline.features import logmel
from ocml.pipeline.inference import Inference
from ocml.pipeline.model import load_model
from ocml.pipeline.model_metadata import read_metadata
from ocml.pipeline.runtimes.choice import (
    LITERT_MAX_SECONDS,
    choose_runtime,
    runtime_depends_on_duration,
)
from ocml.pipeline.threads import import_tensorflow
from tests.conftest import synthetic_recording
from tests.media import write_wav
from tests.runtimes import assert_same_result_as_tensorflow, assert_segments_without_tensorflow

TOLERANCE = 1e-4
SAMPLE = Path(__file__).resolve().parent / "data" / "lecture-sample.flac"


@pytest.fixture(scope="module")
def lecture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    samples, _ = synthetic_recording(47.3, seed=5)
    return write_wav(tmp_path_factory.mktemp("onnx") / "lecture.wav", samples, 16000)


def _copy(model: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    return copy


def _edit_metadata(model: Path, **changes: object) -> None:
    file = model / "assets" / "ocml.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), **changes}))


def test_export_writes_and_declares_the_asset(tiny_model_dir: Path) -> None:
    assert read_metadata(tiny_model_dir)["onnx"] == {"file": ONNX_FILE}
    assert (tiny_model_dir / "assets" / ONNX_FILE).stat().st_size > 0


def test_export_without_onnx_has_no_asset(tiny_tflite_model_dir: Path) -> None:
    assert "onnx" not in read_metadata(tiny_tflite_model_dir)
    assert not (tiny_tflite_model_dir / "assets" / ONNX_FILE).exists()


def test_segment_file_on_onnx_matches_tensorflow(lecture: Path, tiny_model_dir: Path) -> None:
    assert_same_result_as_tensorflow(tiny_model_dir, "onnx", lecture, tolerance=TOLERANCE)


def test_shipped_model_on_onnx_matches_tensorflow_over_a_real_recording() -> None:
    """The shipped CRNN (BiGRU as ONNX loops, calibration with Log1p), the bundled recording, the
    model's own chunking and batching, windows and tail."""
    import soundfile

    reference, onnx = load_model(runtime="tensorflow"), load_model(runtime="onnx")
    samples, rate = soundfile.read(SAMPLE, dtype="float32")
    assert rate == reference.features.sample_rate
    feats = logmel(samples, reference.features)
    chunks = [feats[i : i + 1111] for i in range(0, len(feats), 1111)]
    expected = np.concatenate(list(Inference(reference)(chunks)))
    got = np.concatenate(list(Inference(onnx)(chunks)))
    assert got.shape == expected.shape == (len(feats),)
    assert np.abs(got - expected).max() < TOLERANCE


def test_onnx_never_imports_tensorflow() -> None:
    assert_segments_without_tensorflow(None, "onnx", SAMPLE)


def test_ocml_segment_gives_the_same_segments_on_onnx_and_tensorflow(tmp_path: Path) -> None:
    """The bundled sample through the whole command, shipped model: the default runtime (auto,
    which picks onnx for it), onnx and tensorflow give identical segments."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCML_")}
    results = {}
    for runtime in ("tensorflow", "onnx", None):
        out = tmp_path / str(runtime)
        subprocess.run(
            [str(Path(sys.executable).with_name("ocml")), "segment", str(SAMPLE), "-o", str(out)]
            + ["-q", "--format", "json,smil", *(["--runtime", runtime] if runtime else [])],
            check=True,
            capture_output=True,
            env=env,
            timeout=300,
        )
        result = json.loads((out / "lecture-sample.json").read_text())
        results[runtime] = (result["segments"], result["input"], result["model"])
    assert results["tensorflow"][0]  # the sample holds speech
    assert results["tensorflow"] == results["onnx"] == results[None]


def test_auto_picks_onnx_whenever_the_model_has_the_asset() -> None:
    both = {"onnx": {"file": ONNX_FILE}, "tflite": {"file": "model.tflite", "batch_size": 1}}
    for seconds in (60.0, LITERT_MAX_SECONDS + 1, math.inf):
        assert choose_runtime("auto", both, seconds) == "onnx"
        assert choose_runtime("tensorflow", both, seconds) == "tensorflow"
    assert not runtime_depends_on_duration(both)
    assert runtime_depends_on_duration({"tflite": both["tflite"]})
    assert not runtime_depends_on_duration({})
    assert choose_runtime("auto", read_metadata(Path(load_model().path)), math.inf) == "onnx"


def test_onnx_needs_the_asset(tiny_tflite_model_dir: Path) -> None:
    with pytest.raises(ModelError, match="runtime onnx needs the model's ONNX model in assets/"):
        load_model(tiny_tflite_model_dir, runtime="onnx")


@pytest.mark.parametrize(
    "entry,message",
    [
        ({"file": "../x.onnx"}, "onnx.file must be a file name in assets/, got '../x.onnx'"),
        ({"file": ""}, "onnx.file must be a file name in assets/"),
        ({"file": ONNX_FILE, "batch_size": 1}, "onnx must be an object with keys file, got"),
        (ONNX_FILE, "onnx must be an object with keys file, got 'model.onnx'"),
    ],
)
def test_bad_onnx_entries_are_refused(
    tiny_model_dir: Path, tmp_path: Path, entry: object, message: str
) -> None:
    copy = _copy(tiny_model_dir, tmp_path)
    _edit_metadata(copy, onnx=entry)
    with pytest.raises(ModelError, match=message):
        read_metadata(copy)


def test_missing_asset_is_a_model_error_naming_the_file(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    copy = _copy(tiny_model_dir, tmp_path)
    (copy / "assets" / ONNX_FILE).unlink()
    with pytest.raises(
        ModelError, match="the ONNX model that assets/ocml.json declares is missing"
    ):
        load_model(copy, runtime="onnx")
    with pytest.raises(ModelError, match=re.escape(str(copy / "assets" / ONNX_FILE))):
        load_model(copy, runtime="onnx")


def test_damaged_asset_is_a_model_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = _copy(tiny_model_dir, tmp_path)
    (copy / "assets" / ONNX_FILE).write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="cannot load the ONNX asset") as raised:
        load_model(copy, runtime="onnx", background=True).wait()
    assert str(copy / "assets" / ONNX_FILE) in str(raised.value)


def test_an_asset_that_differs_from_the_savedmodel_is_refused(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The check export runs before writing: another model's ONNX under this model's name."""
    tf = import_tensorflow()

    class Other(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, 64], tf.float32, name="x")])
        def serve(self, x):
            return {"p": tf.sigmoid(tf.reduce_mean(x, axis=-1))}

    other = Other()
    tf.saved_model.save(other, str(tmp_path / "other"), signatures={"serve": other.serve})
    copy = _copy(tiny_model_dir, tmp_path)
    (copy / "assets" / ONNX_FILE).write_bytes(onnx_from_savedmodel(tmp_path / "other"))
    probe = probe_batch(64)
    reference = load_model(copy, runtime="tensorflow").predict(probe)
    with pytest.raises(ModelError, match=r"the ONNX model asset differs .* by 0\.\d+"):
        check_assets(copy, probe, reference, where=copy)
    check_assets(tiny_model_dir, probe, reference, where=tiny_model_dir)


def test_log1p_converts_as_log_of_one_plus(tmp_path: Path) -> None:
    """tf2onnx has no Log1p; the export's handler writes Log(x + 1), in float32 and float64."""
    tf = import_tensorflow()
    import onnxruntime

    class Log1p(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, 64], tf.float32, name="x")])
        def serve(self, x):
            wide = tf.math.log1p(tf.cast(x, tf.float64))
            return {"y": tf.reduce_mean(tf.math.log1p(x), -1) + tf.cast(wide[..., 0], tf.float32)}

    module = Log1p()
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serve": module.serve})
    session = onnxruntime.InferenceSession(
        onnx_from_savedmodel(tmp_path / "m"), providers=["CPUExecutionProvider"]
    )
    x = np.random.default_rng(1).uniform(-0.9, 5.0, (2, 33, 64)).astype(np.float32)
    (got,) = session.run(None, {"x": x})
    expected = np.log1p(x).mean(-1) + np.log1p(x[..., 0].astype(np.float64))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_add_onnx_keeps_the_model_and_adds_only_the_asset(
    tiny_tflite_model_dir: Path, tmp_path: Path
) -> None:
    copy = _copy(tiny_tflite_model_dir, tmp_path)
    before = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert add_onnx(copy) == copy
    after = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    metadata = Path("assets/ocml.json")
    assert set(after) == set(before) | {Path("assets") / ONNX_FILE}
    assert all(after[name] == data for name, data in before.items() if name != metadata)
    assert json.loads(after[metadata]) == {
        **json.loads(before[metadata]),
        "onnx": {"file": ONNX_FILE},
    }
    probe = probe_batch(64)
    np.testing.assert_allclose(
        load_model(copy, runtime="onnx").predict(probe),
        load_model(copy, runtime="tensorflow").predict(probe),
        atol=TOLERANCE,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging left behind
