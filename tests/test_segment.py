"""``segment_file`` and ``tuned_params``: the whole pipeline in one process, on a real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ocml.pipeline.decode import Recording, probe, stream
from ocml.pipeline.features import frame_energy_db, logmel, stream_logmel
from ocml.pipeline.inference import Inference
from ocml.pipeline.model import Model
from ocml.pipeline.postprocess import PRESETS, Binarize, SegmentParams
from ocml.pipeline.result import InputInfo, ModelInfo, Result, validate
from ocml.pipeline.segment import FrameValues, file_sha256, segment_file, tuned_params
from ocml.pipeline.writers import render_json, render_smil
from tests.media import encode, speechlike, write_soundfile, write_video_with_audio, write_wav

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
    assert result.probabilities.dtype == np.float32
    np.testing.assert_allclose(result.probabilities, whole, atol=1e-5)
    assert result.input.duration == len(samples) / 16000 == 31.0


def test_snapping_keeps_each_frames_energy_and_only_narrows_segments(
    lecture: Path, tiny_model: Model
) -> None:
    plain = tuned_params(tiny_model, overrides={"pad": 0.0})
    snapping = SegmentParams.from_mapping({"snap_db": 10.0, "snap_max": 0.1}, base=plain)
    before = segment_file(lecture, tiny_model, plain)
    after = segment_file(lecture, tiny_model, snapping, block_seconds=1.3)
    assert before.energy is None
    samples = np.concatenate(list(stream(lecture)))
    expected = frame_energy_db(logmel(samples, tiny_model.features))
    np.testing.assert_array_equal(after.energy, expected)
    assert len(after.segments) == len(before.segments) > 0
    for b, a in zip(before.segments, after.segments, strict=True):
        assert b.start <= a.start < a.end <= b.end and a.end - a.start >= b.end - b.start - 0.2
    assert sum(s.end - s.start for s in after.segments) < sum(
        s.end - s.start for s in before.segments
    )
    validate(after.to_dict())


def test_result_finds_the_speech_and_validates(lecture: Path, tiny_model: Model) -> None:
    params = tuned_params(tiny_model, overrides={"pad": 0.0})
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


@pytest.mark.parametrize("expected", [0, 1, 7, 100])
def test_frame_values_hold_every_chunk_once_in_order_whatever_the_guess(expected: int) -> None:
    chunks = [np.arange(k, k + n, dtype=np.float32) for k, n in ((0, 3), (3, 0), (3, 40), (43, 9))]
    values = FrameValues(expected)
    for chunk in chunks:
        values.append(chunk)
    assert len(values) == 52
    np.testing.assert_array_equal(values.values(), np.arange(52, dtype=np.float32))
    assert values.values().dtype == np.float32


def test_features_stay_one_batch_ahead_of_a_loaded_model(
    lecture: Path, tiny_model: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 600 s lookahead is for a model still loading; with it loaded, what waits for
    inference must not depend on the recording's length (it did: a long file kept 600 s of
    features, ~15 MB, queued for most of its run; a short one never filled the queue).
    A batch here is 2 windows of 100 frames, four 0.5 s blocks: five may wait, one more is made."""
    from ocml.pipeline import segment

    monkeypatch.setitem(tiny_model.inference, "chunk_frames", 100)
    monkeypatch.setitem(tiny_model.inference, "batch_size", 2)

    made = 0
    ahead: list[int] = []

    def counted_features(blocks, cfg):
        nonlocal made
        for chunk in stream_logmel(blocks, cfg):
            made += 1
            yield chunk

    class CountedInference(Inference):
        def _windows(self, feature_chunks):
            def taken():
                for chunk in feature_chunks:
                    ahead.append(made)
                    yield chunk

            return super()._windows(taken())

    monkeypatch.setattr(segment, "stream_logmel", counted_features)
    monkeypatch.setattr(segment, "Inference", CountedInference)
    segment_file(lecture, tiny_model, PRESETS["default"], block_seconds=0.5)
    assert len(ahead) == 62
    assert max(made - taken for taken, made in enumerate(ahead, start=1)) <= 6


