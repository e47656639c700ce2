"""``ocml segment``: segment files right here, one after another, with the model loaded once."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from ocml.pipeline.errors import ModelError, OcmlError
from ocml.pipeline.result import TrackIdentity
from ocml.pipeline.writers import FORMATS as ALL_FORMATS
from ocml.worker.options import (
    cli_settings,
    config_option,
    no_speech_option,
    track_identity,
    track_options,
)

FORMATS = tuple(name for name in ALL_FORMATS if name != "probabilities")
PARAM_OPTIONS = (
    ("threshold", "Probability at which speech starts."),
    ("neg_threshold", "Probability below which speech ends (hysteresis)."),
    ("min_speech", "Seconds: drop speech shorter than this."),
    ("min_silence", "Seconds: bridge silences shorter than this."),
    ("min_voice", "Seconds: after bridging, drop voice stretches shorter than this."),
    ("pad", "Seconds added before and after each segment."),
    ("pad_before", "Seconds added before each segment (overrides --pad)."),
    ("pad_after", "Seconds added after each segment (overrides --pad)."),
    (
        "trim_min_speech",
        "Seconds: keep one segment, from the first to the last point where this much speech "
        "falls within --trim-window (set by --preset trim: 3; 0 = off).",
    ),
    ("trim_window", "Seconds: the window for --trim-min-speech (--preset trim: 10)."),
)


def _param_options(command: click.Command) -> click.Command:
    for name, text in reversed(PARAM_OPTIONS):
        command = click.option(
            "--" + name.replace("_", "-"), name, type=float, default=None, metavar="X", help=text
        )(command)
    return command


def _formats(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [name for name in names if name not in FORMATS]
    if unknown or not names:
        raise click.BadParameter(
            f"{', '.join(unknown) or value!r}: choose from {', '.join(FORMATS)}"
        )
    return names


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Write results here, creating the directory if needed (default: beside each input).",
)
@click.option(
    "-f",
    "--format",
    "formats",
    default=None,
    callback=_formats,
    help=f"Comma-separated outputs: {', '.join(FORMATS)} (default from the settings: json,smil).",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    default=None,
    help="SavedModel directory (default from the settings: the shipped model).",
)
@click.option(
    "--runtime",
    type=click.Choice(["tensorflow", "litert", "auto"]),
    default=None,
    help="Run the model on TensorFlow (default from the settings) or on LiteRT, for a model "
    "exported with a TFLite asset: starts ~3 s sooner in ~600 MB less, but infers slower; "
    "'auto': LiteRT when the inputs hold at most 20 minutes of audio.",
)
@click.option(
    "--preset",
    default=None,
    help="Post-processing preset (default from the settings: 'default'): 'default'; "
    "'opencast' for the semantics of Opencast's silence detection (cut silences of 10 s or "
    "more, drop voice under 60 s, keep 2 s before speech); 'trim' for one segment from the "
    "first to the last sustained speech (3 s within 10 s), padded by 2 s: cuts only the ends.",
)
@click.option(
    "--probabilities",
    is_flag=True,
    help="Also write per-frame speech probabilities (NAME.probs.npy, float16).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars (summaries still print).")
@no_speech_option
@track_options
@config_option
@_param_options
def segment(
    inputs: tuple[Path, ...],
    output_dir: Path | None,
    formats: tuple[str, ...] | None,
    model_path: Path | None,
    runtime: str | None,
    preset: str | None,
    probabilities: bool,
    quiet: bool,
    no_speech: str,
    track_id: str | None,
    track_flavor: str | None,
    track_src: str | None,
    config_path: str | None,
    **overrides: float | None,
) -> None:
    """Find the speech in each INPUT and write it as JSON, Opencast SMIL and more.

    INPUT is any audio or video file (wav, flac, mp3, ogg, opus, mp4, m4a, mkv, webm, mov).
    Outputs are named after the input: lecture.json, lecture.smil, lecture.cutmarks.json,
    lecture.txt (Audacity labels), lecture.rttm and lecture.probs.npy.

    A file that cannot be processed is reported and skipped, and nothing is written for it;
    the exit status is 0 only if every file succeeded.

    Defaults for the model, preset, formats and parameters come from the settings
    (config/default.yaml, then --config / $OCML_CONFIG, then OCML_* variables); options given
    here override them.

    \b
    Examples:
      ocml segment lecture.mp4
      ocml segment *.flac -o results/ --format json,smil,cutmarks
      ocml segment lecture.mp4 --preset opencast --min-silence 5
      ocml segment lecture.mp4 --preset trim --format smil,cutmarks
    """
    from ocml.pipeline.model import configure_tensorflow, load_model
    from ocml.pipeline.segment import resolve_params

    track = track_identity(
        track_id=track_id, track_flavor=track_flavor, track_src=track_src, inputs=len(inputs)
    )
    settings = cli_settings(config_path)
    if model_path is None and settings.model != "default":
        model_path = Path(settings.model)
    configure_tensorflow(1)  # one inference thread per process; run one process per core
    # Asked before the model loads: its background import runs fd 2 through a filter for a while.
    show_progress = not quiet and sys.stderr.isatty()
    try:
        runtime = _runtime(runtime or settings.runtime, model_path, inputs)
        # The network loads while the first file decodes; its errors surface at first use.
        model = load_model(model_path, runtime=runtime, background=True)
        params = resolve_params(
            model,
            preset_name=preset or settings.preset,
            overrides={**settings.params, **_given(overrides)},
        )
    except OcmlError as exc:
        raise click.ClickException(str(exc)) from None
    wanted = (formats or settings.formats) + (("probabilities",) if probabilities else ())
    options = _Options(no_speech=no_speech, track=track, show_progress=show_progress)
    try:
        failures = sum(
            not _segment_one(path, output_dir, wanted, model, params, options) for path in inputs
        )
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    if failures:
        click.echo(f"{failures} of {len(inputs)} files failed", err=True)
        sys.exit(1)


def _runtime(requested: str, model_path: Path | None, inputs: tuple[Path, ...]) -> str:
    """The runtime for this call; ``auto`` reads the inputs' headers for their total duration."""
    from ocml.pipeline.decode import probe
    from ocml.pipeline.model import choose_runtime, default_model_path, read_metadata

    if requested != "auto":
        return requested
    metadata = read_metadata(model_path or default_model_path())
    if not metadata.get("tflite"):
        return "tensorflow"
    seconds = 0.0
    for path in inputs:
        try:
            seconds += probe(path).duration
        except OcmlError:
            continue  # reported when the file's turn comes
    return choose_runtime(requested, metadata, seconds)


