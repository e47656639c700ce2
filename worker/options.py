"""Command-line pieces shared by the ``ocml`` commands: the ``--config`` option and its loading."""

from __future__ import annotations

import click

from ocml.config.settings import CONFIG_ENV, Settings, SettingsError, load_settings

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
