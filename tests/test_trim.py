"""The trim preset on real recordings with the tiny SavedModel: the minutes before and after a
lecture (silence, a cough, a music intro) are cut, everything from its first to its last
sustained speech is kept, in every output format."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ocml.pipeline.model import Model
from ocml.pipeline.postprocess import preset
from ocml.pipeline.result import Result
from ocml.pipeline.segment import segment_file
from ocml.pipeline.writers import write_outputs
from tests.conftest import SR
from tests.media import jingle, speechlike, write_wav

SMIL = "{http://www.w3.org/ns/SMIL}"
COUGH = (30.0, 30.5)
MUSIC = (60.0, 80.0)
LECTURE = (90.0, 150.0)
DURATION = 210.0
FORMATS = ("json", "smil", "cutmarks", "audacity", "rttm")


def lecture_recording(path: Path, *, seed: int) -> tuple[Path, tuple[float, float]]:
    """60 s of room noise with a cough at 30 s, a 20 s music intro, 10 s of quiet, a 60 s
    lecture of 1–3 s phrases, 60 s of quiet; and the first and last second of speech."""
    rng = np.random.default_rng(seed)
    phrases, t = [], LECTURE[0]
    while t < LECTURE[1] - 1:
        end = min(t + rng.uniform(1.0, 3.0), LECTURE[1])
        phrases.append((round(t, 3), round(end, 3)))
        t = end + rng.uniform(0.3, 1.0)
    samples = speechlike(SR, DURATION, [COUGH, *phrases], seed=seed, noise_db=-55)
    a, b = int(MUSIC[0] * SR), int(MUSIC[1] * SR)
    samples[a:b] += jingle(SR, MUSIC[1] - MUSIC[0], seed=seed)
    return write_wav(path, samples, SR), (phrases[0][0], phrases[-1][1])


@pytest.mark.parametrize("seed", [1, 2])
def test_trim_cuts_lead_in_cough_music_and_trail_in_every_format(
    tmp_path: Path, tiny_model: Model, seed: int
) -> None:
    source, (first, last) = lecture_recording(tmp_path / "lecture.wav", seed=seed)
    untrimmed = segment_file(source, tiny_model, preset("default"))
    assert any(s.end < first for s in untrimmed.segments), "nothing to trim: the test is void"

    result = segment_file(source, tiny_model, preset("trim"))
    paths = write_outputs(result, tmp_path, "lecture", FORMATS)

    (segment,) = json.loads(paths["json"].read_text())["segments"]
    assert segment["start"] == pytest.approx(first - 2.0, abs=0.15)
    assert segment["end"] == pytest.approx(last + 2.0, abs=0.15)
    begin, end = round(segment["start"] * 1000), round(segment["end"] * 1000)
    (par,) = ET.parse(paths["smil"]).getroot().iter(f"{SMIL}par")
    assert [(c.get("clipBegin"), c.get("clipEnd")) for c in par] == [(f"{begin}ms", f"{end}ms")]
    assert json.loads(paths["cutmarks"].read_text()) == [{"begin": begin, "duration": end - begin}]
    assert paths["audacity"].read_text().splitlines() == [
        f"{segment['start']:.6f}\t{segment['end']:.6f}\tspeech"
    ]
    assert len(paths["rttm"].read_text().splitlines()) == 1
    assert Result.from_dict(json.loads(paths["json"].read_text())).params == preset("trim")


def test_trim_of_a_recording_with_only_a_cough_and_music_keeps_everything(
    tmp_path: Path, tiny_model: Model
) -> None:
    samples = speechlike(SR, 60.0, [(10.0, 10.5)], seed=4, noise_db=-55)
    samples[int(20 * SR) : int(40 * SR)] += jingle(SR, 20.0, seed=4)
    source = write_wav(tmp_path / "intro-only.wav", samples, SR)
    assert segment_file(source, tiny_model, preset("default")).segments, "the test is void"

    result = segment_file(source, tiny_model, preset("trim"))
    paths = write_outputs(result, tmp_path, "intro-only", ("json", "smil", "cutmarks"))

    document = json.loads(paths["json"].read_text())
    assert document["segments"] == [] and document["summary"]["no_speech"] is True
    assert json.loads(paths["cutmarks"].read_text()) == []
    (par,) = ET.parse(paths["smil"]).getroot().iter(f"{SMIL}par")
    assert [(c.get("clipBegin"), c.get("clipEnd")) for c in par] == [("0ms", "60000ms")]


def test_trim_keeps_a_sparse_opening_whole_and_cuts_a_burst_a_minute_before(
    tmp_path: Path, tiny_model: Model
) -> None:
    """The lecturer's first 10 s of speech are four short phrases (2.9 s of speech), 9.9 s before
    the sustained lecture; a lone voice-like burst lies 60 s before them, chatter 15 s after the
    closing words."""
    opening = [(80.0, 80.6), (82.5, 83.3), (85.6, 86.2), (89.2, 90.1)]
    core = [(100.0 + 3 * k, 102.0 + 3 * k) for k in range(10)]
    closing = [(136.0, 136.8), (144.0, 144.6)]
    outside = [(20.0, 20.5), (160.0, 160.8), (163.0, 163.7)]
    samples = speechlike(SR, 180.0, [*opening, *core, *closing, *outside], seed=7, noise_db=-55)
    source = write_wav(tmp_path / "sparse.wav", samples, SR)
    untrimmed = segment_file(source, tiny_model, preset("default"))
    found = [(s.start, s.end) for s in untrimmed.segments]
    assert any(s < 21 for s, _ in found) and any(s > 159 for s, _ in found), found

    (segment,) = segment_file(source, tiny_model, preset("trim")).segments
    assert segment.start == pytest.approx(opening[0][0] - 2.0, abs=0.15)
    assert segment.end == pytest.approx(closing[-1][1] + 2.0, abs=0.15)
    core_only = replace(preset("trim"), trim_bridge=0.0)  # the rule before the bridge
    (segment,) = segment_file(source, tiny_model, core_only).segments
    assert segment.start == pytest.approx(core[0][0] - 2.0, abs=0.15)