@dataclass(frozen=True)
class _Options:
    """What ``segment`` does with each result besides the parameters: the no-speech choice, the
    Opencast track identity for the SMIL, progress bars."""

    no_speech: str
    track: TrackIdentity
    show_progress: bool


def _segment_one(path, output_dir, formats, model, params, options: _Options) -> bool:
    """Segment and write one file; report a failure on one line and return whether it worked."""
    from ocml.pipeline.result import require_speech
    from ocml.pipeline.segment import segment_file
    from ocml.pipeline.writers import ensure_output_dir, write_outputs

    out_dir = output_dir if output_dir is not None else path.parent
    try:
        ensure_output_dir(out_dir)
        if options.show_progress:
            with _ProgressBar(path.name) as bar:
                result = segment_file(path, model, params, progress=bar.update)
        else:
            result = segment_file(path, model, params)
        result = replace(result, track=options.track)
        require_speech(result, no_speech=options.no_speech)
        written = write_outputs(result, out_dir, path.stem, formats)
    except ModelError:
        raise  # the model, not this file: every other file would fail the same way
    except OcmlError as exc:
        click.echo(f"error: {exc}", err=True)
        return False
    except Exception as exc:  # an unexpected failure still must not stop the other files
        click.echo(f"error: {path}: unexpected {type(exc).__name__}: {exc}", err=True)
        return False
    click.echo(_summary(path, result, written))
    return True


def _summary(path: Path, result: Any, written: dict[str, Path]) -> str:
    duration = result.input.duration
    speech = sum(s.end - s.start for s in result.segments)
    speed = duration / result.processing_seconds if result.processing_seconds > 0 else float("inf")
    return (
        f"{path}: {duration:.1f} s, {len(result.segments)} speech segments, "
        f"{speech:.1f} s speech ({100 * speech / duration:.0f} %), "
        f"{result.processing_seconds:.2f} s ({speed:.0f}x real time) -> "
        + ", ".join(str(p) for p in written.values())
    )


def _given(overrides: dict[str, float | None]) -> dict[str, float]:
    return {name: value for name, value in overrides.items() if value is not None}


class _ProgressBar:
    """A click progress bar over a recording's seconds, fed by ``segment_file``'s callback."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._bar = None
        self._shown = 0

    def __enter__(self) -> _ProgressBar:
        return self

    def update(self, processed: float, duration: float) -> None:
        if self._bar is None:
            self._bar = click.progressbar(
                length=max(1, int(duration)), label=self._label, file=sys.stderr, show_eta=True
            )
            self._bar.__enter__()
        done = min(int(processed), self._bar.length)
        self._bar.update(done - self._shown)
        self._shown = done

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
