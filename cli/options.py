"""Command-line options shared by ``ocml`` and ``ocml-train``, each defined once.

``--config`` loads the settings; ``param_options`` adds one option per post-processing parameter,
made from ``SegmentParams`` (``--threshold``, ``--min-silence`` ...), plus the generic
``-p/--param KEY=VALUE``; ``preset_option`` chooses the preset they refine; ``format_option``
takes a comma list of output formats; ``--no-speech`` and ``--track-*`` are the result options
``segment`` and ``submit`` share, and ``refuse_shared_results`` their check that no two inputs
write the same result file. Only click, the exit statuses, the settings and the pipeline's
parameter and result types are imported here (no Celery), so ``ocml-train`` uses them too.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import click

from ocml.cli.exits import USAGE, Failure
from ocml.config.settings import CONFIG_ENV, Settings, SettingsError, load_settings
from ocml.pipeline.errors import TrackError
from ocml.pipeline.postprocess import PRESETS, parameter_help
from ocml.pipeline.result import NO_SPEECH_CHOICES, TrackIdentity

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    envvar=CONFIG_ENV,
    help="YAML settings file (default: $OCML_CONFIG); OCML_* variables override it.",
)

PARAM_HELP = (
    "Any post-processing parameter by its name, e.g. -p min_silence=2 (the same as "
    "--min-silence 2); repeatable. A generic escape hatch for scripts; the named options win."
)


def cli_settings(config_path: str | None) -> Settings:
    """The settings, or a usage failure (``bad_settings``) whose one line names the bad key."""
    try:
        return load_settings(config_path)
    except SettingsError as exc:
        raise Failure("bad_settings", str(exc), status=USAGE) from None


no_speech_option = click.option(
    "--no-speech",
    type=click.Choice(NO_SPEECH_CHOICES),
    default="keep",
    show_default=True,
    help="Without any speech: 'keep' writes a result that cuts nothing (SMIL: one par over the "
    "whole recording, cut marks []), 'fail' fails the file with error no_speech.",
)

_TRACK_OPTIONS = (
    ("--track-id", "track_id", "Opencast track id for the SMIL's paramGroup (default: derived)."),
    (
        "--track-flavor",
        "track_flavor",
        "Opencast track flavor for the SMIL (default: presenter/source).",
    ),
    (
        "--track-src",
        "track_src",
        "The track's URI in the media package, for the SMIL's track-src and clip src "
        "(default: the input's file:// URI).",
    ),
)


def track_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds ``--track-id``, ``--track-flavor`` and ``--track-src`` (one input only)."""
    for flag, name, text in reversed(_TRACK_OPTIONS):
        command = click.option(flag, name, default=None, metavar="TEXT", help=text)(command)
    return command


def track_identity(
    *, track_id: str | None, track_flavor: str | None, track_src: str | None, inputs: int
) -> TrackIdentity:
    """The ``--track-*`` options as a ``TrackIdentity``; a usage error when malformed or when
    given for more than one input (a track identity names one recording)."""
    track = dict(id=track_id, flavor=track_flavor, src=track_src)
    if inputs != 1 and any(value is not None for value in track.values()):
        raise click.UsageError(
            f"--track-id/--track-flavor/--track-src need exactly one input, got {inputs}"
        )
    try:
        return TrackIdentity(**track)
    except TrackError as exc:
        raise click.UsageError(str(exc)) from None


def refuse_shared_results(outputs: Sequence[tuple[str, Iterable[str]]], *, fix: str) -> None:
    """Refuses, before any work, two inputs that would write the same result file: a usage
    failure (``results_collide``) on one line naming both inputs and the file, then ``fix``.

    ``outputs`` pairs each input as given with the paths of the files it would write.
    """
    seen: dict[str, tuple[int, str]] = {}
    for index, (name, paths) in enumerate(outputs):
        for path in paths:
            first, other = seen.setdefault(os.path.realpath(path), (index, name))
            if first == index:
                continue
            if other == name:
                message = f"{name} is given twice; give each input once"
            elif os.path.realpath(other) == os.path.realpath(name):
                message = f"{other} and {name} are the same file; give it once"
            else:
                message = f"{other} and {name} would both write {path}; {fix}"
            raise Failure("results_collide", message, status=USAGE)


def parse_assignments(items: Collection[str], *, option: str = "--param") -> dict[str, float]:
    """``KEY=NUMBER`` items as ``{key: number}``; ``click.BadParameter`` naming ``option`` and
    quoting a bad item (the one parser of ``--param`` and ``ocml-train synth --weight``)."""
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        try:
            out[key] = float(value)
        except ValueError:
            raise click.BadParameter(f"{key}: not a number: {value!r}", param_hint=option) from None
    return out


def param_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the post-processing options to a click command, which receives them as ``params``.

    ``params`` maps parameter names to the values given (``--param`` first, named options over
    them); parameters not given are left out, so presets, settings and the model fill them in.
    """
    names = parameter_help()

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        params = parse_assignments(kwargs.pop("param_assignments"))
        for name in names:
            value = kwargs.pop(name)
            if value is not None:
                params[name] = value
        return command(*args, params=params, **kwargs)

    for name, text in reversed(names.items()):
        metavar = "P" if name.endswith("threshold") else "DB" if name.endswith("_db") else "SECONDS"
        run = click.option(
            "--" + name.replace("_", "-"), name, type=float, metavar=metavar, help=text
        )(run)
    return click.option(
        "-p", "--param", "param_assignments", multiple=True, metavar="KEY=VALUE", help=PARAM_HELP
    )(run)


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds ``--model-version`` and ``--any-model``: which model the submitted jobs expect."""
    command = click.option(
        "--any-model",
        is_flag=True,
        help="The jobs run on whatever model a worker serves (they expect none).",
    )(command)
    return click.option(
        "--model-version",
        metavar="VERSION",
        help="The jobs expect the settings' model by name and this version, any build of it "
        "(default: that very model: name, version and digest). A worker serving another "
        "leaves the job to others; it fails with model_mismatch after max_handoffs refusals.",
    )(command)


preset_option = click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    help="Post-processing preset (default from the settings: 'default', tuned for the model); "
    "'opencast' for the semantics of Opencast's silence detection (cut silences of 10 s or "
    "more, drop voice under 60 s, keep 2 s before speech); 'trim' for one segment over the "
    "lecture, padded by 2 s: from the first to the last sustained speech (3 s within 10 s), "
    "extended across silences under 10 s to the words around it; cuts only the ends. "
    "The parameter options refine it.",
)


def format_option(known: Collection[str], *, default_help: str) -> Callable[..., Any]:
    """``-f/--format a,b``: a comma list of names from ``known`` (repeatable; empty tuple if absent)."""

    def split(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> tuple:
        names = tuple(dict.fromkeys(part.strip() for value in values for part in value.split(",")))
        names = tuple(name for name in names if name)
        unknown = [name for name in names if name not in known]
        if unknown or (values and not names):
            raise click.BadParameter(
                f"{', '.join(map(repr, unknown)) or repr(','.join(values))}: "
                f"choose from {', '.join(known)}"
            )
        return names

    return click.option(
        "-f",
        "--format",
        "formats",
        multiple=True,
        callback=split,
        metavar="NAME[,NAME...]",
        help=f"Comma-separated outputs: {', '.join(known)} ({default_help}).",
    )
