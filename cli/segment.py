"""``ocml segment``: segment files right here, one after another, with the model loaded once."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import click

from ocml.cli import exits
from ocml.cli.options import (
    cli_settings,
    config_option,
    format_option,
    no_speech_option,
    param_options,
    preset_option,
    refuse_shared_results,
    track_identity,
    track_options,
)
from ocml.pipeline.errors import ModelError, OcmlError, ParamsError
from ocml.pipeline.result import Result, TrackIdentity
from ocml.pipeline.runtimes.names import AUTO, RUNTIME_CHOICES
from ocml.pipeline.writers import FORMATS


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Write results here, creating the directory if needed (default: beside each input).",
)
@format_option(FORMATS, default_help="default from the settings: json,smil")
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    default=None,
    help="SavedModel directory, or a training run's (its savedmodel/) (default from the "
    "settings: the shipped model).",
)
@click.option(
    "--runtime",
    type=click.Choice(RUNTIME_CHOICES),
    default=None,
    help="Where the model runs (default from the settings: auto). 'onnx': ONNX Runtime, for a "
    "model with an ONNX asset (the shipped one has it): no TensorFlow, faster to start and to "
    "infer, a third of the memory. 'tensorflow': the reference. 'litert': LiteRT, for a model "
    "exported with a TFLite asset: quick to start, slow to infer. 'auto': onnx when the model "
    "has the asset, else litert when it has a TFLite asset and the inputs hold at most 20 "
    "minutes of audio, else tensorflow.",
)
@preset_option
@click.option(
    "--probabilities",
    is_flag=True,
    help="Also write per-frame speech probabilities (NAME.probs.npy, float16): the same as "
    "adding probabilities to --format.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars (summaries still print).")
@no_speech_option
@track_options
@config_option
@param_options
def segment(
    inputs: tuple[Path, ...],
    output_dir: Path | None,
    formats: tuple[str, ...],
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
    params: dict[str, float],
) -> None:
    """Find the speech in each INPUT and write it as JSON, Opencast SMIL and more.

    INPUT is any audio or video file (wav, flac, mp3, ogg, opus, mp4, m4a, mkv, webm, mov).
    Outputs are named after the input: lecture.json, lecture.smil, lecture.cutmarks.json,
    lecture.txt (Audacity labels), lecture.rttm and lecture.probs.npy.

    Two inputs that would write the same result file (the same name with -o DIR, or beside
    each other) are refused before any work, naming both: leave out -o, or run them separately.
    A file that cannot be processed is reported on one line, `ocml: failed: <code>: <message>`,
    and skipped, and nothing is written for it; the exit status is 0 only if every file
    succeeded, else 1 (2 for a usage error).

    Defaults for the model, preset, formats and parameters come from the settings
    (config/default.yaml, then --config / $OCML_CONFIG, then OCML_* variables); options given
    here override them. The parameter options are the same in `ocml submit`, `ocml watch` and
    `ocml-train evaluate`.

    \b
    Examples:
      ocml segment lecture.mp4
      ocml segment *.flac -o results/ --format json,smil,cutmarks
      ocml segment lecture.mp4 --preset opencast --min-silence 5
      ocml segment lecture.mp4 --preset trim --format smil,cutmarks
    """
    from ocml.pipeline.model import load_model
    from ocml.pipeline.threads import set_inference_threads
    from ocml.worker.jobs import JobInvalid, resolve_job_params

    track = track_identity(
        track_id=track_id, track_flavor=track_flavor, track_src=track_src, inputs=len(inputs)
    )
    settings = cli_settings(config_path)
    extra = ("probabilities",) if probabilities else ()
    wanted = tuple(dict.fromkeys((formats or settings.formats) + extra))
    _refuse_shared_results(inputs, output_dir, wanted)
    model_path = settings.model_path if model_path is None else model_path
    set_inference_threads(1)  # one inference thread per process; run one process per core
    # Asked before the model loads: its background import runs fd 2 through a filter for a while.
    show_progress = not quiet and sys.stderr.isatty()
    try:
        runtime = _runtime(runtime or settings.runtime, model_path, inputs)
        # The network loads while the first file decodes; its errors surface at first use.
        model = load_model(model_path, runtime=runtime, background=True)
        resolved = resolve_job_params(
            settings, preset=preset, params=params, tuned=model.postprocess
        )
        options = _Options(no_speech=no_speech, track=track, show_progress=show_progress)
        failures = sum(
            not _segment_one(path, output_dir, wanted, model, resolved, options) for path in inputs
        )
    except (ParamsError, JobInvalid) as exc:
        raise exits.Failure(exc.code, str(exc), status=exits.USAGE) from None
    except OcmlError as exc:
        raise exits.Failure(exc.code, str(exc)) from None
    if failures:
        click.echo(f"{failures} of {len(inputs)} files failed", err=True)
        sys.exit(exits.FAILED)


def _refuse_shared_results(
    inputs: tuple[Path, ...], output_dir: Path | None, formats: tuple[str, ...]
) -> None:
    """Refuses two inputs whose results would land in the same file, before the model loads."""
    from ocml.pipeline.writers import output_paths

    outputs = []
    for path in inputs:
        try:
            paths = output_paths(
                path.parent if output_dir is None else output_dir, path.stem, formats
            )
        except (OcmlError, ValueError):
            continue  # reported when the file's turn comes
        outputs.append((str(path), [str(p) for p in paths.values()]))
    fix = (
        "leave out -o to write each result beside its input, or give each its own -o DIR"
        if output_dir is not None
        else "give one of them its own -o DIR"
    )
    refuse_shared_results(outputs, fix=fix)


def _runtime(requested: str, model_path: Path, inputs: tuple[Path, ...]) -> str:
    """The runtime for this call; ``auto`` reads the inputs' headers for their total duration."""
    from ocml.pipeline.decode import probe
    from ocml.pipeline.model_metadata import read_metadata
    from ocml.pipeline.runtimes.choice import choose_runtime, runtime_depends_on_duration

    if requested != AUTO:
        return requested
    metadata = read_metadata(model_path)
    if not runtime_depends_on_duration(metadata):
        return choose_runtime(requested, metadata, 0.0)
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
        exits.report(exc.code, str(exc))
        return False
    except Exception as exc:  # an unexpected failure still must not stop the other files
        exits.report("internal_error", f"{path}: unexpected {type(exc).__name__}: {exc}")
        return False
    click.echo(_summary(path, result, written))
    return True


def _summary(path: Path, result: Result, written: dict[str, Path]) -> str:
    """One line per file: durations, segments (and the voice ``min_voice`` dropped), speed,
    the files written."""
    duration = result.input.duration
    speech = sum(s.end - s.start for s in result.segments)
    speed = duration / result.processing_seconds if result.processing_seconds > 0 else float("inf")
    dropped = result.dropped_voice
    why = (
        f" (voice under min_voice {result.params.min_voice:g} s dropped: "
        f"{dropped.stretches} {'stretch' if dropped.stretches == 1 else 'stretches'}, "
        f"{dropped.seconds:.1f} s)"
        if dropped.stretches
        else ""
    )
    return (
        f"{path}: {duration:.1f} s, {len(result.segments)} speech segments{why}, "
        f"{speech:.1f} s speech ({100 * speech / duration:.0f} %), "
        f"{result.processing_seconds:.2f} s ({speed:.0f}x real time) -> "
        + ", ".join(str(p) for p in written.values())
    )


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
