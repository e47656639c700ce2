"""The Result object, its opencast-ml/segments/v1 form, and validation against the shipped schema."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from ocml.pipeline.errors import NoSpeech, ParamsError
from ocml.pipeline.postprocess import PRESETS, Binarize, DroppedVoice, preset
from ocml.pipeline.result import (
    InvalidResult,
    Result,
    require_speech,
    schema,
    utc_now,
    validate,
)
from tests.results import make_result


def test_to_dict_is_the_design_form():
    d = make_result().to_dict()
    assert list(d) == [
        "schema",
        "input",
        "model",
        "params",
        "segments",
        "summary",
        "timing",
        "created",
    ]
    assert d["schema"] == "opencast-ml/segments/v1"
    assert d["input"] == {
        "path": "/srv/media/lecture 17.flac",
        "duration": 10.0,
        "sample_rate": 48000,
        "channels": 2,
        "sha256": "ab" * 32,
        "has_video": False,
    }
    assert d["model"] == {
        "name": "default",
        "version": "1.0.0",
        "architecture": "crnn",
        "sha256": "cd" * 32,
    }
    assert d["params"] == PRESETS["default"].to_dict()
    assert d["segments"] == [
        {"start": 0.5, "end": 2.25, "label": "speech", "confidence": 0.91},
        {"start": 4.0, "end": 7.125, "label": "speech", "confidence": 0.8765},
    ]
    assert d["summary"] == {
        "speech_seconds": 4.875,
        "speech_ratio": 0.4875,
        "segments": 2,
        "no_speech": False,
        "dropped_voice": {"stretches": 0, "seconds": 0.0},
    }
    assert d["timing"] == {"processing_seconds": 2.5, "realtime_factor": 0.25}
    assert d["created"] == "2026-11-25T12:00:00Z"
    validate(d)


def test_json_round_trip_gives_the_same_result():
    result = make_result(has_video=True)
    text = json.dumps(result.to_dict())
    back = Result.from_dict(json.loads(text))
    assert back == result
    assert back.probabilities is None
    assert back.to_dict() == result.to_dict()


def test_round_trip_of_real_binarize_output_for_every_preset():
    rng = np.random.default_rng(1)
    probs = np.clip(np.repeat(rng.random(300), 100) + rng.normal(0, 0.1, 30_000), 0, 1)
    for name in PRESETS:
        segments = Binarize(preset(name))(probs, duration=300.004)
        result = make_result(segments, duration=300.004)
        d = json.loads(json.dumps(result.to_dict()))
        validate(d)
        assert Result.from_dict(d).segments == segments


def test_empty_result_and_zero_duration_are_valid():
    d = make_result([], duration=0.0).to_dict()
    assert d["summary"] == {
        "speech_seconds": 0.0,
        "speech_ratio": 0.0,
        "segments": 0,
        "no_speech": True,
        "dropped_voice": {"stretches": 0, "seconds": 0.0},
    }
    assert d["timing"]["realtime_factor"] == 0.0
    validate(d)


def test_shipped_schema_is_draft_2020_12_and_loaded_from_the_package():
    s = schema()
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(s)


def test_utc_now_has_the_created_form():
    validate({**make_result().to_dict(), "created": utc_now()})


def broken(change):
    d = copy.deepcopy(make_result().to_dict())
    change(d)
    return d


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("timing"), r"^\$: 'timing' is a required property"),
        (
            lambda d: d.update(schema="opencast-ml/segments/v2"),
            r"^\$\.schema: 'opencast-ml/segments/v1' was expected",
        ),
        (
            lambda d: d["segments"][1].update(start="4.0"),
            r"^\$\.segments\[1\]\.start: '4\.0' is not of type 'number'",
        ),
        (
            lambda d: d["segments"][0].update(label="music"),
            r"^\$\.segments\[0\]\.label: 'speech' was expected",
        ),
        (
            lambda d: d["segments"][0].update(confidence=1.2),
            r"^\$\.segments\[0\]\.confidence: 1\.2 is greater",
        ),
        (
            lambda d: d["segments"][0].update(start=-0.1),
            r"^\$\.segments\[0\]\.start: -0\.1 is less than the minimum",
        ),
        (lambda d: d["input"].update(sha256="xyz"), r"^\$\.input\.sha256: 'xyz' does not match"),
        (
            lambda d: d["params"].pop("min_voice"),
            r"^\$\.params: 'min_voice' is a required property",
        ),
        (
            lambda d: d.update(extra=1),
            r"^\$: Additional properties are not allowed \('extra' was unexpected\)",
        ),
        (lambda d: d.update(created="yesterday"), r"^\$\.created: 'yesterday' does not match"),
        (
            lambda d: d["segments"][1].update(start=2.0),
            r"^\$\.segments\[1\]: start 2\.0 is before the end of the previous segment \(2\.25\)",
        ),
        (lambda d: d["segments"].reverse(), r"^\$\.segments\[1\]: start 0\.5 is before the end"),
        (
            lambda d: d["segments"][1].update(end=10.001),
            r"^\$\.segments\[1\]: end 10\.001 is beyond the input duration 10\.0",
        ),
        (
            lambda d: d["segments"][0].update(end=0.5),
            r"^\$\.segments\[0\]: end 0\.5 is not after start 0\.5",
        ),
        (
            lambda d: d["summary"].update(segments=3),
            r"^\$\.summary\.segments: 3 but there are 2 segments",
        ),
        (
            lambda d: d["summary"].update(no_speech=True),
            r"^\$\.summary\.no_speech: True but there are 2 segments",
        ),
        (
            lambda d: d["params"].update(trim_window=-1),
            r"^\$\.params\.trim_window: -1 is less than the minimum",
        ),
    ],
)
def test_validate_names_the_first_problem_with_its_json_path(change, message):
    with pytest.raises(InvalidResult, match=message) as info:
        validate(broken(change))
    assert isinstance(info.value, ValueError)
    assert info.value.code == "invalid_result"


def test_validate_refuses_a_non_object():
    with pytest.raises(InvalidResult, match=r"^\$: \[\] is not of type 'object'"):
        validate([])


def test_from_dict_validates_first():
    with pytest.raises(InvalidResult, match=r"segments\[0\]"):
        Result.from_dict(broken(lambda d: d["segments"][0].update(end=99.0)))


def test_a_result_written_before_no_speech_and_trim_existed_still_reads():
    d = make_result().to_dict()
    del d["summary"]["no_speech"], d["params"]["trim_min_speech"], d["params"]["trim_window"]
    del d["summary"]["dropped_voice"]
    back = Result.from_dict(d)
    assert back.params == PRESETS["default"]
    assert back.to_dict()["summary"]["no_speech"] is False
    assert back.dropped_voice == DroppedVoice(0, 0.0)


def test_dropped_voice_is_written_and_read_back():
    result = replace(make_result(segments=[]), dropped_voice=DroppedVoice(2, 41.25))
    d = result.to_dict()
    assert d["summary"]["dropped_voice"] == {"stretches": 2, "seconds": 41.25}
    assert Result.from_dict(d).dropped_voice == DroppedVoice(2, 41.25)
    with pytest.raises(InvalidResult, match=r"dropped_voice.*stretches"):
        Result.from_dict(broken(lambda d: d["summary"]["dropped_voice"].pop("stretches")))


def test_require_speech_fails_only_a_result_without_speech_when_asked():
    require_speech(make_result(), no_speech="fail")
    require_speech(make_result([]), no_speech="keep")
    with pytest.raises(NoSpeech, match=r"lecture 17\.flac: no speech found in 10\.0 s") as caught:
        require_speech(make_result([]), no_speech="fail")
    assert caught.value.to_dict()["error"] == "no_speech"
    with pytest.raises(ParamsError, match=r"no_speech must be one of 'keep', 'fail', got 'drop'"):
        require_speech(make_result(), no_speech="drop")
