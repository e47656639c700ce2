"""Loading SavedModels: metadata, prediction, and clear refusals of incompatible models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ocml.pipeline import model_metadata
from ocml.pipeline.errors import ModelError
from ocml.pipeline.features import FeatureConfig, logmel
from ocml.pipeline.model import load_model
from ocml.pipeline.model_metadata import directory_sha256, read_metadata
from ocml.pipeline.threads import set_inference_threads
from tests.conftest import TINY_POSTPROCESS, frame_labels, synthetic_recording


def _copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / "model"))


def _edit_metadata(model_dir: Path, **changes) -> None:
    file = model_dir / "assets" / "ocml.json"
    data = json.loads(file.read_text())
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    file.write_text(json.dumps(data))


def test_metadata_attributes(tiny_model, tiny_model_dir):
    assert (tiny_model.name, tiny_model.version, tiny_model.architecture) == (
        "tiny",
        "0.0.1",
        "tiny_conv",
    )
    assert tiny_model.features == FeatureConfig()
    assert tiny_model.context_frames == 4
    assert tiny_model.postprocess == TINY_POSTPROCESS
    assert tiny_model.inference == {"chunk_frames": 3000, "batch_size": 8}  # no hint: the defaults
    assert tiny_model.metadata == read_metadata(tiny_model_dir)
    assert tiny_model.path == tiny_model_dir


def test_a_load_parses_the_feature_configuration_once(tiny_model_dir, monkeypatch):
    calls = []
    parse = FeatureConfig.from_dict
    monkeypatch.setattr(
        FeatureConfig, "from_dict", classmethod(lambda cls, d: calls.append(d) or parse(d))
    )
    assert load_model(tiny_model_dir).features == FeatureConfig()
    assert len(calls) == 1


def test_sha256_is_stable_and_follows_the_files(tiny_model, tiny_model_dir, tmp_path):
    assert len(tiny_model.sha256) == 64
    copy = _copy(tiny_model_dir, tmp_path)
    assert load_model(copy).sha256 == tiny_model.sha256 == directory_sha256(tiny_model_dir)
    _edit_metadata(copy, version="0.0.2")
    assert load_model(copy).sha256 != tiny_model.sha256


@pytest.mark.parametrize(("seed", "hum"), [(101, True), (102, False)])
def test_tiny_model_separates_speech_from_silence(tiny_model, seed, hum):
    samples, segments = synthetic_recording(60.0, seed=seed, hum=hum)
    feats = logmel(samples, tiny_model.features)
    truth = frame_labels(len(feats), segments, tiny_model.features) > 0.5
    probs = tiny_model.predict(feats[None])[0]
    assert truth.mean() > 0.3
    assert ((probs > 0.5) == truth).mean() >= 0.9


def test_predict_shapes(tiny_model):
    batch = np.full((3, 50, 64), np.log(1e-6), np.float32)
    out = tiny_model.predict(batch)
    assert out.shape == (3, 50) and out.dtype == np.float32
    assert np.all((out >= 0) & (out <= 1))
    assert tiny_model.predict(np.zeros((2, 0, 64), np.float32)).shape == (2, 0)


def test_predict_rejects_wrong_shapes(tiny_model):
    with pytest.raises(ValueError, match=r"\(2, 10, 40\)"):
        tiny_model.predict(np.zeros((2, 10, 40), np.float32))
    with pytest.raises(ValueError, match=r"\(10, 64\)"):
        tiny_model.predict(np.zeros((10, 64), np.float32))


def test_missing_metadata_is_refused(tiny_model_dir, tmp_path):
    copy = _copy(tiny_model_dir, tmp_path)
    (copy / "assets" / "ocml.json").unlink()
    with pytest.raises(ModelError, match=r"assets/ocml\.json is missing") as err:
        load_model(copy)
    assert err.value.code == "model_error" and str(copy) in str(err.value)


def test_other_n_mels_is_refused(tiny_model_dir, tmp_path):
    copy = _copy(tiny_model_dir, tmp_path)
    _edit_metadata(copy, features={**FeatureConfig().to_dict(), "n_mels": 40})
    with pytest.raises(ModelError, match="n_mels: model 40, pipeline 64"):
        load_model(copy)


def test_unknown_format_version_is_refused(tiny_model_dir, tmp_path):
    copy = _copy(tiny_model_dir, tmp_path)
    _edit_metadata(copy, format_version=2)
    with pytest.raises(ModelError, match="unsupported format_version 2"):
        load_model(copy)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"context_frames": None}, r"lacks keys \['context_frames'\]"),
        ({"format_version": None}, r"lacks keys \['format_version'\]"),
        ({"context_frames": -1}, "context_frames must be an integer >= 0, got -1"),
        ({"labels": ["speech", "non-speech"]}, r"labels must be .*got \['speech', 'non-speech'\]"),
        ({"name": ""}, "name must be a non-empty string"),
        (
            {"features": {**FeatureConfig().to_dict(), "dither": 0.1}},
            "unknown feature keys.*dither",
        ),
        ({"features": {**FeatureConfig().to_dict(), "hop_length": 0}}, "hop_length.*got 0"),
        ({"postprocess": [0.5]}, r"postprocess must be an object, got \[0\.5\]"),
        (
            {"inference": {"chunk": 100}},
            "inference.chunk is unknown; known: chunk_frames, batch_size",
        ),
        (
            {"inference": {"batch_size": 0}},
            "inference.batch_size must be a positive integer, got 0",
        ),
    ],
)
def test_bad_metadata_is_refused_naming_the_problem(tiny_model_dir, tmp_path, changes, message):
    copy = _copy(tiny_model_dir, tmp_path)
    _edit_metadata(copy, **changes)
    with pytest.raises(ModelError, match=message):
        load_model(copy)


def test_the_inference_hint_is_read_over_the_defaults(tiny_model_dir, tmp_path):
    copy = _copy(tiny_model_dir, tmp_path)
    _edit_metadata(copy, inference={"batch_size": 24})
    assert load_model(copy).inference == {"chunk_frames": 3000, "batch_size": 24}


def test_unparsable_metadata_is_refused(tiny_model_dir, tmp_path):
    copy = _copy(tiny_model_dir, tmp_path)
    (copy / "assets" / "ocml.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable model metadata"):
        load_model(copy)


def test_a_directory_that_is_not_a_savedmodel_is_refused(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "ocml.json").write_text("{}")
    with pytest.raises(ModelError, match="not a SavedModel: saved_model.pb is missing"):
        load_model(tmp_path)
    with pytest.raises(ModelError, match="model directory does not exist"):
        load_model(tmp_path / "nowhere")


def test_a_damaged_savedmodel_is_refused(tiny_model_dir, tmp_path):
    copy = _copy(tiny_model_dir, tmp_path)
    (copy / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match="cannot load SavedModel"):
        load_model(copy)


def _save_module(path: Path, output, *, n_mels: int = 64) -> Path:
    """A SavedModel written with plain TensorFlow whose ``serve`` returns ``output(x)``."""
    import tensorflow as tf

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, n_mels], tf.float32)])
        def serve(self, x):
            return output(tf, x)

    module = Module()
    tf.saved_model.save(module, str(path), signatures={"serve": module.serve})
    (path / "assets").mkdir(exist_ok=True)
    metadata = {
        "format_version": 1,
        "name": "plain",
        "version": "1",
        "architecture": "mean",
        "features": FeatureConfig().to_dict(),
        "context_frames": 0,
        "labels": ["non-speech", "speech"],
    }
    (path / "assets" / "ocml.json").write_text(json.dumps(metadata))
    return path


def test_output_key_comes_from_the_signature(tmp_path):
    path = _save_module(
        tmp_path / "m", lambda tf, x: {"speech": tf.sigmoid(tf.reduce_mean(x, axis=2))}
    )
    model = load_model(path)
    x = np.random.default_rng(0).normal(size=(2, 7, 64)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), 1 / (1 + np.exp(-x.mean(axis=2))), rtol=1e-5)
    assert model.postprocess == {}


def test_wrong_output_shape_is_refused(tmp_path):
    path = _save_module(tmp_path / "m", lambda tf, x: {"p": x[:, :, :1]})
    with pytest.raises(
        ModelError, match=r"output 'p' has shape \[None, None, 1\], expected \[batch, frames\]"
    ):
        load_model(path)


def test_signature_input_must_match_the_metadata(tmp_path):
    path = _save_module(tmp_path / "m", lambda tf, x: {"p": x[:, :, 0]}, n_mels=40)
    with pytest.raises(ModelError, match=r"input .*\[None, None, 40\].*n_mels 64 from metadata"):
        load_model(path)


def test_default_model_location(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(model_metadata.importlib.resources, "files", lambda package: tmp_path)
    with pytest.raises(ModelError, match="the default model is not installed"):
        load_model()
    shutil.copytree(tiny_model_dir, tmp_path / "default")
    assert model_metadata.default_model_path() == tmp_path / "default"
    assert load_model().name == "tiny"


def test_set_inference_threads_is_idempotent_after_start(tiny_model, caplog):
    import tensorflow as tf

    set_inference_threads()
    set_inference_threads(threads=1)
    assert tf.config.threading.get_intra_op_parallelism_threads() == 1
    assert tf.config.threading.get_inter_op_parallelism_threads() == 1
    set_inference_threads(threads=2)
    assert "threads stay at 1" in caplog.text
    with pytest.raises(ValueError, match="threads.*0"):
        set_inference_threads(threads=0)


def test_threads_are_the_entry_points_and_loading_keeps_them(tiny_model_dir):
    """set_inference_threads defers to the import; loading a model (in the background too) never
    resets the threads (it once forced one thread on every load)."""
    code = f"""
