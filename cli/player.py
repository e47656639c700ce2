"""``ocml play`` and ``ocml plot``: audit a result by ear and eye, or draw it as a figure.

pygame and matplotlib are imported only when a command runs, so ``ocml --help`` stays fast; they
come with the ``player`` extra, and a command says so when it is not installed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ocml.cli import exits
from ocml.pipeline.errors import OcmlError
from ocml.pipeline.extras import require

MEDIA = click.Path(exists=True, dir_okay=False, path_type=Path)
FILE = click.Path(dir_okay=False, path_type=Path)


def _size(value: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` → (width, height), at least 640×400."""
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 1280x720, got {value!r}") from None
    if width < 640 or height < 400:
        raise click.BadParameter(f"window must be at least 640x400, got {value!r}")
    return width, height


FORCE = click.option(
    "--force",
    is_flag=True,
    help="Show a result of another recording (its sha256 is not MEDIA's) instead of refusing "
    "it; the player then saves no corrections.",
)


def _session(
    media: Path,
    result: Path | None,
    probabilities: Path | None,
    model: Path | None,
    force: bool,
):
    """The session to show: from a result file, or by running the pipeline with a progress bar."""
    from ocml.player.session import from_pipeline, from_result

    if result is not None:
        return from_result(media, result, probabilities=probabilities, force=force)
    if probabilities is not None:
        raise click.UsageError(
            "--probabilities needs --result (without it the pipeline computes them)"
        )
    with click.progressbar(length=1000, label=f"segmenting {media.name}", file=sys.stderr) as bar:

        def progress(done: float, total: float) -> None:
            bar.update(int(1000 * min(done / total, 1.0)) - bar.pos if total > 0 else 0)

        return from_pipeline(media, model_path=model, progress=progress)


@click.command()
@click.argument("media", type=MEDIA)
@click.option(
    "--result", "-r", type=FILE, help="Result JSON to show (default: run the pipeline first)."
)
@click.option(
    "--probabilities",
    type=FILE,
    help="Per-frame probabilities .npy (default: NAME.probs.npy beside the result).",
)
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="SavedModel, or a training run's directory, for running the pipeline (default: the "
    "shipped model).",
)
@click.option(
    "--screenshot", type=FILE, help="Render one frame to this PNG without a display and exit."
)
@click.option(
    "--at",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="Cursor position in seconds for --screenshot (and where playback starts).",
)
@click.option("--size", default="1280x720", show_default=True, help="Window size WIDTHxHEIGHT.")
@FORCE
def play(
    media: Path,
    result: Path | None,
    probabilities: Path | None,
    model: Path | None,
    screenshot: Path | None,
    at: float,
    size: str,
    force: bool,
) -> None:
    """Play MEDIA with its speech segments, audit them and save corrected labels.

    \b
    Keys: space play/pause, ←/→ seek 5 s (shift 1 s), n/p next/previous boundary, +/- zoom,
    Home/End, v waveform/spectrogram, f flip the segment under the cursor, x split at the cursor,
    drag a boundary with the mouse, s save NAME.labels.txt + NAME.labels.json beside MEDIA
    (where `ocml-train spectrograms` finds them; they win over any other label file), q quit.

    A result of another recording (its input's sha256 is not MEDIA's) is refused, naming both,
    unless --force. Without a sound device it plays silently: the cursor still moves.
    """
    dims = _size(size)
    try:
        require("player", "the player", modules=["pygame"])
        session = _session(media, result, probabilities, model, force)
        if at > session.duration:
            raise click.BadParameter(
                f"{at} s is beyond the end of the recording ({session.duration:.3f} s)",
                param_hint="--at",
            )
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        from ocml.player import ui

        if screenshot is not None:
            click.echo(ui.screenshot(session, screenshot, at=at, size=dims))
            return
        saved = ui.run(session, size=dims, at=at, no_sound=_no_sound).saved
    except OcmlError as exc:
        raise _failure(exc) from exc
    if saved is not None:
        click.echo(
            f"corrected labels: {saved[1]} (Audacity: {saved[0].name}); ocml-train reads them"
        )


def _failure(exc: OcmlError) -> exits.Failure:
    """The command's failure line for ``exc``; a result of another recording is a bad pair of
    inputs, a usage error."""
    usage = exc.code == "result_mismatch"
    return exits.Failure(exc.code, str(exc), status=exits.USAGE if usage else exits.FAILED)


def _no_sound(reason: str) -> None:
    """Says once on stderr that the player plays silently, and why."""
    click.echo(
        f"ocml play: no sound device ({reason}); playing without sound, the cursor still moves",
        err=True,
    )


@click.command()
@click.argument("media", type=MEDIA)
@click.option("--result", "-r", type=FILE, required=True, help="Result JSON to draw.")
@click.option(
    "--probabilities",
    type=FILE,
    help="Per-frame probabilities .npy (default: NAME.probs.npy beside the result).",
)
@click.option(
    "--reference",
    type=FILE,
    help="Reference labels to compare with: labels JSON, result JSON, Audacity .txt, RTTM or SMIL.",
)
@click.option(
    "--output", "-o", type=FILE, required=True, help="PNG (or any matplotlib format) to write."
)
@FORCE
def plot(
    media: Path,
    result: Path,
    probabilities: Path | None,
    reference: Path | None,
    output: Path,
    force: bool,
) -> None:
    """Draw MEDIA's spectrogram, speech probability and segments (and misses/false alarms)."""
    from ocml.pipeline.labels import read_labels
    from ocml.player.plot import plot_session
    from ocml.player.session import from_result

    try:
        require("player", "ocml plot", modules=["matplotlib"])
        session = from_result(media, result, probabilities=probabilities, force=force)
        ref = read_labels(reference).speech if reference is not None else None
        click.echo(plot_session(session, output, reference=ref))
    except OcmlError as exc:
        raise _failure(exc) from exc


COMMANDS = [play, plot]
