"""Each architecture builds, trains a step, exports to the SavedModel contract and loads in the pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ocml.models.architectures import ARCHITECTURES, Built, build, frame_model
from ocml.pipeline.features import FeatureConfig
from ocml.pipeline.model import load_model
from ocml.pipeline.threads import import_tensorflow, set_inference_threads

TINY = {
    "vanilla_conv": {"window": 9, "filters": [4], "dense": 8},
    "autoencoder": {"window": 8, "filters": [4, 4], "bottleneck": 8, "readout": 4},
    "rnn": {"units": 4, "layers_count": 1},
    "crnn": {"front_filters": [4], "front_pools": [8], "units": 4},
    "tcn": {"front_filters": [], "front_pools": [], "channels": 8, "dilations": [1, 2, 4]},
}
MELS = 64


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> None:
    set_inference_threads(1)
    import_tensorflow()


@pytest.mark.train
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_builds_trains_exports_and_loads(arch: str, tmp_path: Path) -> None:
    import keras

    from ocml.models.export import export_savedmodel
    from ocml.models.train import frame_bce

    keras.utils.set_random_seed(0)
    built = build(arch, MELS, TINY[arch])
    rng = np.random.default_rng(0)
    if built.window is None:
        x = rng.normal(-5, 3, (4, 50, MELS)).astype(np.float32)
        y = (rng.random((4, 50)) > 0.5).astype(np.float32)
    else:
        x = rng.normal(-5, 3, (8, built.window, MELS)).astype(np.float32)
        y = (rng.random(8) > 0.5).astype(np.float32)
    built.model.compile(optimizer="adam", loss=frame_bce)
    before = [w.copy() for w in built.model.get_weights()]
    built.model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, built.model.get_weights()))
    model = (
        built.model
        if built.window is None
        else frame_model(built.model, built.window, np.full(MELS, -5.0))
    )
    path = export_savedmodel(
        model,
        tmp_path / arch,
        name=f"tiny-{arch}",
        version="0.0.1",
        architecture=arch,
        features=FeatureConfig(),
        context_frames=built.context_frames,
    )
    loaded = load_model(path)
    assert loaded.architecture == arch
    assert loaded.context_frames == built.context_frames
    out = loaded.predict(rng.normal(-5, 3, (3, 37, MELS)).astype(np.float32))
    assert out.shape == (3, 37)
    assert np.all((out >= 0) & (out <= 1))


@pytest.mark.parametrize("arch", ["tcn", "vanilla_conv"])
def test_context_frames_is_the_exact_receptive_field(arch: str) -> None:
    built = build(arch, MELS, TINY[arch])
    model = (
        built.model
        if built.window is None
        else frame_model(built.model, built.window, np.full(MELS, -5.0))
    )
    c = built.context_frames
    x = np.random.default_rng(1).normal(-5, 3, (1, 80, MELS)).astype(np.float32)
    base = np.asarray(model(x))[0, 20]
    far, near = x.copy(), x.copy()
    far[0, 20 + c + 1] += 10.0
    near[0, 20 + c] += 10.0
    assert np.asarray(model(far))[0, 20] == pytest.approx(base, abs=1e-6)
    assert np.asarray(model(near))[0, 20] != pytest.approx(base, abs=1e-6)


def test_unknown_architecture_and_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'cnn'"):
        build("cnn", MELS)
    with pytest.raises(ValueError, match="bad model parameters for tcn"):
        build("tcn", MELS, {"chanels": 8})
    with pytest.raises(ValueError, match="window must be"):
        build("autoencoder", MELS, {"window": 7})


def _export_crnn(built: Built, path: Path) -> Path:
    """A built CRNN written as a SavedModel at ``path`` (named after its folder)."""
    from ocml.models.export import export_savedmodel

    return export_savedmodel(
        built.model,
        path,
        name=path.name,
        version="0.0.1",
        architecture="crnn",
        features=FeatureConfig(),
        context_frames=built.context_frames,
    )


def test_time_pooled_crnn_decides_per_frame_pair_and_exports(tmp_path: Path) -> None:
    built = build("crnn", MELS, {**TINY["crnn"], "time_pool": 2})
    x = np.random.default_rng(2).normal(-5, 3, (2, 37, MELS)).astype(np.float32)
    out = np.asarray(built.model(x))
    assert out.shape == (2, 37)
    np.testing.assert_allclose(out[:, 0:36:2], out[:, 1:36:2], atol=1e-6)  # one decision per 20 ms
    path = _export_crnn(built, tmp_path / "pooled")
    np.testing.assert_allclose(load_model(path).predict(x), out, atol=1e-5)
    with pytest.raises(ValueError, match="time_pool must be a positive integer, got 0"):
        build("crnn", MELS, {**TINY["crnn"], "time_pool": 0})


def test_fine_head_lets_the_frames_of_one_pooled_step_differ_and_exports(tmp_path: Path) -> None:
    from ocml.models.architectures import FINE_HEAD

    params = {**TINY["crnn"], "time_pool": 2}
    plain, fine = build("crnn", MELS, params), build("crnn", MELS, {**params, "fine_head": True})
    assert fine.fresh == (FINE_HEAD,) and plain.fresh == ()
    for layer in plain.model.layers:  # the shared layers carry the same names and shapes
        fine.model.get_layer(layer.name).set_weights(layer.get_weights())
    x = np.random.default_rng(3).normal(-5, 3, (2, 37, MELS)).astype(np.float32)
    np.testing.assert_allclose(fine.model(x), plain.model(x), atol=1e-6)  # starts at zero
    head = fine.model.get_layer(FINE_HEAD)
    head.set_weights([np.random.default_rng(4).normal(0, 0.5, head.get_weights()[0].shape)])
    out = np.asarray(fine.model(x))
    assert np.abs(out[:, 0:36:2] - out[:, 1:36:2]).max() > 1e-3  # frames of a pair now differ
    path = _export_crnn(fine, tmp_path / "fine")
    np.testing.assert_allclose(load_model(path).predict(x), out, atol=1e-5)
    with pytest.raises(ValueError, match="fine_head must be true or false, got 'yes'"):
        build("crnn", MELS, {**params, "fine_head": "yes"})


@pytest.mark.train
def test_a_warm_start_fills_every_weight_but_a_fine_head_the_source_lacks(tmp_path: Path) -> None:
    from ocml.models.architectures import FINE_HEAD
    from ocml.models.recipe import RecipeError
    from ocml.models.train import load_warm_start

    params = {**TINY["crnn"], "time_pool": 2}
    rng = np.random.default_rng(5)
    plain = build("crnn", MELS, params, mean=rng.normal(-6, 1, MELS), std=rng.uniform(2, 4, MELS))
    path = _export_crnn(plain, tmp_path / "plain")
    warm = load_warm_start(path, MELS)
    fine = build("crnn", MELS, {**params, "fine_head": True}, mean=warm.mean, std=warm.std)
    warm.apply(fine.model, fresh=fine.fresh)
    x = rng.normal(-5, 3, (1, 301, MELS)).astype(np.float32)
    np.testing.assert_allclose(fine.model(x), plain.model(x), atol=1e-6)
    with pytest.raises(RecipeError, match=f"weight {FINE_HEAD}/kernel .* is missing there"):
        warm.apply(build("crnn", MELS, {**params, "fine_head": True}).model)
