"""`ocml-train synth`: deterministic by seed, labels consistent with the audio; no TTS or apt needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from ocml.models import sounds, sources
from ocml.models.clips import trim, utterance_spans
from ocml.models.dataset_writer import write_dataset
from ocml.models.datasets import load_dataset
from ocml.models.pools import SynthConfig, build_pools, config_from_recipe
from ocml.models.sounds import EVENTS, babble, event
from ocml.models.synth import mix
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


def _cfg(speech_dir: Path, seed: int, **changes: Any) -> SynthConfig:
    return SynthConfig(
        **changes,
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
    labelled = sum(e - s for item in items for s, e in item.labels.speech) / 60
    assert list(manifest["speech_minutes_by_source"]) == ["dir"]
    assert manifest["speech_minutes_by_source"]["dir"] == pytest.approx(labelled, abs=0.15)
    assert (
        manifest["speech_minutes_by_language"]["none"]
        == manifest["speech_minutes_by_source"]["dir"]
    )
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
    with pytest.raises(ValueError, match=r"rt60_max must be in \[0.2, 3\] seconds, got 0.1"):
        SynthConfig(rt60_max=0.1)


def test_rt60_max_bounds_the_rooms_and_keeps_the_default_data(speech_dir: Path) -> None:
    pools = build_pools(_cfg(speech_dir, 5))
    rooms = [mix(pools, i, _cfg(speech_dir, 5, rt60_max=2.0)).meta["rt60"] for i in range(12)]
    assert any(r and r > 0.9 for r in rooms) and all(r is None or r <= 2.0 for r in rooms)
    same = mix(pools, 0, _cfg(speech_dir, 5)).speech
    assert mix(pools, 0, _cfg(speech_dir, 5, rt60_max=0.9)).speech == same


def test_second_speaker_db_quietens_only_recordings_with_a_second_speaker(
    speech_dir: Path,
) -> None:
    with pytest.raises(ValueError, match=r"second_speaker_db must be in \[0, 30\] dB, got 40"):
        SynthConfig(second_speaker_db=40)
    pools = build_pools(_cfg(speech_dir, 6))
    plain = [mix(pools, i, _cfg(speech_dir, 6)) for i in range(10)]
    quiet = [mix(pools, i, _cfg(speech_dir, 6, second_speaker_db=20.0)) for i in range(10)]
    seconds = [m.meta["second_speaker_clips"] for m in plain]
    assert 0 in seconds and any(seconds), seconds
    for a, b, n in zip(plain, quiet, seconds, strict=True):  # the same draws up to a second voice
        assert np.array_equal(a.samples, b.samples) == (n == 0)
        assert a.speech == b.speech if n == 0 else b.meta["second_speaker_clips"] > 0


def test_a_clip_is_labelled_sentence_by_sentence() -> None:
    one = speechlike(SR, 1.0, [(0, 1.0)], seed=1)
    two = speechlike(SR, 0.6, [(0, 0.6)], seed=2)
    x = np.concatenate([one, np.zeros(SR // 2, np.float32), two, np.zeros(SR // 10), one])
    spans = utterance_spans(x, SR)
    assert len(spans) == 2, "the 0.5 s pause splits, the 0.1 s pause does not"
    (a0, a1), (b0, b1) = spans
    assert a0 == 0 and abs(a1 - SR) <= SR // 50
    assert abs(b0 - int(1.5 * SR)) <= SR // 50 and b1 == x.size


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_recorded_sources_read_only_the_allowed_languages(tmp_path: Path) -> None:
    tux = tmp_path / "tuxpaint"
    for lang in ("fr", "ro", "bg", "el", "da"):
        _touch(tux / "animals" / f"cat_desc_{lang}.ogg")
    _touch(tux / "animals" / "cat_desc.ogg")
    _touch(tux / "animals" / "cat_ro.ogg")  # a spoken stamp name, not a description
    found = {(f.language, f.path.name) for f in sources.tuxpaint_files(tux)}
    assert found == {("fr", "cat_desc_fr.ogg"), ("da", "cat_desc_da.ogg"), ("en", "cat_desc.ogg")}

    kt = tmp_path / "ktuberling"
    for lang in ("ca", "ro", "el", "da", "fr", "sr@latin"):
        _touch(kt / lang / "hat.ogg")
    assert {f.voice for f in sources.ktuberling_files(kt)} == {
        "ktuberling-ca",
        "ktuberling-sr@latin",
    }

    hw = tmp_path / "hedgewars"
    _touch(hw / "Default_ru" / "Hello.ogg")
    _touch(hw / "Pirate" / "Ahoy.ogg")
    assert {(f.voice, f.language) for f in sources.hedgewars_files(hw)} == {
        ("hedgewars-Default_ru", "ru"),
        ("hedgewars-Pirate", "en"),
    }


def test_val_and_reserved_languages_are_not_in_the_allow_lists() -> None:
    val = {"ro", "bg", "el"}
    reserved_ktuberling = {"de", "fr", "nl", "cs", "ru", "uk", "it", "es", "da", "hu"}
    assert not val & set(sources.TUXPAINT_LANGUAGES)
    assert not (val | reserved_ktuberling) & set(sources.KTUBERLING_LANGUAGES)
    assert all("/en" in d or "alsa" in d for d in sources.SPEECH_DIRS)


@pytest.mark.parametrize("kind", EVENTS)
def test_every_lecture_hall_event_is_finite_and_audible(kind: str) -> None:
    x = event(np.random.default_rng(0), kind, SR)
    assert x.dtype == np.float32 and x.size >= SR // 500
    assert np.isfinite(x).all() and np.abs(x).max() > 0


def test_hiss_is_steady_noise_switched_on_and_off_quickly() -> None:
    steady = []
    for seed in range(20):
        x = event(np.random.default_rng(seed), "hiss", SR)
        assert 0.3 * SR <= x.size <= 4 * SR
        assert x[0] == 0 and x[-1] == 0  # ramps of 2–100 ms at both ends
        frames = x[: x.size // 1600 * 1600].reshape(-1, 1600)  # 100 ms frames
        level = np.sqrt((frames.astype(np.float64) ** 2).mean(1))[1:-1]
        steady.append(np.mean((level > np.median(level) / 3) & (level < np.median(level) * 3)))
    assert np.median(steady) == 1.0  # brown noise wanders; most draws hold their level


def test_music_sources_are_finite_and_the_midi_file_is_well_formed() -> None:
    rng = np.random.default_rng(3)
    sung = sources.sung_tones(rng, 2.0, SR)
    assert (
        sung.size == 2 * SR and np.isfinite(sung).all() and np.abs(sung).max() == pytest.approx(1)
    )
    midi = sources._midi_file(rng, 8.0)
    assert midi[:4] == b"MThd" and midi[14:18] == b"MTrk"
    assert int.from_bytes(midi[18:22], "big") == len(midi) - 22
    assert midi.endswith(b"\x00\xff\x2f\x00")


def test_source_weights_choose_the_speakers(tmp_path: Path, speech_dir: Path) -> None:
    cfg = config_from_recipe(
        {"recordings": 1, "min_seconds": 15, "max_seconds": 20, "tts_utterances": 0},
        weights={"dir": 2.0},
        system_sources=False,
        speech_dirs=(str(speech_dir),),
    )
    assert cfg.weight("dir") == 2.0 and cfg.weight("tuxpaint") > 0
    assert mix(build_pools(cfg), 0, cfg).meta["main_voice"].startswith("dir/")
    with pytest.raises(ValueError, match="source weight"):
        config_from_recipe({}, weights={"no-such-source": 1.0})
    silenced = config_from_recipe(
        {"tts_utterances": 0}, weights={"dir": 0.0}, system_sources=False,
        speech_dirs=(str(speech_dir),),
    )  # fmt: skip
    with pytest.raises(ValueError, match="no speech source"):
        build_pools(silenced)


def test_a_recording_with_a_room_puts_the_other_sounds_in_it_too(
    speech_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The voice and the events and music are reverberated with the same RT60; a recording
    without a room has neither, so a room never means speech. Crowd babble has a far room of its
    own (RT60 of at least 0.5 s)."""
    pools = build_pools(_cfg(speech_dir, 4))
    calls: list[float] = []
    real = sounds.room_impulse

    def spy(rng: np.random.Generator, rt60: float, sr: int) -> np.ndarray:
        calls.append(rt60)
        return real(rng, rt60, sr)

    monkeypatch.setattr(sounds, "room_impulse", spy)
    rooms = 0
    for index in range(8):
        calls.clear()
        rt60 = mix(pools, index, _cfg(speech_dir, 4)).meta["rt60"]
        own = [c for c in calls if c != rt60]
        assert calls.count(rt60) == (2 if rt60 else 0)
        assert all(c >= 0.5 for c in own)
        rooms += bool(rt60)
    assert 0 < rooms < 8


