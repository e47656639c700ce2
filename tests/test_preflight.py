"""A worker's start-up check of its settings, in this process, against real directories and a
real copy of the shipped model (``test_fleet_guard`` starts real workers with such settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocml.config.settings import Settings, load_settings
from ocml.pipeline.model_metadata import default_model_path
from ocml.worker.preflight import SettingProblem, check_worker_settings
from tests.worker_support import media_and_results, model_copy


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    return media_and_results(tmp_path)


def settings_with(folders: tuple[Path, Path], **env: str) -> Settings:
    media, output = folders
    base = {"OCML_MEDIA_ROOTS": str(media), "OCML_OUTPUT_ROOT": str(output)}
    return load_settings(env={**base, **{f"OCML_{k.upper()}": v for k, v in env.items()}})


def problem_of(settings: Settings) -> tuple[str, str]:
    with pytest.raises(SettingProblem) as info:
        check_worker_settings(settings)
    return info.value.setting, info.value.problem


def test_workable_settings_pass_and_leave_nothing_behind(folders):
    check_worker_settings(settings_with(folders))
    assert list(folders[1].iterdir()) == []


def test_parameters_are_judged_against_the_models_tuned_values(folders, tmp_path):
    # The shipped model's tuned neg_threshold is 0.3: threshold 0.32 works with it (the bare
    # preset's 0.35 would refuse it); a copy tuned to neg_threshold 0.7 refuses threshold 0.5.
    check_worker_settings(settings_with(folders, params="{threshold: 0.32}"))
    retuned = model_copy(
        default_model_path(),
        tmp_path / "retuned",
        postprocess={"threshold": 0.8, "neg_threshold": 0.7},
    )

    setting, problem = problem_of(
        settings_with(folders, model=str(retuned), params="{threshold: 0.5}")
    )

    assert setting == "params"
    assert "neg_threshold (0.7) must not exceed threshold (0.5)" in problem


@pytest.mark.parametrize(
    ("env", "setting", "words"),
    [
        ({"params": "{threshold: 5}"}, "params", ["threshold", "5"]),
        ({"params": "{loudness: 1}"}, "params", ["unknown", "loudness"]),
        ({"preset": "trim", "params": "{trim_window: 1}"}, "params", ["trim_window"]),
        ({"preset": "loud"}, "preset", ["unknown preset 'loud'"]),
        ({"formats": "json,pdf"}, "formats", ["'pdf'"]),
        ({"model": "/nonexistent/model"}, "model", ["/nonexistent/model", "saved_model.pb"]),
    ],
)
def test_each_unworkable_setting_is_named(folders, env, setting, words):
    named, problem = problem_of(settings_with(folders, **env))
    assert named == setting
    assert all(word in problem for word in words), problem


def test_a_runtime_without_its_asset_in_the_model_is_refused(folders, tmp_path):
    bare = model_copy(default_model_path(), tmp_path / "bare", onnx=None)
    setting, problem = problem_of(settings_with(folders, model=str(bare), runtime="onnx"))
    assert setting == "runtime"
    assert problem.startswith("onnx needs the model's ONNX model in assets/")
    check_worker_settings(settings_with(folders, model=str(bare), runtime="auto"))


def test_media_and_output_roots_must_be_usable_directories(folders, tmp_path):
    media, output = folders
    (tmp_path / "plain-file").write_text("x")
    missing = str(tmp_path / "not-mounted")

    cases = {
        "missing media root": (
            {"media_roots": f"{media}:{missing}"},
            ("media_roots", f"{missing} does not exist"),
        ),
        "media root a file": (
            {"media_roots": str(tmp_path / "plain-file")},
            ("media_roots", f"{tmp_path / 'plain-file'} is not a directory"),
        ),
        "missing output root": (
            {"output_root": missing},
            ("output_root", f"{missing} does not exist"),
        ),
    }
    found = {name: problem_of(settings_with(folders, **env)) for name, (env, _) in cases.items()}
    assert found == {name: expected for name, (_, expected) in cases.items()}
