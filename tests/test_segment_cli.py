"""``ocml segment`` end to end, as a user runs it: a real process, real files, a real SavedModel."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ocml.pipeline.result import validate
from ocml.pipeline.writers import FORMATS
from tests.media import encode, speechlike, write_video_without_audio, write_wav

OCML = str(Path(sys.executable).with_name("ocml"))
SPEECH = [(1.0, 3.0), (5.0, 7.5)]


def run_ocml(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [OCML, *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )


def good_recording(path: Path) -> Path:
    return write_wav(path, speechlike(16000, 9.0, SPEECH, seed=3), 16000)


def bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    """One file per kind of bad input, with the phrase its one-line error message must contain."""
    folder.mkdir()
    truncated = folder / "truncated.flac"
    write_wav(folder / "full.flac", speechlike(16000, 9.0, SPEECH, seed=1), 16000)
    data = (folder / "full.flac").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    (folder / "full.flac").unlink()
    (folder / "empty.wav").write_bytes(b"")
    (folder / "random.mp3").write_bytes(np.random.default_rng(0).bytes(20000))
    (folder / "notes.wav").write_text("these are lecture notes, not audio\n" * 50)
    png = b"\x89PNG\r\n\x1a\n" + np.random.default_rng(1).bytes(4000)
    (folder / "picture.mp4").write_bytes(png)
    nan = speechlike(16000, 2.0, [], seed=2)
    nan[1000:1010] = np.nan
    write_wav(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    write_wav(folder / "short.wav", np.zeros(800, np.float32), 16000)
    (folder / "a-directory.wav").mkdir()
    return {
        "missing": (folder / "missing.wav", "no such file"),
        "directory": (folder / "a-directory.wav", "is a directory"),
        "empty": (folder / "empty.wav", "file is empty"),
        "truncated": (truncated, "truncated"),
        "random": (folder / "random.mp3", "not a readable audio or video file"),
        "text": (folder / "notes.wav", "not a readable audio or video file"),
        "image": (folder / "picture.mp4", "not a readable audio or video file"),
        "no audio": (write_video_without_audio(folder / "silent-film.mp4"), "no audio stream"),
        "nan": (folder / "nan.wav", "nan or infinite sample"),
        "too short": (folder / "short.wav", "too short"),
    }


@pytest.fixture(scope="module")
def bad_call(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    """One call with a good file first, every bad input, and a good file last."""
    root = tmp_path_factory.mktemp("bad")
    out = root / "out"
    out.mkdir()
    first, last = good_recording(root / "first.wav"), good_recording(root / "last.wav")
    cases = bad_inputs(root / "inputs")
    proc = run_ocml(
        "segment",
        first,
        *(path for path, _ in cases.values()),
        last,
        "-o",
        out,
        "--model",
        tiny_model_dir,
        "--format",
        "json,smil,cutmarks,audacity,rttm",
    )
    return proc, cases, out


def test_good_files_succeed_around_bad_ones(bad_call) -> None:
    proc, _, out = bad_call
    assert proc.returncode == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}{suffix}"
        for stem in ("first", "last")
        for suffix in (".json", ".smil", ".cutmarks.json", ".txt", ".rttm")
    )
    for stem in ("first", "last"):
        result = json.loads((out / f"{stem}.json").read_text())
        validate(result)
        assert [(round(s["start"]), round(s["end"])) for s in result["segments"]] == [
            (1, 3),
            (5, 8),
        ]
    assert "10 of 12 files failed" in proc.stderr


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "directory",
        "empty",
        "truncated",
        "random",
        "text",
        "image",
        "no audio",
        "nan",
        "too short",
    ],
)
def test_each_bad_input_gets_its_own_message(bad_call, case: str) -> None:
    proc, cases, _ = bad_call
    path, phrase = cases[case]
    lines = [line for line in proc.stderr.splitlines() if str(path) in line]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"ocml: failed: {lines[0].split(': ')[2]}: {path}: ")
    assert phrase in lines[0].lower(), lines[0]
    assert "Traceback" not in proc.stderr


def test_unwritable_output_directory_fails_without_output(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    source = good_recording(tmp_path / "lecture.wav")
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked):
        proc = run_ocml("segment", source, "-o", locked, "--model", tiny_model_dir)
        nested = run_ocml("segment", source, "-o", locked / "new", "--model", tiny_model_dir)
    for call in (proc, nested):
        assert call.returncode == 1
        assert call.stderr.startswith(f"ocml: failed: output_error: {locked}")
        assert "Traceback" not in call.stderr
    assert list(locked.iterdir()) == []


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` unwritable even for root (immutable attribute), or by mode otherwise."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)


def test_output_directory_is_created(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = good_recording(tmp_path / "lecture.wav")
    proc = run_ocml(
        "segment", source, "-o", tmp_path / "results" / "2026", "--model", tiny_model_dir
    )
    assert proc.returncode == 0, proc.stderr
    validate(json.loads((tmp_path / "results" / "2026" / "lecture.json").read_text()))


def test_odd_but_valid_inputs_succeed(tmp_path: Path, tiny_model_dir: Path) -> None:
    speech = speechlike(48000, 9.0, SPEECH, seed=4)
    zeros = write_wav(tmp_path / "zeros.wav", np.zeros(16000 * 3, np.float32), 16000)
    eight = write_wav(tmp_path / "eight.wav", np.repeat(speech[:, None], 8, axis=1), 48000)
    fast = write_wav(
        tmp_path / "fast.wav", speechlike(384000, 9.0, SPEECH, seed=5), 384000, subtype="FLOAT"
    )
    named = write_wav(tmp_path / "Vorlesung Müller – Ökonomie.wav", speech, 48000)
    aac = encode(tmp_path / "lecture.mp4", speech, 48000, codec="aac")
    proc = run_ocml(
        "segment", zeros, eight, fast, named, aac, "--model", tiny_model_dir, "--probabilities"
    )
    assert proc.returncode == 0, proc.stderr
    zero_result = json.loads((tmp_path / "zeros.json").read_text())
    validate(zero_result)
    assert zero_result["segments"] == []
    for path in (eight, fast, named, aac):
        result = json.loads(path.with_suffix(".json").read_text())
        validate(result)
        assert [(round(s["start"]), round(s["end"])) for s in result["segments"]] == [
            (1, 3),
            (5, 8),
        ]
        probs = np.load(path.with_suffix(".probs.npy"))
        assert probs.dtype == np.float16 and abs(len(probs) - 898) <= 2
        assert path.with_suffix(".smil").exists()
    assert json.loads(eight.with_suffix(".json").read_text())["input"]["channels"] == 8
    assert json.loads(fast.with_suffix(".json").read_text())["input"]["sample_rate"] == 384000
    assert len(proc.stdout.strip().splitlines()) == 5


def test_opencast_preset_and_overrides_reach_the_result(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    source = good_recording(tmp_path / "lecture.wav")
    proc = run_ocml(
        "segment",
        source,
        "--model",
        tiny_model_dir,
        "--preset",
        "opencast",
        "--min-voice",
        "1",
        "--param",
        "min_voice=7",
        "-p",
        "pad_after=0.5",
        "-q",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(source.with_suffix(".json").read_text())
    assert result["params"]["min_silence"] == 10.0
    assert result["params"]["min_voice"] == 1.0
    assert result["params"]["pad_after"] == 0.5
    assert result["params"]["pad_before"] == 2.0
    assert [(s["start"], s["end"]) for s in result["segments"]] == [(0.0, 9.0)]


def test_opencast_preset_on_a_short_clip_says_why_nothing_is_left(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    # two stretches of voice 18 s apart in a 45 s clip: each far under Opencast's 60 s minimum
    clip = write_wav(
        tmp_path / "clip.wav", speechlike(16000, 45.0, [(2.0, 12.0), (30.0, 40.0)], seed=7), 16000
    )
    proc = run_ocml("segment", clip, "--model", tiny_model_dir, "--preset", "opencast", "-q")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(clip.with_suffix(".json").read_text())
    validate(result)
    dropped = result["summary"]["dropped_voice"]
    assert result["segments"] == [] and dropped["stretches"] == 2
    assert 20.0 <= dropped["seconds"] <= 30.0  # 0–12 s (the start is bridged) and 30–45 s
    assert (
        f"0 speech segments (voice under min_voice 60 s dropped: 2 stretches, "
        f"{dropped['seconds']:.1f} s)" in proc.stdout
    )
    kept = run_ocml("segment", clip, "--model", tiny_model_dir, "-q")
    assert "dropped" not in kept.stdout
    assert json.loads(clip.with_suffix(".json").read_text())["summary"]["dropped_voice"] == {
        "stretches": 0,
        "seconds": 0.0,
    }


def test_unknown_preset_and_format_are_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = good_recording(tmp_path / "lecture.wav")
    preset = run_ocml("segment", source, "--model", tiny_model_dir, "--preset", "loud")
    fmt = run_ocml("segment", source, "--model", tiny_model_dir, "--format", "json,pdf")
    assert preset.returncode != 0 and "loud" in preset.stderr
    assert fmt.returncode == 2 and "pdf" in fmt.stderr
    assert not source.with_suffix(".json").exists()


def test_probabilities_is_a_format_as_in_submit_and_watch(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    source = good_recording(tmp_path / "lecture.wav")
    proc = run_ocml(
        "segment", source, "--model", tiny_model_dir, "--format", "json,probabilities", "-q"
    )
    assert proc.returncode == 0, proc.stderr
    probs = np.load(source.with_suffix(".probs.npy"))
    assert probs.dtype == np.float16 and abs(len(probs) - 898) <= 2
    assert str(source.with_suffix(".probs.npy")) in proc.stdout
    assert not source.with_suffix(".smil").exists()
    listed = set()
    for command in ("segment", "submit", "watch"):
        shown = " ".join(run_ocml(command, "--help").stdout.split())
        listed.add(re.search(r"Comma-separated outputs: ([a-z, ]+) \(", shown).group(1))
    assert listed == {", ".join(FORMATS)}, listed


def test_settings_file_sets_defaults_and_options_override_it(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    source = good_recording(tmp_path / "lecture.wav")
    settings = tmp_path / "ocml.yaml"
    settings.write_text(
        f"model: {tiny_model_dir}\nformats: [json, rttm]\nparams: {{min_silence: 3.0, pad: 0.2}}\n"
    )
    proc = run_ocml("segment", source, "--config", settings, "--pad-after", "0.0")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.glob("lecture.*")) == [
        "lecture.json",
        "lecture.rttm",
        "lecture.wav",
    ]
    result = json.loads(source.with_suffix(".json").read_text())
    assert result["model"]["architecture"] == "tiny_conv"
    assert result["params"]["min_silence"] == 3.0
    assert (result["params"]["pad_before"], result["params"]["pad_after"]) == (0.2, 0.0)


def test_no_speech_keeps_everything_or_fails_as_asked(tmp_path: Path, tiny_model_dir: Path) -> None:
    quiet = write_wav(tmp_path / "empty-room.wav", speechlike(16000, 6.0, [], seed=5), 16000)
    kept = run_ocml(
        "segment", quiet, "--model", tiny_model_dir, "--format", "json,smil,cutmarks", "-q"
    )
    assert kept.returncode == 0, kept.stderr
    assert json.loads(quiet.with_suffix(".json").read_text())["summary"]["no_speech"] is True
    assert json.loads(tmp_path.joinpath("empty-room.cutmarks.json").read_text()) == []
    assert 'clipBegin="0ms" clipEnd="6000ms"' in quiet.with_suffix(".smil").read_text()

    out = tmp_path / "failed"
    failed = run_ocml(
        "segment",
        quiet,
        good_recording(tmp_path / "talk.wav"),
        "--model",
        tiny_model_dir,
        "-o",
        out,
        "--no-speech",
        "fail",
        "-q",
    )
    assert failed.returncode == 1
    assert "empty-room.wav: no speech found in 6.0 s" in failed.stderr
    assert sorted(p.name for p in out.iterdir()) == ["talk.json", "talk.smil"]


def test_track_identity_reaches_the_smil_of_one_input(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = good_recording(tmp_path / "lecture.wav")
    src = "https://oc.example/files/mediapackage/mp-1/track-7/presenter.mp4"
    proc = run_ocml(
        "segment",
        source,
        "--model",
        tiny_model_dir,
        "--format",
        "smil",
        "-q",
        "--track-id",
        "track-7",
        "--track-flavor",
        "presentation/source",
        "--track-src",
        src,
    )
    assert proc.returncode == 0, proc.stderr
    smil = source.with_suffix(".smil").read_text()
    assert f'name="track-src" value="{src}"' in smil and f'src="{src}"' in smil
    assert 'name="track-id" value="track-7"' in smil
    assert 'name="track-flavor" value="presentation/source"' in smil
    assert "file://" not in smil

    two = run_ocml("segment", source, source, "--model", tiny_model_dir, "--track-id", "x")
    bad = run_ocml("segment", source, "--model", tiny_model_dir, "--track-src", "/srv/x.mp4")
    assert two.returncode == 2 and "need exactly one input, got 2" in two.stderr
    assert bad.returncode == 2 and "got '/srv/x.mp4'" in bad.stderr


def test_trim_preset_and_its_options_reach_the_result(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = good_recording(tmp_path / "lecture.wav")
    proc = run_ocml(
        "segment",
        source,
        "--model",
        tiny_model_dir,
        "--preset",
        "trim",
        "--trim-min-speech",
        "2",
        "--pad",
        "0",
        "-q",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(source.with_suffix(".json").read_text())
    assert (result["params"]["trim_min_speech"], result["params"]["trim_window"]) == (2.0, 10.0)
    (segment,) = result["segments"]
    assert segment["start"] == pytest.approx(SPEECH[0][0], abs=0.15)
    assert segment["end"] == pytest.approx(SPEECH[-1][1], abs=0.15)


def test_bad_settings_key_is_named(tmp_path: Path) -> None:
    settings = tmp_path / "ocml.yaml"
    settings.write_text("min_silense: 3\n")
    proc = run_ocml("segment", tmp_path / "x.wav", "--config", settings)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("ocml: failed: bad_settings: ") and "min_silense" in proc.stderr


def test_progress_bar_only_on_a_terminal(tmp_path: Path, tiny_model_dir: Path) -> None:
    source = good_recording(tmp_path / "lecture.wav")
    on_terminal = run_on_terminal(OCML, "segment", source, "--model", tiny_model_dir)
    quiet = run_on_terminal(OCML, "segment", source, "--model", tiny_model_dir, "-q")
    piped = run_ocml("segment", source, "--model", tiny_model_dir)
    assert "lecture.wav" in on_terminal and "100%" in on_terminal
    assert "100%" not in quiet and "100%" not in piped.stderr


def run_on_terminal(*args: str | Path) -> str:
    """Run a command with stderr on a pseudo-terminal; return what it wrote there."""
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "100"}
    proc = subprocess.Popen(
        [str(a) for a in args], stdout=subprocess.DEVNULL, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=300) == 0
    return b"".join(chunks).decode(errors="replace")
