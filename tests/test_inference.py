"""Chunked inference equals one whole-recording model call, in order and in bounded memory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ocml.pipeline.features import logmel
from ocml.pipeline.inference import Inference
from tests.conftest import synthetic_recording


@pytest.fixture(scope="module")
def features(tiny_model) -> np.ndarray:
    samples, _ = synthetic_recording(12.0, seed=5)
    return logmel(samples, tiny_model.features)


def _split(frames: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """``frames`` cut into pieces of the given sizes, cycling through them."""
    pieces, start, i = [], 0, 0
    while start < len(frames):
        pieces.append(frames[start : start + sizes[i % len(sizes)]])
        start += sizes[i % len(sizes)]
        i += 1
    return pieces


@pytest.mark.parametrize("chunk_frames", [1, 7, 100, 250])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
@pytest.mark.parametrize("n_frames", [1, 5, 100, 107, 108, 109, 250, 258, 1000, 1197])
def test_chunked_equals_whole_recording(tiny_model, features, chunk_frames, batch_size, n_frames):
    whole = features[:n_frames]
    expected = tiny_model.predict(whole[None])[0]
    infer = Inference(tiny_model, chunk_frames=chunk_frames, batch_size=batch_size)
    out = list(infer(_split(whole, [300, 1, 64, 0, 17])))
    assert all(o.dtype == np.float32 for o in out)
    np.testing.assert_allclose(np.concatenate(out), expected, atol=1e-5)


def test_default_chunking_on_a_long_recording(tiny_model):
    samples, _ = synthetic_recording(100.0, seed=6)
    features = logmel(samples, tiny_model.features)
    expected = tiny_model.predict(features[None])[0]
    out = np.concatenate(list(Inference(tiny_model)(_split(features, [3000, 2999]))))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert len(out) == len(features) > 3000 * 3


def test_chunking_and_batching_default_to_the_models_hint(tiny_model_dir, tmp_path):
    from ocml.pipeline.model import load_model

    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    meta = copy / "assets" / "ocml.json"
    meta.write_text(
        json.dumps(
            {**json.loads(meta.read_text()), "inference": {"chunk_frames": 500, "batch_size": 3}}
        )
    )
    hinted = Inference(load_model(copy))
    assert (hinted.chunk_frames, hinted.batch_size) == (500, 3)
    assert Inference(load_model(copy), batch_size=2).batch_size == 2


def test_no_frames_give_no_output(tiny_model):
    assert list(Inference(tiny_model)([])) == []
    assert list(Inference(tiny_model)([np.zeros((0, 64), np.float32)])) == []


def test_output_starts_before_the_input_ends(tiny_model, features):
    consumed = []

    def chunks():
        for piece in _split(features, [50]):
            consumed.append(len(piece))
            yield piece

    infer = Inference(tiny_model, chunk_frames=100, batch_size=2)
    first = next(infer(chunks()))
    window = 100 + 2 * tiny_model.context_frames
    assert len(first) == 100 + tiny_model.context_frames
    assert sum(consumed) <= 2 * 100 + window + 50 < len(features)


def test_rejects_chunks_of_the_wrong_width(tiny_model):
    with pytest.raises(ValueError, match=r"\[frames, 64\].*\(10, 40\)"):
        list(Inference(tiny_model)([np.zeros((10, 40), np.float32)]))


@pytest.mark.parametrize(
    ("key", "value"), [("chunk_frames", 0), ("batch_size", -1), ("batch_size", 2.0)]
)
def test_rejects_bad_sizes(tiny_model, key, value):
    with pytest.raises(ValueError, match=f"{key}.*{value!r}"):
        Inference(tiny_model, **{key: value})
