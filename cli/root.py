"""The ``ocml`` operator command: segment files locally, run and feed the worker, audit results."""

from __future__ import annotations

import click

from ocml.cli import exits
from ocml.cli.player import COMMANDS as PLAYER_COMMANDS
from ocml.cli.queue import COMMANDS as QUEUE_COMMANDS
from ocml.cli.segment import segment


@click.group(
    cls=exits.Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="opencast-ml")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    expose_value=False,
    help="Show the traceback of an unexpected error (a bug to report) instead of its one line.",
)
def main() -> None:
    """Find speech and silence in lecture recordings, for Opencast.

    \b
    Segment files right here:        ocml segment lecture.mp4 -o results/
    Queue them for a worker fleet:   ocml worker   (on each host), then ocml submit lecture.mp4 --wait
    Audit a result by ear and eye:   ocml play lecture.mp4 --result results/lecture.json

    \b
    Exit status, the same for every command:
      0 success; 1 a job or an input failed; 2 usage error (bad option, argument, parameter,
      setting or pair of inputs; nothing was done); 3 Redis cannot be reached; 130 interrupted.
    Every failure ends with one line: ocml: failed: <code>: <message>.
    """


for command in (segment, *QUEUE_COMMANDS, *PLAYER_COMMANDS):
    main.add_command(command)
