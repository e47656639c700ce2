"""The job a worker runs (design.md, "Job"): its schema and its validation before any work.

A job is one JSON object. ``parse_job`` checks the shape, the model the job expects, the
formats, preset and parameters (``resolve_job_params``, the one resolution ``segment``, ``submit``,
``watch`` and the worker share), the ``no_speech`` choice and the optional Opencast ``track``
identity, and resolves both paths (symlinks too) into the configured roots; anything wrong is a
``JobInvalid`` with a stable code. Messages quote at most a few hundred characters of what they
refuse.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocml.config.settings import Settings
from ocml.pipeline.errors import (
    NAME_MAX,
    ModelError,
    OcmlError,
    ParamsError,
    TrackError,
    excerpt,
)
from ocml.pipeline.model import Model
from ocml.pipeline.model_metadata import directory_sha256, read_metadata, resolve_model_dir
from ocml.pipeline.postprocess import SegmentParams, preset, resolve_params
from ocml.pipeline.result import NO_SPEECH_CHOICES, TrackIdentity
from ocml.pipeline.writers import output_paths

TASK_NAME = "ocml.segment"
"""The Celery task whose one argument is a job: the worker runs it, clients and the lease sweep
send it."""

PATH_MAX = 4096
"""The longest path in bytes Linux accepts."""

JOB_KEYS = ("input", "output_dir", "formats", "params", "model", "preset", "no_speech", "track")
TRACK_KEYS = ("id", "flavor", "src")
MODEL_KEYS = ("name", "version", "sha256")


class JobInvalid(OcmlError):
    """The job itself is unusable; ``code`` says why (``bad_job``, ``unknown_key``, ...)."""

    def __init__(self, code: str, message: str, *, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.code = code


class JobFailed(Exception):
    """What a failed task raises: its one argument is ``{"error": code, "message": ...}``.

    It travels through the JSON result backend as ``exc_type``/``exc_message`` and is rebuilt
    on the client, so ``status`` and ``submit --wait`` show the same code the worker saw.
    """

    def __init__(self, error: Mapping[str, str]) -> None:
        super().__init__(dict(error))
        self.error = dict(error)

    @property
    def code(self) -> str:
        return self.error.get("error", "error")

    def __str__(self) -> str:
        return f"{self.code}: {self.error.get('message', '')}"


@dataclass(frozen=True)
class ModelIdentity:
    """The model a worker serves or a client submits with: its metadata's name and version and
    the digest of its SavedModel directory (``directory_sha256``, as results record it)."""

    name: str
    version: str
    sha256: str

    def expectation(self, *, version: str | None = None) -> dict[str, str]:
        """The job's ``model`` object for this model; with ``version``, its name and that
        version only (any build of it)."""
        if version is not None:
            return {"name": self.name, "version": version}
        return {key: getattr(self, key) for key in MODEL_KEYS}

    @classmethod
    def of(cls, model: Model) -> ModelIdentity:
        """The identity of a loaded model."""
        return cls(name=model.name, version=model.version, sha256=model.sha256)


def read_model(settings: Settings) -> tuple[ModelIdentity, dict[str, Any]]:
    """The settings' model's identity and tuned post-processing values, from its metadata and
    files only (no TensorFlow); ``ModelError`` if it cannot be read here."""
    path = resolve_model_dir(settings.model_path)
    metadata = read_metadata(path)
    try:
        digest = directory_sha256(path)
    except OSError as exc:
        raise ModelError(f"cannot read the model's files: {exc}", path=str(path)) from None
    identity = ModelIdentity(name=metadata["name"], version=metadata["version"], sha256=digest)
    return identity, dict(metadata.get("postprocess") or {})


@dataclass(frozen=True)
class Job:
    """A validated job: resolved paths inside the roots, known formats and preset, valid params.

    ``params`` are the overrides as sent (with the settings' params under them);
    ``segment_params`` are the parameters the job runs with, resolved once by ``parse_job``;
    ``model`` is the model the job asks for: a name, or the fields of ``MODEL_KEYS`` it expects.
    """

    input: Path
    output_dir: Path
    formats: tuple[str, ...]
    preset: str
    params: Mapping[str, Any]
    model: str | Mapping[str, str] | None
    segment_params: SegmentParams
    no_speech: str = "keep"
    track: TrackIdentity = TrackIdentity()

    def to_dict(self) -> dict[str, Any]:
        """The job in its wire form (what ``parse_job`` accepts)."""
        out: dict[str, Any] = {
            "input": str(self.input),
            "output_dir": str(self.output_dir),
            "formats": list(self.formats),
            "preset": self.preset,
            "params": dict(self.params),
        }
        if self.model is not None:
            out["model"] = self.model if isinstance(self.model, str) else dict(self.model)
        out["no_speech"] = self.no_speech
        track = {key: getattr(self.track, key) for key in TRACK_KEYS}
        if any(track.values()):
            out["track"] = {key: value for key, value in track.items() if value is not None}
        return out


def parse_job(
    raw: Any,
    settings: Settings,
    *,
    served: ModelIdentity | None = None,
    tuned: Mapping[str, Any] | None = None,
    formats_known: Collection[str],
) -> Job:
    """``raw`` (a mapping, or JSON text of one) checked against the schema and ``settings``.

    ``served`` is the worker's loaded model: the job's ``model`` must match it (``unknown_model``
    for a name, ``model_mismatch`` for an object), and is checked before the parameters, which
    are resolved with that model's ``tuned`` values; a submitter passes no ``served`` (a name
    must then be ``settings.model``) and its own model's ``tuned`` values (``read_model``).
    ``formats_known`` are the writers' format names.
    """
    data = _as_mapping(raw)
    unknown = sorted(set(data) - set(JOB_KEYS))
    if unknown:
        raise JobInvalid(
            "unknown_key",
            f"unknown job key(s) {', '.join(map(repr, unknown))}; known: {', '.join(JOB_KEYS)}",
        )
    if "input" not in data:
        raise JobInvalid("bad_job", "the job has no 'input' path")
    model = _model(data.get("model"), settings, served)
    source = resolve_inside(
        _string(data, "input"), settings.media_roots, "input", setting="media_roots"
    )
    _check_input_file(source)
    if data.get("output_dir") is None:
        target_text = str(default_output_dir(source, settings))
    else:
        target_text = _string(data, "output_dir")
    target = resolve_inside(
        target_text, (settings.output_root,), "output_dir", setting="output_root"
    )
    formats = _formats(data.get("formats", list(settings.formats)), formats_known)
    try:
        output_paths(target, source.stem, formats)
    except OcmlError as exc:
        raise JobInvalid(exc.code, str(exc)) from None
    preset_name = _string(data, "preset") if "preset" in data else settings.preset
    params = _params(data.get("params", {}), settings)
    return Job(
        input=source,
        output_dir=target,
        formats=formats,
        preset=preset_name,
        params=params,
        model=model,
        segment_params=_resolve(preset_name, tuned, params),
        no_speech=_no_speech(data.get("no_speech", "keep")),
        track=_track(data.get("track", {})),
    )


def default_output_dir(source: Path, settings: Settings) -> Path:
    """Where a job without ``output_dir`` writes: ``output_root``, then the input's path below
    the folder all media roots share, without the suffix (``/srv/media/mp1/presenter.mp4``
    gives ``<output_root>/mp1/presenter``), so distinct inputs get distinct folders."""
    base = os.path.commonpath([os.path.realpath(root) for root in settings.media_roots])
    relative = source.relative_to(base)
    return settings.output_root / relative.parent / source.stem


def result_paths(job: Job, formats: Collection[str] | None = None) -> dict[str, Path]:
    """Where ``job`` writes each of ``formats`` (default: its own), as ``run_job`` names them."""
    return output_paths(job.output_dir, job.input.stem, job.formats if formats is None else formats)


ROOT_SETTINGS = {
    "media_roots": "add its folder to the media_roots setting (a list in the settings file, or "
    "OCML_MEDIA_ROOTS=DIR:DIR) of the workers and of the commands that submit",
    "output_root": "choose an output_dir below it, or change the output_root setting (the "
    "settings file, or OCML_OUTPUT_ROOT=DIR) of the workers and of the commands that submit",
}
"""What a ``path_outside_roots`` failure advises, by the setting that holds the roots."""


def resolve_inside(text: str, roots: Collection[Path], key: str, *, setting: str) -> Path:
    """``text`` as an absolute path with every symlink and ``..`` resolved, inside one of ``roots``
    (the value of ``setting``, which a ``path_outside_roots`` failure names)."""
    if "\x00" in text:
        raise JobInvalid("bad_job", f"{key} contains a NUL byte: {excerpt(repr(text))}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise JobInvalid(
            "bad_file_name",
            f"{key} {excerpt(repr(text))} is not valid UTF-8 (byte "
            f"{os.fsencode(text[exc.start])!r} at character {exc.start}); rename the file",
        ) from None
    path = Path(text)
    if not path.is_absolute():
        raise JobInvalid("bad_job", f"{key} must be an absolute path, got {excerpt(repr(text))}")
    _check_lengths(text, key)
    resolved = Path(os.path.realpath(path))
    _check_lengths(str(resolved), key)
    for root in roots:
        if resolved.is_relative_to(os.path.realpath(root)):
            return resolved
    allowed = ", ".join(str(r) for r in roots)
    shown = (
        excerpt(text)
        if str(resolved) == text
        else f"{excerpt(text)} (resolves to {excerpt(str(resolved))})"
    )
    raise JobInvalid(
        "path_outside_roots",
        f"{key} {shown} lies outside the allowed directories, {setting} = {allowed}; "
        f"{ROOT_SETTINGS[setting]}",
    )


def _check_lengths(text: str, key: str) -> None:
    """Names longer than ``NAME_MAX`` bytes or paths longer than ``PATH_MAX`` are refused here,
    with the limit, rather than failing later as an OS error."""
    size = len(text.encode("utf-8"))
    if size >= PATH_MAX:
        raise JobInvalid(
            "name_too_long",
            f"{key} {excerpt(text)} is {size} bytes long; the limit is {PATH_MAX - 1} bytes",
        )
    for part in Path(text).parts:
        size = len(part.encode("utf-8"))
        if size > NAME_MAX:
            raise JobInvalid(
                "name_too_long",
                f"{key} {excerpt(text)}: the name {excerpt(part, 60)} is {size} bytes long; "
                f"the limit is {NAME_MAX} bytes",
            )


def _as_mapping(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise JobInvalid("bad_job", f"the job is not valid JSON: {excerpt(str(exc))}") from None
    if not isinstance(raw, Mapping):
        raise JobInvalid(
            "bad_job",
            f"the job must be a JSON object, got {type(raw).__name__}: {excerpt(repr(raw))}",
        )
    return raw


def _string(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise JobInvalid("bad_job", f"{key} must be a non-empty string, got {excerpt(repr(value))}")
    return value


def _check_input_file(path: Path) -> None:
    if not path.exists():
        raise JobInvalid("input_missing", "no such file", path=str(path))
    if not path.is_file():
        raise JobInvalid("input_not_a_file", "not a regular file", path=str(path))


def _formats(value: Any, known: Collection[str]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list) or not value:
        raise JobInvalid(
            "bad_job", f"formats must be a non-empty list of names, got {excerpt(repr(value))}"
        )
    for name in value:
        if not isinstance(name, str) or name not in known:
            raise JobInvalid(
                "bad_format",
                f"unknown output format {excerpt(repr(name))}; known: {', '.join(sorted(known))}",
            )
    return tuple(dict.fromkeys(value))


def _params(value: Any, settings: Settings) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise JobInvalid("bad_job", f"params must be a JSON object, got {excerpt(repr(value))}")
    merged = {**settings.params, **value}
    for key, number in merged.items():
        if isinstance(number, int) and not isinstance(number, bool):
            try:
                float(number)
            except OverflowError:
                raise JobInvalid(
                    "bad_params",
                    f"{excerpt(str(key), 60)}: the integer {excerpt(str(number), 40)} "
                    f"({len(str(abs(number)))} digits) is too large for a number of seconds or a "
                    "probability",
                ) from None
    return merged


def resolve_job_params(
    settings: Settings,
    *,
    preset: str | None = None,
    params: Mapping[str, Any] | None = None,
    tuned: Mapping[str, Any] | None = None,
) -> SegmentParams:
    """The parameters a job runs with, resolved the one way ``segment``, ``submit``, ``watch``,
    a worker's start-up check and its jobs share: ``preset`` (default: the settings'), then the
    model's ``tuned`` values (``default`` preset only), then the settings' params, then
    ``params``; a ``JobInvalid`` (``bad_preset``, ``bad_params``, ``bad_job``) quoting the value."""
    return _resolve(preset or settings.preset, tuned, _params(params or {}, settings))


def _resolve(
    preset_name: str, tuned: Mapping[str, Any] | None, params: Mapping[str, Any]
) -> SegmentParams:
    try:
        preset(preset_name)
    except ParamsError as exc:
        raise JobInvalid("bad_preset", excerpt(str(exc))) from None
    try:
        return resolve_params(preset_name=preset_name, tuned=tuned, overrides=params)
    except ParamsError as exc:
        raise JobInvalid(exc.code, excerpt(str(exc))) from None


def _no_speech(value: Any) -> str:
    if value not in NO_SPEECH_CHOICES:
        raise JobInvalid(
            "bad_job",
            f"no_speech must be one of {', '.join(map(repr, NO_SPEECH_CHOICES))}, got {value!r}",
        )
    return value


def _track(value: Any) -> TrackIdentity:
    if not isinstance(value, Mapping):
        raise JobInvalid("bad_track", f"track must be a JSON object, got {value!r}")
    unknown = sorted(set(value) - set(TRACK_KEYS))
    if unknown:
        raise JobInvalid(
            "bad_track",
            f"unknown track key(s) {', '.join(map(repr, unknown))}; known: {', '.join(TRACK_KEYS)}",
        )
    try:
        return TrackIdentity(**value)
    except TrackError as exc:
        raise JobInvalid(exc.code, str(exc)) from None


def _model(
    value: Any, settings: Settings, served: ModelIdentity | None
) -> str | dict[str, str] | None:
    """The job's ``model`` checked: a name this worker serves, or an object of expected
    ``MODEL_KEYS`` each equal to the served model's (unchecked without ``served``)."""
    if value is None:
        return None
    if isinstance(value, str) and value:
        accepted = {settings.model} | ({served.name} if served is not None else set())
        if value not in accepted:
            raise JobInvalid(
                "unknown_model",
                f"this worker does not serve model {excerpt(repr(value))}; "
                f"it serves: {', '.join(sorted(accepted))}",
            )
        return value
    expected = _expectation(value)
    if served is not None:
        differ = [key for key, wanted in expected.items() if getattr(served, key) != wanted]
        if differ:
            raise JobInvalid(
                "model_mismatch",
                f"the job expects model {_describe(expected)}; this worker serves "
                f"{_describe(vars(served))} (differs in {', '.join(differ)})",
            )
    return expected


def _expectation(value: Any) -> dict[str, str]:
    shape = f"model must be a name or an object with some of {', '.join(MODEL_KEYS)}"
    if not isinstance(value, Mapping) or not value:
        raise JobInvalid("bad_job", f"{shape}, got {excerpt(repr(value))}")
    unknown = sorted(set(value) - set(MODEL_KEYS))
    if unknown:
        raise JobInvalid("bad_job", f"{shape}; unknown: {excerpt(', '.join(map(repr, unknown)))}")
    for key, text in value.items():
        if not isinstance(text, str) or not text:
            raise JobInvalid(
                "bad_job", f"model {key} must be a non-empty string, got {excerpt(repr(text))}"
            )
    return {key: value[key] for key in MODEL_KEYS if key in value}


def _describe(fields: Mapping[str, str]) -> str:
    return ", ".join(f"{key} {excerpt(fields[key], 80)}" for key in MODEL_KEYS if key in fields)
