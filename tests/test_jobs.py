"""Job validation before any work: schema, formats, preset, params, and paths inside the roots."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ocml.config.settings import load_settings
from ocml.pipeline.postprocess import PRESETS, SegmentParams
from ocml.pipeline.result import TrackIdentity
from ocml.pipeline.writers import FORMATS
from ocml.worker.jobs import (
    Job,
    JobFailed,
    JobInvalid,
    ModelIdentity,
    parse_job,
    read_model,
    resolve_job_params,
)

TINY = ModelIdentity(name="tiny", version="0.0.1", sha256="ab" * 32)


@pytest.fixture
def roots(tmp_path):
    media, output, outside = tmp_path / "media", tmp_path / "results", tmp_path / "outside"
    for d in (media, output, outside):
        d.mkdir()
    (media / "talk.wav").write_bytes(b"RIFF")
    (outside / "secret.wav").write_bytes(b"RIFF")
    settings = load_settings(
        env={
            "OCML_MEDIA_ROOTS": str(media),
            "OCML_OUTPUT_ROOT": str(output),
            "OCML_PARAMS": "{min_silence: 1.5}",
        }
    )
    return settings, media, output, outside


def parse(raw, settings, **kw) -> Job:
    return parse_job(raw, settings, formats_known=FORMATS, **kw)


def test_a_good_job_is_resolved_with_defaults(roots):
    settings, media, output, _ = roots
    job = parse({"input": str(media / "talk.wav")}, settings)
    assert job.input == media / "talk.wav"
    assert job.output_dir == output / "talk"
    assert job.formats == ("json", "smil")
    assert (job.preset, job.model) == ("default", None)
    assert job.params == {"min_silence": 1.5}
    assert (job.no_speech, job.track) == ("keep", TrackIdentity())
    assert parse(json.dumps(job.to_dict()), settings) == job


def test_inputs_of_the_same_name_get_their_own_default_folders(roots, tmp_path):
    settings, media, output, _ = roots
    lectures = tmp_path / "lectures"
    for folder in (media / "mp1", media / "mp2", lectures / "mp1"):
        folder.mkdir(parents=True)
        (folder / "presenter.mp4").write_bytes(b"RIFF")
    one_root = [
        parse({"input": str(media / p / "presenter.mp4")}, settings) for p in ("mp1", "mp2")
    ]
    two_roots = replace(settings, media_roots=(media, lectures))
    both = [
        parse({"input": str(root / "mp1" / "presenter.mp4")}, two_roots)
        for root in (media, lectures)
    ]

    assert [job.output_dir for job in one_root] == [
        output / "mp1" / "presenter",
        output / "mp2" / "presenter",
    ]
    # Below the folder the roots share, so the same path under two roots stays apart.
    assert [job.output_dir for job in both] == [
        output / "media" / "mp1" / "presenter",
        output / "lectures" / "mp1" / "presenter",
    ]
    assert parse({"input": str(media / "talk.wav")}, two_roots).output_dir == (
        output / "media" / "talk"
    )


def test_job_values_override_the_settings(roots):
    settings, media, output, _ = roots
    job = parse(
        {
            "input": str(media / "talk.wav"),
            "output_dir": str(output / "x" / "y"),
            "formats": ["rttm", "json", "rttm"],
            "preset": "opencast",
            "params": {"pad": 0.5},
            "model": "tiny",
            "no_speech": "fail",
            "track": {"id": "t-7", "src": "https://oc.example/files/t-7/presenter.mp4"},
        },
        settings,
        served=TINY,
    )
    assert job.no_speech == "fail"
    assert job.track == TrackIdentity(id="t-7", src="https://oc.example/files/t-7/presenter.mp4")
    assert parse(job.to_dict(), settings, served=TINY) == job
    assert job.output_dir == output / "x" / "y"
    assert job.formats == ("rttm", "json")
    assert job.preset == "opencast"
    assert job.params == {"min_silence": 1.5, "pad": 0.5}
    assert job.model == "tiny"


def test_parameters_are_resolved_once_with_the_models_tuned_values(roots):
    settings, media, _, _ = roots
    tuned = {"min_silence": 0.3, "threshold": 0.6}
    job = parse({"input": str(media / "talk.wav")}, settings, tuned=tuned)
    assert job.segment_params == SegmentParams(min_silence=1.5, threshold=0.6)
    bare = parse({"input": str(media / "talk.wav"), "params": {"pad": 0.0}}, settings)
    assert bare.segment_params == SegmentParams(min_silence=1.5, pad_before=0.0, pad_after=0.0)
    opencast = parse(
        {"input": str(media / "talk.wav"), "preset": "opencast"}, settings, tuned=tuned
    )
    assert opencast.segment_params == replace(PRESETS["opencast"], min_silence=1.5)


def test_symlinks_inside_the_roots_are_fine_and_resolved(roots):
    settings, media, _, _ = roots
    (media / "sub").mkdir()
    (media / "sub" / "alias.wav").symlink_to(media / "talk.wav")
    job = parse({"input": str(media / "sub" / ".." / "sub" / "alias.wav")}, settings)
    assert job.input == media / "talk.wav"


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda m, o, x: "{broken", "bad_job"),
        (lambda m, o, x: "[]", "bad_job"),
        (lambda m, o, x: 42, "bad_job"),
        (lambda m, o, x: {}, "bad_job"),
        (lambda m, o, x: {"input": 5}, "bad_job"),
        (lambda m, o, x: {"input": ""}, "bad_job"),
        (lambda m, o, x: {"input": "talk.wav"}, "bad_job"),
        (lambda m, o, x: {"input": f"{m}/talk.wav\x00"}, "bad_job"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "extra": 1}, "unknown_key"),
        (lambda m, o, x: {"input": f"{x}/secret.wav"}, "path_outside_roots"),
        (lambda m, o, x: {"input": f"{m}/../outside/secret.wav"}, "path_outside_roots"),
        (lambda m, o, x: {"input": f"{m}/link.wav"}, "path_outside_roots"),
        (
            lambda m, o, x: {"input": f"{m}/talk.wav", "output_dir": f"{o}/../outside"},
            "path_outside_roots",
        ),
        (
            lambda m, o, x: {"input": f"{m}/talk.wav", "output_dir": f"{o}/dirlink/r"},
            "path_outside_roots",
        ),
        (lambda m, o, x: {"input": f"{m}/gone.wav"}, "input_missing"),
        (lambda m, o, x: {"input": f"{m}"}, "input_not_a_file"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "formats": ["pdf"]}, "bad_format"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "formats": []}, "bad_job"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "preset": "whisper"}, "bad_preset"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "preset": 3}, "bad_job"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "params": [1]}, "bad_job"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "params": {"threshold": -1}}, "bad_params"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "params": {"pad": 1e9}}, "bad_params"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "params": {"pad": float("nan")}}, "bad_params"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "params": {"nope": 1}}, "bad_params"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "model": "huge"}, "unknown_model"),
        (
            lambda m, o, x: {
                "input": f"{m}/talk.wav",
                "preset": "trim",
                "params": {"trim_window": 1},
            },
            "bad_params",
        ),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "no_speech": "skip"}, "bad_job"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "no_speech": None}, "bad_job"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "track": "presenter/source"}, "bad_track"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "track": {"uri": "https://x/y"}}, "bad_track"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "track": {"flavor": "presenter"}}, "bad_track"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "track": {"src": "/srv/x.mp4"}}, "bad_track"),
        (lambda m, o, x: {"input": f"{m}/talk.wav", "track": {"id": 7}}, "bad_track"),
    ],
)
def test_bad_jobs_are_refused_with_their_code(roots, make, code):
    settings, media, output, outside = roots
    (media / "link.wav").symlink_to(outside / "secret.wav")
    (output / "dirlink").symlink_to(outside, target_is_directory=True)
    with pytest.raises(JobInvalid) as caught:
        parse(make(media, output, outside), settings)
    assert caught.value.code == code
    error = caught.value.to_dict()
    assert error["error"] == code and error["message"]


def test_outside_message_names_the_path_and_what_it_resolves_to(roots):
    settings, media, _, outside = roots
    (media / "link.wav").symlink_to(outside / "secret.wav")
    with pytest.raises(
        JobInvalid, match="link.wav .resolves to .*outside/secret.wav.*outside the allowed"
    ):
        parse({"input": str(media / "link.wav")}, settings)


def test_job_failed_carries_the_error_document():
    failed = JobFailed({"error": "bad_job", "message": "why"})
    assert failed.code == "bad_job"
    assert str(failed) == "bad_job: why"
    assert failed.args == ({"error": "bad_job", "message": "why"},)


def test_track_and_no_speech_messages_quote_the_bad_value(roots):
    settings, media, _, _ = roots
    talk = str(media / "talk.wav")
    with pytest.raises(JobInvalid, match=r"unknown track key\(s\) 'uri'; known: id, flavor, src"):
        parse({"input": talk, "track": {"uri": "x"}}, settings)
    with pytest.raises(JobInvalid, match=r"no_speech must be one of 'keep', 'fail', got 'skip'"):
        parse({"input": talk, "no_speech": "skip"}, settings)


def test_params_are_checked_against_the_models_tuned_values(roots):
    settings, media, _, _ = roots
    _, tuned = read_model(settings)
    assert tuned is not None and tuned["neg_threshold"] < SegmentParams().neg_threshold
    above = {"input": str(media / "talk.wav"), "params": {"threshold": tuned["neg_threshold"]}}
    below = {"input": str(media / "talk.wav"), "params": {"threshold": tuned["neg_threshold"] / 2}}

    assert parse(above, settings, tuned=tuned).segment_params.threshold == tuned["neg_threshold"]
    with pytest.raises(JobInvalid, match=r"neg_threshold"):
        parse(above, settings)  # against the preset's 0.35 it would be refused
    with pytest.raises(JobInvalid, match=r"neg_threshold") as info:
        parse(below, settings, tuned=tuned)
    assert info.value.code == "bad_params"


def test_refusals_quote_at_most_a_few_hundred_characters(roots):
    settings, media, _, _ = roots
    for job in (
        {"input": "relative/" + "x" * 5_000_000},
        {"input": str(media / "talk.wav"), "params": {"pad": "y" * 5_000_000}},
        {"input": str(media / "talk.wav"), "formats": ["z" * 5_000_000]},
    ):
        with pytest.raises(JobInvalid) as info:
            parse(job, settings)
        assert len(str(info.value)) < 1000
        assert "characters left out" in str(info.value)


def test_a_job_expecting_a_model_runs_only_where_every_given_field_matches(roots):
    settings, media, _, _ = roots
    talk = str(media / "talk.wav")
    full = {"input": talk, "model": TINY.expectation()}
    same_version = {"input": talk, "model": TINY.expectation(version="0.0.1")}
    other_build = ModelIdentity(name="tiny", version="0.0.1", sha256="cd" * 32)

    assert parse(full, settings, served=TINY).model == TINY.expectation()
    assert parse(same_version, settings, served=other_build).model == {
        "name": "tiny",
        "version": "0.0.1",
    }
    with pytest.raises(JobInvalid) as info:
        parse(full, settings, served=other_build)
    assert info.value.code == "model_mismatch"
    message = str(info.value)
    assert f"expects model name tiny, version 0.0.1, sha256 {'ab' * 32}" in message
    assert f"this worker serves name tiny, version 0.0.1, sha256 {'cd' * 32}" in message
    assert message.endswith("(differs in sha256)")
    assert parse(json.dumps(parse(full, settings).to_dict()), settings).model == TINY.expectation()


def test_the_model_is_checked_before_parameters_tuned_for_it(roots):
    settings, media, _, _ = roots
    # Against a model tuned to neg_threshold 0.7 the threshold would be refused: a worker serving
    # another model must say so, not blame the parameters.
    job = {
        "input": str(media / "talk.wav"),
        "model": {"version": "9"},
        "params": {"threshold": 0.5},
    }
    with pytest.raises(JobInvalid) as info:
        parse(job, settings, served=TINY, tuned={"threshold": 0.8, "neg_threshold": 0.7})
    assert info.value.code == "model_mismatch"


@pytest.mark.parametrize(
    "model",
    [{}, {"colour": "red"}, {"name": ""}, {"version": 2}, ["tiny"], 7],
)
def test_a_malformed_model_expectation_is_a_bad_job(roots, model):
    settings, media, _, _ = roots
    with pytest.raises(JobInvalid) as info:
        parse({"input": str(media / "talk.wav"), "model": model}, settings)
    assert info.value.code == "bad_job"
    assert "model" in str(info.value)


def test_read_model_gives_the_identity_results_record_without_tensorflow(roots):
    from ocml.pipeline.model_metadata import default_model_path, directory_sha256, read_metadata

    settings, _, _, _ = roots
    identity, tuned = read_model(settings)
    metadata = read_metadata(default_model_path())
    assert (identity.name, identity.version) == (metadata["name"], metadata["version"])
    assert identity.sha256 == directory_sha256(default_model_path())
    assert tuned == metadata["postprocess"]
    assert identity.expectation(version="1.0") == {"name": metadata["name"], "version": "1.0"}


def test_one_resolution_for_jobs_and_the_commands(roots):
    settings, media, _, _ = roots
    tuned = {"min_silence": 0.3, "threshold": 0.6}
    job = parse({"input": str(media / "talk.wav"), "params": {"pad": 0.2}}, settings, tuned=tuned)
    assert resolve_job_params(settings, params={"pad": 0.2}, tuned=tuned) == job.segment_params
    with pytest.raises(JobInvalid) as info:
        resolve_job_params(settings, params={"threshold": 5})
    assert info.value.code == "bad_params"
    with pytest.raises(JobInvalid) as info:
        resolve_job_params(settings, preset="loud")
    assert info.value.code == "bad_preset"
