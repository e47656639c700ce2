"""A worker's settings, checked before it takes a job: a worker that could not run jobs refuses
to start instead of failing them.

The check uses the settings the tasks use (``worker.app.current_settings``) and reads the model
without TensorFlow: the model (a SavedModel with usable metadata, the pipeline's features and the
asset its runtime needs, and that runtime installed), the preset and parameters resolved against that model's tuned values as
every job's are (``jobs.resolve_job_params``), the default formats, each media root (a directory
this worker can list) and the output root (a directory it can create files in). ``ocml worker``
runs it before Celery starts; the ``worker_init`` receiver runs it for ``celery -A
ocml.worker.app worker`` too. A problem ends the process with one line on stderr, ``ocml: failed:
<setting>: <problem>``, and exit status ``REFUSED``.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from celery.signals import worker_init

from ocml.config.settings import Settings
from ocml.pipeline.errors import MissingExtra, ModelError
from ocml.pipeline.extras import RUNTIME_EXTRAS, require
from ocml.pipeline.features import PIPELINE_FEATURES, FeatureConfig
from ocml.pipeline.model_metadata import ASSETS, read_metadata, resolve_model_dir
from ocml.pipeline.runtimes.choice import choose_runtime
from ocml.pipeline.writers import FORMATS
from ocml.worker.app import current_settings
from ocml.worker.jobs import JobInvalid, resolve_job_params

REFUSED = 2
"""The exit status of a worker that refuses to start: a usage error (a bad setting)."""
FAILED_PREFIX = "ocml: failed:"


class SettingProblem(Exception):
    """A setting this worker cannot work with; ``setting`` names its key."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


def check_worker_settings(settings: Settings) -> None:
    """Raises ``SettingProblem`` for the first setting a worker could not run jobs with."""
    metadata = _model_metadata(settings)
    try:
        resolve_job_params(settings, tuned=metadata.get("postprocess"))
    except JobInvalid as exc:
        raise SettingProblem("preset" if exc.code == "bad_preset" else "params", str(exc)) from None
    unknown = [name for name in settings.formats if name not in FORMATS]
    if unknown:
        raise SettingProblem(
            "formats", f"unknown output format(s) {unknown}; known: {', '.join(FORMATS)}"
        )
    for root in settings.media_roots:
        _check_media_root(root)
    _check_output_root(settings.output_root)


def _model_metadata(settings: Settings) -> dict[str, Any]:
    """The model's metadata, once it is known to load here and run on the settings' runtime."""
    try:
        path = resolve_model_dir(settings.model_path)
        if not (path / "saved_model.pb").is_file():
            raise ModelError("not a SavedModel directory (no saved_model.pb)", path=str(path))
        metadata = read_metadata(path)
    except ModelError as exc:
        raise SettingProblem("model", str(exc)) from None
    problems = FeatureConfig.from_dict(metadata["features"]).mismatches(PIPELINE_FEATURES)
    if problems:
        raise SettingProblem(
            "model", f"{path}: its features differ from the pipeline's: {'; '.join(problems)}"
        )
    runtime = choose_runtime(settings.runtime, metadata, math.inf)
    asset = ASSETS.get(runtime)
    if asset is not None and not metadata.get(asset.key):
        raise SettingProblem(
            "runtime", f"{runtime} needs the model's {asset.kind} in assets/ ({asset.how}): {path}"
        )
    if runtime in RUNTIME_EXTRAS:
        try:
            require(RUNTIME_EXTRAS[runtime], f"runtime {runtime}")
        except MissingExtra as exc:
            raise SettingProblem("runtime", str(exc)) from None
    return metadata


def _check_media_root(root: Path) -> None:
    try:
        if not root.is_dir():
            raise SettingProblem(
                "media_roots",
                f"{root} is not a directory" if root.exists() else f"{root} does not exist",
            )
        with os.scandir(root) as entries:
            next(entries, None)
    except OSError as exc:
        raise SettingProblem("media_roots", f"{root} cannot be read: {exc.strerror}") from None


def _check_output_root(root: Path) -> None:
    if not root.is_dir():
        shown = f"{root} is not a directory" if root.exists() else f"{root} does not exist"
        raise SettingProblem("output_root", shown)
    try:
        fd, name = tempfile.mkstemp(prefix=".ocml-write-check-", dir=root)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise SettingProblem("output_root", f"{root} is not writable: {exc.strerror}") from None


def refuse(problem: SettingProblem) -> NoReturn:
    """Ends the process with the one-line report of ``problem``."""
    print(f"{FAILED_PREFIX} {' '.join(str(problem).split())}", file=sys.stderr, flush=True)
    raise SystemExit(REFUSED)


@worker_init.connect
def check_on_start(**_: Any) -> None:
    """The check in the worker's main process, before its pool starts or it takes a job."""
    try:
        check_worker_settings(current_settings())
    except SettingProblem as problem:
        refuse(problem)