import sys
from ocml.pipeline.model import load_model
from ocml.pipeline.threads import set_inference_threads
set_inference_threads(2)
assert "tensorflow" not in sys.modules
model = load_model({str(tiny_model_dir)!r}, background=True).wait()
import tensorflow as tf
print(tf.config.threading.get_intra_op_parallelism_threads(),
      tf.config.threading.get_inter_op_parallelism_threads())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split() == ["2", "2"]
    assert out.stderr == ""


def test_background_load_gives_metadata_at_once_and_errors_on_use(tiny_model_dir, tmp_path):
    model = load_model(tiny_model_dir, background=True)
    assert model.name == "tiny" and model.context_frames == 4
    assert model.wait() is model
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    pending = load_model(broken, background=True)
    assert pending.name == "tiny"
    with pytest.raises(ModelError, match="cannot load SavedModel"):
        pending.predict(np.zeros((1, 10, 64), np.float32))


def test_importing_the_pipeline_imports_no_runtime_library():
    """The runtimes' libraries are imported when a model opens on one, not with the modules."""
    code = (
        "import sys, ocml.pipeline.model, ocml.pipeline.runtimes.choice, ocml.pipeline.inference; "
        "print([m for m in ('tensorflow', 'onnxruntime', 'ai_edge_litert') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    assert out.stdout.strip() == "[]"


def test_stderr_of_other_threads_survives_a_model_loading_at_exit():
    """While a model loads in the background, fd 2 runs through a noise filter; a process that
    reports an error and exits meanwhile must still show the report (it once lost it)."""
    code = """
import os, sys, threading, time
from ocml.pipeline.native_noise import native_noise_filtered

def load():
    with native_noise_filtered():
        # as TensorFlow's C++ code does: straight to fd 2, not through Python's sys.stderr
        os.write(2, b"I0000 00:00:1.0 port.cc:153] oneDNN noise\\n")
        time.sleep(5)

threading.Thread(target=load, daemon=True).start()
time.sleep(float(sys.argv[1]))
print("error: reported", file=sys.stderr)
sys.exit(1)
"""
    for delay in ("0", "0.001", "0.2"):
        out = subprocess.run(
            [sys.executable, "-c", code, delay], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 1
        if delay == "0.2":  # the filter is surely in place: the noise is gone
            assert out.stderr == "error: reported\n", delay
        else:  # exiting at once may beat the filter's set-up, letting the noise through
            noise = "I0000 00:00:1.0 port.cc:153] oneDNN noise\n"
            assert out.stderr.replace(noise, "") == "error: reported\n", delay
