"""The dataset label loader: every label format, and a clear error for every kind of bad label."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ocml.models.datasets import (
    LabelError,
    check_against_audio,
    frame_labels,
    load_dataset,
    read_labels,
)
from ocml.pipeline.errors import InputMissing
from ocml.pipeline.features import FeatureConfig

SPEECH = [(0.5, 1.25), (2.0, 3.5)]


def _write_audio(path: Path, seconds: float = 4.0) -> Path:
    sf.write(path, np.zeros(int(seconds * 16000), np.float32), 16000)
    return path


SMIL = """<?xml version="1.0" encoding="UTF-8"?>
<smil xmlns="http://www.w3.org/ns/SMIL" version="3.0">
  <head><meta name="track-duration" content="4000ms"/></head>
  <body>
    <par><audio clipBegin="500ms" clipEnd="1250ms" src="a.flac"/></par>
    <par><audio clipBegin="2000ms" clipEnd="3500ms" src="a.flac"/></par>
  </body>
</smil>
"""


@pytest.mark.parametrize(
    ("name", "text", "duration"),
    [
        ("simple.json", json.dumps({"duration": 4.0, "speech": [list(s) for s in SPEECH]}), 4.0),
        (
            "result.json",
            json.dumps(
                {
                    "schema": "opencast-ml/segments/v1",
                    "input": {"duration": 4.0},
                    "segments": [
                        {"start": s, "end": e, "label": "speech", "confidence": 0.9}
                        for s, e in SPEECH
                    ],
                }
            ),
            4.0,
        ),
        (
            "audacity.txt",
            "0.5\t1.25\tspeech\n\\\t0\t1000\n1.3\t1.9\tsilence\n2.0\t3.5\tspeech\n",
            None,
        ),
        (
            "labels.rttm",
            "SPEAKER a 1 0.500 0.750 <NA> <NA> s1 <NA> <NA>\n"
            "SPEAKER a 1 2.000 1.000 <NA> <NA> s1 <NA> <NA>\n"
            "SPEAKER a 1 2.800 0.700 <NA> <NA> s2 <NA> <NA>\n",
            None,
        ),
        ("opencast.smil", SMIL, 4.0),
    ],
)
def test_every_format_reads_to_the_same_speech(
    tmp_path: Path, name: str, text: str, duration: float | None
) -> None:
    path = tmp_path / name
    path.write_text(text)
    labels = read_labels(path)
    assert labels.speech == SPEECH
    assert labels.duration == duration


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.json", json.dumps({"duration": 4.0, "speech": [[2.0, 3.0], [0.5, 1.0]]}), "not sorted"),
        ("b.json", json.dumps({"duration": 4.0, "speech": [[0.5, 2.5], [2.0, 3.0]]}), "overlap"),
        ("c.json", json.dumps({"duration": 4.0, "speech": [[1.0, 5.0]]}), "ends after"),
        ("d.json", json.dumps({"duration": 4.0, "speech": [[2.0, 1.0]]}), "start < end"),
        ("e.json", json.dumps({"duration": 4.0, "speech": [["x", 1.0]]}), "'x' is not a number"),
        ("f.json", json.dumps({"duration": 4.0}), "need 'speech'"),
        ("g.json", "{not json", "not valid JSON"),
        ("h.txt", "0.5 1.0 speech\n", "line 1"),
        ("i.smil", "<smil><body><par>", "not valid SMIL"),
        ("j.csv", "0,1\n", "unknown label format"),
    ],
)
def test_bad_labels_are_refused_with_the_file_and_reason(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LabelError, match=message) as err:
        read_labels(path)
    assert str(path) in str(err.value)


def test_labels_past_the_recording_end_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("0.5\t9.0\tspeech\n")
    with pytest.raises(LabelError, match="after the recording's end"):
        check_against_audio(read_labels(path), 4.0, tmp_path / "a.flac")


def test_dataset_pairs_recordings_with_labels(tmp_path: Path) -> None:
    _write_audio(tmp_path / "one.flac")
    (tmp_path / "one.json").write_text(json.dumps({"duration": 4.0, "speech": [[0.5, 1.0]]}))
    _write_audio(tmp_path / "two.wav")
    (tmp_path / "two.txt").write_text("1.0\t2.0\tspeech\n")
    items = load_dataset(tmp_path)
    assert [(i.audio.name, i.labels.speech) for i in items] == [
        ("one.flac", [(0.5, 1.0)]),
        ("two.wav", [(1.0, 2.0)]),
    ]


def test_label_without_audio_and_audio_without_labels_are_errors(tmp_path: Path) -> None:
    (tmp_path / "orphan.json").write_text(json.dumps({"duration": 4.0, "speech": []}))
    with pytest.raises(InputMissing, match="no recording beside it"):
        load_dataset(tmp_path)
    (tmp_path / "orphan.json").unlink()
    _write_audio(tmp_path / "bare.flac")
    with pytest.raises(LabelError, match="no label file"):
        load_dataset(tmp_path)
    assert load_dataset(tmp_path, require_labels=False)[0].labels is None


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputMissing, match="not found"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(InputMissing, match="no recordings"):
        load_dataset(tmp_path)


def test_frame_labels_use_frame_centres() -> None:
    cfg = FeatureConfig()
    # frame i's centre is at 12.5 ms + i * 10 ms: frames 1..3 have centres 22.5, 32.5, 42.5 ms
    y = frame_labels([(0.02, 0.045)], 6, cfg)
    assert y.tolist() == [0, 1, 1, 1, 0, 0]


def test_corrections_win_and_segment_outputs_are_no_orphans(tmp_path: Path) -> None:
    _write_audio(tmp_path / "talk.flac")
    (tmp_path / "talk.json").write_text(json.dumps({"duration": 4.0, "speech": [[0.5, 1.0]]}))
    (tmp_path / "talk.cutmarks.json").write_text("[]")
    (tmp_path / "talk.labels.txt").write_text("1.0\t2.0\tspeech\n")
    (item,) = load_dataset(tmp_path)
    assert (item.label_path.name, item.label_kind, item.labels.speech) == (
        "talk.labels.txt",
        "corrected",
        [(1.0, 2.0)],
    )
    (tmp_path / "talk.labels.json").write_text(json.dumps({"duration": 4.0, "speech": [[2, 3]]}))
    (item,) = load_dataset(tmp_path)
    assert (item.label_path.name, item.labels.speech) == ("talk.labels.json", [(2.0, 3.0)])
    (tmp_path / "gone.labels.json").write_text(json.dumps({"duration": 4.0, "speech": []}))
    with pytest.raises(InputMissing, match=r"no recording beside it \(looked for gone\{\.flac"):
        load_dataset(tmp_path)


def test_a_model_result_is_labels_only_when_asked(tmp_path: Path) -> None:
    _write_audio(tmp_path / "talk.flac")
    result = {
        "schema": "opencast-ml/segments/v1",
        "input": {"duration": 4.0},
        "model": {"name": "default", "version": "2.2.0"},
        "segments": [{"start": 0.5, "end": 1.0, "label": "speech"}],
    }
    (tmp_path / "talk.json").write_text(json.dumps(result))
    with pytest.raises(LabelError, match="talk.json, a result of the model default 2.2.0") as err:
        load_dataset(tmp_path)
    assert str(tmp_path / "talk.flac") in str(err.value)
    (item,) = load_dataset(tmp_path, results_as_labels=True)
    assert (item.label_kind, item.labels.speech) == ("result", [(0.5, 1.0)])
    (item,) = load_dataset(tmp_path, require_labels=False)
    assert (item.label_kind, item.labels) == ("none", None)