def test_babble_is_a_crowd_not_one_voice(speech_dir: Path) -> None:
    """Babble (labelled non-speech) has the steady envelope of many voices: its 100 ms levels
    vary far less than one speaker's, whose pauses drop to silence."""
    pools = build_pools(_cfg(speech_dir, 2))
    n = SR * 20
    crowd = babble(np.random.default_rng(3), n, SR, pools.speech)
    one = np.zeros(n, np.float32)
    t = 0
    for clip in pools.speech * 10:
        x = clip.samples[: n - t]
        one[t : t + x.size] = x
        t += x.size + SR // 2
        if t >= n:
            break

    def spread(x: np.ndarray) -> float:
        level = np.sqrt((x[: n // 1600 * 1600].reshape(-1, 1600) ** 2).mean(axis=1) + 1e-12)
        return float(level.std() / level.mean())

    assert crowd.size == n and np.isfinite(crowd).all()
    assert abs(float(np.sqrt(np.mean(crowd**2))) - 1.0) < 1e-3
    assert spread(crowd) < 0.5 * spread(one)


def test_a_recording_through_a_channel_records_it_and_its_condition(speech_dir: Path) -> None:
    """With ``channels`` every recording's manifest names its channel; the evaluation groups
    recordings by it (a codec by name) and by the kind of background."""
    from ocml.models.conditions import channel_group

    cfg = _cfg(speech_dir, 6, channels=1.0)
    pools = build_pools(cfg)
    metas = [mix(pools, i, cfg).meta for i in range(6)]
    assert all(m["channel"]["steps"] for m in metas)
    assert all(m["noise"] in ("synthetic", "recorded", "babble") for m in metas)
    assert channel_group({"steps": []}) == "direct"
    assert channel_group({"steps": [{"kind": "band"}, {"kind": "codec", "name": "opus"}]}) == (
        "codec opus"
    )
    assert channel_group({"steps": [{"kind": "gate"}, {"kind": "band"}]}) == "band"
