"""`ocml-train synth`: deterministic by seed, labels consistent with the audio; no TTS or apt needed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ocml.models.datasets import load_dataset
from ocml.models.synth import SynthConfig, build_pools, mix, trim, write_dataset
from tests.media import speechlike

SR = 16000


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("speech")
    for i in range(5):
        seconds = 0.8 + 0.4 * i
        x = np.concatenate(
            [
                np.zeros(SR // 5, np.float32),
                speechlike(SR, seconds, [(0, seconds)], seed=i),
                np.zeros(SR // 5, np.float32),
            ]
        )
        sf.write(folder / f"utt{i}.wav", x, SR)
    return folder


def _cfg(speech_dir: Path, seed: int) -> SynthConfig:
    return SynthConfig(
        seed=seed,
        recordings=2,
        min_seconds=15,
        max_seconds=25,
        tts_utterances=0,
        system_sources=False,
        speech_dirs=(str(speech_dir),),
    )


def test_same_seed_gives_identical_files_and_labels(tmp_path: Path, speech_dir: Path) -> None:
    a = write_dataset(_cfg(speech_dir, 7), tmp_path / "a")
    b = write_dataset(_cfg(speech_dir, 7), tmp_path / "b")
    assert a == b
    for name in ("synth-00000", "synth-00001"):
        assert (tmp_path / "a" / f"{name}.flac").read_bytes() == (
            tmp_path / "b" / f"{name}.flac"
        ).read_bytes()
        assert (tmp_path / "a" / f"{name}.json").read_text() == (
            tmp_path / "b" / f"{name}.json"
        ).read_text()


def test_other_seed_gives_other_recordings(speech_dir: Path) -> None:
    pools = build_pools(_cfg(speech_dir, 1))
    one, two = mix(pools, 0, _cfg(speech_dir, 1)), mix(pools, 0, _cfg(speech_dir, 2))
    assert one.speech != two.speech


def test_recording_depends_only_on_seed_and_index(speech_dir: Path) -> None:
    pools = build_pools(_cfg(speech_dir, 3))
    first = mix(pools, 1, _cfg(speech_dir, 3))
    mix(pools, 0, _cfg(speech_dir, 3))
    again = mix(pools, 1, _cfg(speech_dir, 3))
    assert np.array_equal(first.samples, again.samples)


def test_written_set_loads_and_labels_are_inside_the_audio(
    tmp_path: Path, speech_dir: Path
) -> None:
    manifest = write_dataset(_cfg(speech_dir, 5), tmp_path)
    items = load_dataset(tmp_path)
    assert len(items) == 2
    for item in items:
        info = sf.info(item.audio)
        speech = item.labels.speech
        assert speech, "every recording has speech"
        assert speech[-1][1] <= info.duration
        assert all(e0 < s1 for (_, e0), (s1, _) in zip(speech, speech[1:]))
        assert speech[0][0] >= 0.3  # a quiet stretch before the first word
        x, _ = sf.read(item.audio, dtype="float32")
        assert np.abs(x).max() <= 1.0
    assert manifest["pools"]["speech_clips"] == {"dir": 5}
    assert json.loads((tmp_path / "manifest.json").read_text())["speech_fraction"] > 0.1


def test_trim_cuts_silence_around_a_clip() -> None:
    x = np.concatenate([np.zeros(SR), speechlike(SR, 1.0, [(0, 1.0)], seed=0), np.zeros(SR)])
    t = trim(x, SR)
    assert 0.9 * SR <= t.size <= 1.05 * SR


def test_bad_configuration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="min_seconds"):
        SynthConfig(min_seconds=100, max_seconds=50)
    with pytest.raises(ValueError, match="does not exist"):
        SynthConfig(speech_dirs=(str(tmp_path / "nope"),))
    with pytest.raises(ValueError, match="no speech source"):
        build_pools(SynthConfig(tts_utterances=0, system_sources=False))
