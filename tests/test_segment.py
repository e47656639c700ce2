"""``segment_file`` and ``resolve_params``: the whole pipeline in one process, on a real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ocml.pipeline.decode import stream
from ocml.pipeline.features import logmel
from ocml.pipeline.model import Model
from ocml.pipeline.postprocess import PRESETS, SegmentParams
from ocml.pipeline.result import validate
from ocml.pipeline.segment import file_sha256, resolve_params, segment_file
from tests.media import encode, speechlike, write_wav

SPEECH = [(2.0, 5.5), (8.0, 9.5), (12.0, 20.0), (26.0, 28.0)]


@pytest.fixture(scope="module")
def lecture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("segment")
    return write_wav(folder / "lecture.wav", speechlike(16000, 31.0, SPEECH, seed=21), 16000)


def test_probabilities_equal_one_whole_recording_model_call(
    lecture: Path, tiny_model: Model
) -> None:
    result = segment_file(lecture, tiny_model, PRESETS["default"], block_seconds=1.3)
    samples = np.concatenate(list(stream(lecture)))
    whole = tiny_model.predict(logmel(samples, tiny_model.features)[None])[0]
    assert result.probabilities.shape == whole.shape
    np.testing.assert_allclose(result.probabilities, whole, atol=1e-5)
    assert result.input.duration == len(samples) / 16000 == 31.0


def test_result_finds_the_speech_and_validates(lecture: Path, tiny_model: Model) -> None:
    params = resolve_params(tiny_model, overrides={"pad": 0.0})
    result = segment_file(lecture, tiny_model, params)
    validate(result.to_dict())
    found = [(s.start, s.end) for s in result.segments]
    assert len(found) == len(SPEECH)
    for (start, end), (true_start, true_end) in zip(found, SPEECH):
        assert abs(start - true_start) < 0.1 and abs(end - true_end) < 0.1
    assert all(0.5 < s.confidence <= 1.0 for s in result.segments)
    assert result.input.sha256 == file_sha256(lecture)
    assert result.model.sha256 == tiny_model.sha256
    assert result.processing_seconds > 0


def test_progress_rises_to_the_duration(tmp_path: Path, tiny_model: Model) -> None:
    source = encode(
        tmp_path / "lecture.mp4", speechlike(48000, 31.0, SPEECH, seed=2), 48000, codec="aac"
    )
    calls: list[tuple[float, float]] = []
    result = segment_file(
        source,
        tiny_model,
        PRESETS["default"],
        block_seconds=5.0,
        progress=lambda done, total: calls.append((done, total)),
    )
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(calls) >= 2
    assert calls[-1] == (result.input.duration, result.input.duration)
    assert all(abs(total - 31.0) < 0.1 for _, total in calls[:-1])


def test_resolve_params_order(tiny_model: Model) -> None:
    tuned = resolve_params(tiny_model)
    assert (
        tuned.min_silence == tiny_model.postprocess["min_silence"] != PRESETS["default"].min_silence
    )
    opencast = resolve_params(tiny_model, preset_name="opencast")
    assert opencast == PRESETS["opencast"]
    overridden = resolve_params(tiny_model, preset_name="opencast", overrides={"min_voice": 5})
    assert overridden == SegmentParams.from_mapping({"min_voice": 5}, base=PRESETS["opencast"])
