"""Session fixtures: a tiny per-frame speech model trained on synthetic audio, exported (with its
ONNX asset, as ``export_savedmodel`` writes by default) and loaded.

The model is two 'same'-padded Conv1D layers over time (receptive field ±4 frames, so its
``context_frames`` is 4); it learns in a few seconds on one CPU thread to tell harmonic,
syllable-modulated bursts (``tests.media.speechlike``) from silence, noise and a steady mains hum.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ocml.pipeline.features import FeatureConfig, logmel
from ocml.pipeline.model import Model, load_model
from ocml.pipeline.threads import import_tensorflow, set_inference_threads
from tests.media import speechlike

SR = 16000
TINY_CONTEXT_FRAMES = 4
TINY_POSTPROCESS = {
    "threshold": 0.5,
    "neg_threshold": 0.35,
    "min_speech": 0.25,
    "min_silence": 0.3,
    "pad": 0.05,
}


def synthetic_recording(
    duration: float, *, seed: int, hum: bool = True
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Speech-like bursts with pauses, over noise and (optionally) a 50 Hz hum; and the bursts.

    Bursts last 0.6–2.5 s, pauses 0.4–2.0 s; the noise level varies between -60 and -40 dBFS.
    """
    rng = np.random.default_rng(seed)
    segments: list[tuple[float, float]] = []
    t = rng.uniform(0.3, 1.5)
    while t < duration - 0.8:
        end = min(duration - 0.2, t + rng.uniform(0.6, 2.5))
        segments.append((round(t, 3), round(end, 3)))
        t = end + rng.uniform(0.4, 2.0)
    samples = speechlike(SR, duration, segments, seed=seed, noise_db=float(rng.uniform(-60, -40)))
    if hum:
        times = np.arange(len(samples)) / SR
        mains = sum(np.sin(2 * np.pi * 50 * k * times) / k for k in (1, 2, 3))
        samples = samples + (0.03 * mains).astype(np.float32)
    return samples.astype(np.float32), segments


def frame_labels(
    n_frames: int, segments: list[tuple[float, float]], cfg: FeatureConfig
) -> np.ndarray:
    """1.0 for frames whose centre lies inside a segment, else 0.0."""
    centres = cfg.grid.times(n_frames)
    labels = np.zeros(n_frames, dtype=np.float32)
    for start, end in segments:
        labels[(centres >= start) & (centres < end)] = 1.0
    return labels


def _training_set(cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Windows of 200 frames from three 40 s recordings (one without hum), with frame labels."""
    xs, ys = [], []
    for seed, hum in ((11, True), (12, False), (13, True)):
        samples, segments = synthetic_recording(40.0, seed=seed, hum=hum)
        feats = logmel(samples, cfg)
        labels = frame_labels(len(feats), segments, cfg)
        for start in range(0, len(feats) - 200, 100):
            xs.append(feats[start : start + 200])
            ys.append(labels[start : start + 200])
    return np.stack(xs), np.stack(ys)


def _train_tiny_model(cfg: FeatureConfig):
    """A 2-layer Conv1D model over [B, T, n_mels] log-mels → [B, T] speech probabilities."""
    set_inference_threads()
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, cfg.n_mels))
    x = keras.layers.Rescaling(scale=1 / 7, offset=1.0)(inputs)
    x = keras.layers.Conv1D(12, 5, padding="same", activation="relu")(x)
    x = keras.layers.Conv1D(1, 5, padding="same", activation="sigmoid")(x)
    model = keras.Model(inputs, keras.layers.Reshape((-1,))(x), name="tiny_conv")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    x_train, y_train = _training_set(cfg)
    model.fit(x_train, y_train, batch_size=16, epochs=25, shuffle=True, verbose=0)
    return model


@pytest.fixture(scope="session")
def tiny_keras_model():
    """The tiny Keras model, trained once per test session."""
    return _train_tiny_model(FeatureConfig())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_keras_model) -> Path:
    """Directory of the exported tiny SavedModel."""
    return _export_tiny(tiny_keras_model, tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_tflite_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_keras_model) -> Path:
    """The same tiny model exported with a TFLite asset and without an ONNX one (runs on
    TensorFlow and on LiteRT; ``auto`` chooses between those two)."""
    return _export_tiny(
        tiny_keras_model, tmp_path_factory.mktemp("models") / "tiny", onnx=False, tflite=True
    )


def _export_tiny(keras_model, out: Path, *, onnx: bool = True, tflite: bool = False) -> Path:
    from ocml.models.export import export_savedmodel

    cfg = FeatureConfig()
    return export_savedmodel(
        keras_model,
        out,
        name="tiny",
        version="0.0.1",
        architecture="tiny_conv",
        features=cfg,
        context_frames=TINY_CONTEXT_FRAMES,
        postprocess=TINY_POSTPROCESS,
        training={"data": "synthetic speechlike bursts, 120 s", "seed": 0},
        metrics={},
        onnx=onnx,
        tflite=tflite,
    )


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path) -> Model:
    """The tiny SavedModel loaded with ``pipeline.model.load_model``."""
    return load_model(tiny_model_dir)
