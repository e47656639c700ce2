"""Export to SavedModel: the serve signature, the metadata asset, atomicity, loading without Keras."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from ocml.models.export import export_savedmodel, read_metadata
from ocml.pipeline.errors import ModelError, OutputError
from ocml.pipeline.features import FeatureConfig
from ocml.pipeline.model import load_model, open_savedmodel

ROOT = Path(__file__).resolve().parent.parent


def _conv_model(n_mels: int = 64, *, keep_channel: bool = False):
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, n_mels))
    x = keras.layers.Conv1D(1, 3, padding="same", activation="sigmoid")(inputs)
    return keras.Model(inputs, x if keep_channel else keras.layers.Reshape((-1,))(x))


def _export(model, out: Path, **overrides) -> Path:
    kwargs = dict(
        name="t", version="1.0.0", architecture="conv", features=FeatureConfig(), context_frames=1
    )
    return export_savedmodel(model, out, **{**kwargs, **overrides})


def test_layout_and_metadata(tiny_model_dir):
    assert {p.name for p in tiny_model_dir.iterdir()} >= {"saved_model.pb", "variables", "assets"}
    data = json.loads((tiny_model_dir / "assets" / "ocml.json").read_text())
    assert data == read_metadata(tiny_model_dir)
    assert data["format_version"] == 1
    assert data["labels"] == ["non-speech", "speech"]
    assert data["features"] == FeatureConfig().to_dict()
    assert (data["name"], data["version"], data["architecture"], data["context_frames"]) == (
        "tiny",
        "0.0.1",
        "tiny_conv",
        4,
    )
    assert data["training"]["seed"] == 0 and data["metrics"] == {}
    assert datetime.strptime(data["created"], "%Y-%m-%dT%H:%M:%SZ")


def test_serve_signature_takes_any_length(tiny_model_dir):
    import tensorflow as tf

    sig = tf.saved_model.load(str(tiny_model_dir)).signatures["serve"]
    (spec,) = sig.structured_input_signature[1].values()
    assert spec.shape.as_list() == [None, None, 64] and spec.dtype == tf.float32
    assert [s.shape.as_list() for s in sig.structured_outputs.values()] == [[None, None]]


def test_loads_and_runs_without_keras_model_code(tiny_model, tiny_model_dir, tmp_path):
    x = np.random.default_rng(0).normal(-6, 3, (2, 40, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import tensorflow
        before = set(sys.modules)
        from ocml.pipeline.model import load_model
        probs = load_model({str(tiny_model_dir)!r}).predict(np.load({str(tmp_path / "x.npy")!r}))
        np.save({str(tmp_path / "y.npy")!r}, probs)
        print(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in ("keras", "tests") or m.startswith("ocml.models")))
        """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]"
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), tiny_model.predict(x), atol=1e-6)


def test_channel_axis_output_is_squeezed(tmp_path):
    keras_model = _conv_model(keep_channel=True)
    model = load_model(_export(keras_model, tmp_path / "m"))
    x = np.random.default_rng(2).normal(size=(1, 30, 64)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), np.asarray(keras_model(x))[..., 0], atol=1e-6)


def test_existing_target_is_kept_unless_overwrite(tmp_path):
    first = _export(_conv_model(), tmp_path / "m", version="1")
    with pytest.raises(OutputError, match="already exists"):
        _export(_conv_model(), first, version="2")
    assert read_metadata(first)["version"] == "1"
    _export(_conv_model(), first, version="2", overwrite=True)
    assert read_metadata(first)["version"] == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_failed_export_leaves_nothing(tmp_path):
    import keras

    inputs = keras.Input((None, 64))
    pooled = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(inputs))
    with pytest.raises(ModelError, match=r"expected per-frame output \(2, 97\)"):
        _export(pooled, tmp_path / "m")
    with pytest.raises(TypeError):
        _export(_conv_model(), tmp_path / "m", metrics={"auc": object()})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("name", ""), ("version", 1), ("context_frames", -1), ("features", {"n_mels": 64})],
)
def test_bad_arguments_are_refused(tmp_path, key, value):
    with pytest.raises(ValueError, match=key):
        _export(_conv_model(), tmp_path / "m", **{key: value})
    assert list(tmp_path.iterdir()) == []


def test_other_features_export_but_the_pipeline_refuses_them(tmp_path):
    path = _export(_conv_model(40), tmp_path / "m", features=FeatureConfig(n_mels=40))
    assert open_savedmodel(path).features.n_mels == 40
    with pytest.raises(ModelError, match="n_mels: model 40, pipeline 64"):
        load_model(path)
