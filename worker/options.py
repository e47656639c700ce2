"""Command-line pieces shared by the ``ocml`` commands: ``--config`` and its loading, and the
result options ``segment`` and ``submit`` share (``--no-speech``, ``--track-*``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ocml.config.settings import CONFIG_ENV, Settings, SettingsError, load_settings
from ocml.pipeline.errors import TrackError
from ocml.pipeline.result import NO_SPEECH_CHOICES, TrackIdentity

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    envvar=CONFIG_ENV,
    help="YAML settings file (default: $OCML_CONFIG); OCML_* variables override it.",
)


def cli_settings(config_path: str | None) -> Settings:
    """The settings, or a one-line click error naming the bad key."""
    try:
        return load_settings(config_path)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


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