def test_resolve_params_order(tiny_model: Model) -> None:
    tuned = tuned_params(tiny_model)
    assert (
        tuned.min_silence == tiny_model.postprocess["min_silence"] != PRESETS["default"].min_silence
    )
    opencast = tuned_params(tiny_model, preset_name="opencast")
    assert opencast == PRESETS["opencast"]
    overridden = tuned_params(tiny_model, preset_name="opencast", overrides={"min_voice": 5})
    assert overridden == SegmentParams.from_mapping({"min_voice": 5}, base=PRESETS["opencast"])


def _three_pass_result(path: Path, model: Model, params: SegmentParams, created: str) -> Result:
    """The result as segment_file made it before the Recording: probe, stream, then a hash pass."""
    info = probe(path)
    cfg = model.features
    samples = np.concatenate(list(stream(path, sample_rate=cfg.sample_rate)))
    probs = np.concatenate(list(Inference(model)(stream_logmel([samples], cfg))))
    duration = len(samples) / cfg.sample_rate
    segments = Binarize(params)(probs, duration=duration, grid=cfg.grid)
    return Result(
        input=InputInfo(
            str(path), duration, info.sample_rate, info.channels, file_sha256(path), info.has_video
        ),
        model=ModelInfo(model.name, model.version, model.architecture, model.sha256),
        params=params,
        segments=segments,
        probabilities=probs,
        processing_seconds=1.0,
        created=created,
    )


@pytest.mark.parametrize("name", ["a.wav", "a.flac", "a.ogg", "a.mp3", "a.mp4", "film.mp4"])
def test_one_pass_gives_the_same_result_byte_for_byte(
    tmp_path: Path, tiny_model: Model, name: str
) -> None:
    """Info, length and sha256 from the one decoding pass equal probe + stream + a hash pass."""
    stereo = np.stack([speechlike(48000, 21.0, SPEECH[:3], seed=k) for k in (4, 5)], axis=1)
    path = tmp_path / name
    if name == "film.mp4":  # video first, audio 0.3 s late: the demuxer jumps between streams
        write_video_with_audio(path, stereo, 48000, audio_delay=0.3)
    elif name.endswith((".wav", ".flac", ".ogg")):
        write_soundfile(path, stereo, 48000)
    else:
        encode(path, stereo, 48000, codec=name.rsplit(".", 1)[1].replace("mp4", "aac"))
    params = tuned_params(tiny_model)
    got = segment_file(path, tiny_model, params, block_seconds=4.0)
    expected = _three_pass_result(path, tiny_model, params, got.created)
    np.testing.assert_array_equal(got.probabilities, expected.probabilities)
    timing = {"timing": None}
    assert {**got.to_dict(), **timing} == {**expected.to_dict(), **timing}
    assert render_smil(got) == render_smil(expected)
    assert render_json(got).count(b"sha256") == 2


def test_recording_hashes_bytes_the_decoder_skipped(tmp_path: Path) -> None:
    """An mp4 with its index at the end and a seek: the hash still covers every byte once."""
    path = encode(tmp_path / "a.m4a", speechlike(16000, 12.0, [(1, 5)], seed=1), 16000, codec="aac")
    with Recording.open(path, check_duration=False) as recording:
        blocks = recording.blocks(start=6.0)
        assert 5.9 * 16000 < sum(len(b) for b in blocks) == recording.samples < 6.1 * 16000
        assert recording.sha256() == file_sha256(path)
    with Recording.open(path) as recording:
        assert recording.info == probe(path)
        assert recording.sha256() == file_sha256(path)  # nothing decoded: all read by the hash


def test_a_model_failing_to_load_in_the_background_stops_decoding_cleanly(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Decoding starts before the model is there; when loading fails, the error comes out of
    segment_file and the decoding threads are stopped before the file is closed."""
    import shutil
    import threading

    from ocml.pipeline.errors import ModelError
    from ocml.pipeline.model import load_model

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "variables" / "variables.data-00000-of-00001").write_bytes(b"\0" * 64)
    source = encode(
        tmp_path / "long.mp4", speechlike(48000, 90.0, SPEECH, seed=3), 48000, codec="aac"
    )
    model = load_model(broken, background=True)
    with pytest.raises(ModelError, match="cannot load SavedModel"):
        segment_file(source, model, PRESETS["default"], block_seconds=2.0)
    assert not [t for t in threading.enumerate() if t.name == "ocml-prefetch"]
