"""`ocml-train`: build training data, train, evaluate and export speech/silence models.

TensorFlow is imported only inside the commands that need it, so ``ocml-train --help`` is instant;
it and the other libraries of training come with the ``train`` extra (`exits.Group` names it when
one is missing).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from ocml.cli import exits
from ocml.cli.options import param_options, parse_assignments
from ocml.models.recipe import ARCHITECTURES, Recipe, load_recipe
from ocml.pipeline.extras import require


def _threads(threads: int) -> None:
    """This process's TensorFlow threads, from the command's option, applied before any op; the
    one-line ``missing_extra`` failure first when the ``train`` extra is not installed."""
    from ocml.pipeline.threads import import_tensorflow, set_inference_threads

    require("train", click.get_current_context().command_path)
    set_inference_threads(threads)
    import_tensorflow()


LABEL_KINDS = {  # how `spectrograms` names where its labels came from
    "corrected": "corrected in the player",
    "labels": "from label files",
    "result": "from model results (--results-as-labels)",
    "none": "unlabelled",
}


class _TrainGroup(exits.Group):
    """`exits.Group` for ``ocml-train``, whose missing libraries are those of the ``train`` extra."""

    extra = "train"


@click.group(
    cls=_TrainGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Also log every skipped source file and failed TTS call, and show the traceback of an "
    "unexpected error (a bug to report).",
)
def main(verbose: bool) -> None:
    """Train and evaluate the models that find speech in lecture recordings.

    The usual sequence, from nothing to a model the worker can load:

    \b
      ocml-train synth data/synth
      ocml-train spectrograms data/synth data/spec
      ocml-train train --recipe default --data data/spec --out runs/default
      ocml-train evaluate runs/default ../shared/data/dev ../shared/data/val --tune
      ocml-train calibrate runs/default ../shared/data/dev ../shared/data/val --out runs/cal

    Every exported model is a SavedModel with its feature configuration in assets/ocml.json, so
    the pipeline computes exactly the features it was trained on.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@main.group()
def sources() -> None:
    """The catalogue of pinned real recordings that `synth` mixes (models/catalogue.yaml).

    Each source is pinned to a Debian package version, a PyPI release or a git commit, with the
    licence of its audio. `fetch` brings them into a folder that `synth --sources` reads.
    """


@sources.command("list")
def sources_list() -> None:
    """Print every catalogue source: kind, origin, pin, licence and what is held out."""
    from ocml.models.catalogue import load_catalogue

    for name, s in load_catalogue().items():
        held = (
            "held out"
            if s.heldout
            else f"held out {s.heldout_share:.0%}"
            if s.heldout_share
            else ""
        )
        held = held or ("held out: " + ", ".join(s.heldout_voices) if s.heldout_voices else "")
        click.echo(
            f"{name:<26} {s.kind:<9} {s.origin}:{s.package}@{s.version[:12]:<13} "
            f"{s.licence}{'  [' + held + ']' if held else ''}"
        )


@sources.command("fetch")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default="data/sources")
@click.option("--only", "names", multiple=True, help="Fetch only this source (repeatable).")
@click.option(
    "--local",
    "locals_",
    multiple=True,
    metavar="NAME=DIR",
    help="Take source NAME from DIR, a folder already holding its tree (no network; repeatable).",
)
@click.option(
    "--mirror",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of bare git repositories named owner+name, tried before GitHub.",
)
def sources_fetch(
    folder: Path, names: tuple[str, ...], locals_: tuple[str, ...], mirror: Path | None
) -> None:
    """Bring the catalogue's sources into FOLDER (default data/sources) at their pinned versions.

    Debian packages are downloaded and unpacked without installing them (apt-get download,
    dpkg-deb -x), PyPI releases with pip download, git repositories at their commit. A source
    already there at its version is kept.

    \b
    Examples:
      ocml-train sources fetch
      ocml-train sources fetch data/sources --only librispeech --mirror /srv/git-mirror
      ocml-train sources fetch --local fsdd=/media/usb/free-spoken-digit-dataset
    """
    from ocml.models.catalogue import load_catalogue, materialise

    catalogue = load_catalogue()
    local = {}
    for item in locals_:
        key, sep, value = item.partition("=")
        if not sep or not key or not Path(value).is_dir():
            raise click.BadParameter(f"expected NAME=DIR with a folder, got {item!r}", "--local")
        local[key] = Path(value)
    unknown = sorted((set(names) | set(local)) - set(catalogue))
    if unknown:
        raise click.UsageError(f"unknown source(s) {', '.join(unknown)}; see `sources list`")
    folder.mkdir(parents=True, exist_ok=True)
    for name in names or tuple(catalogue):
        source = catalogue[name]
        path = materialise(source, folder, local=local.get(name), mirror=mirror)
        click.echo(f"{name}: {len(source.files(path))} files in {path}")


@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--recipe",
    default="default",
    show_default=True,
    help="Recipe whose `synth:` section gives the data set (name in models/recipes or a YAML path).",
)
@click.option("--seed", type=int, help="Same seed, same installed sources: same data set.")
@click.option("--recordings", type=int, help="Number of recordings to mix.")
@click.option("--min-seconds", type=float, help="Shortest recording.")
@click.option("--max-seconds", type=float, help="Longest recording.")
@click.option(
    "--tts-utterances", type=int, help="Utterances to synthesise with espeak-ng/flite/festival."
)
@click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="SOURCE=W",
    help="How often SOURCE gives a recording's speaker, relative to the others (repeatable; "
    "0 leaves it out). Sources: espeak-ng, flite, festival, asterisk, alsa, freedesktop, "
    "tuxpaint, ktuberling, hedgewars, dir.",
)
@click.option(
    "--speech-dir",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of speech recordings to draw utterances from (repeatable; source `dir`).",
)
@click.option(
    "--noise-dir",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of noise/music/effects recordings (repeatable).",
)
@click.option(
    "--no-system-sources",
    is_flag=True,
    help="Use no installed Debian sounds (recorded voices, alerts, MIDI via fluidsynth).",
)
@click.option(
    "--sources",
    "catalogue_root",
    type=click.Path(file_okay=False),
    default="data/sources",
    show_default=True,
    help="Folder holding the recipe's catalogue sources (`ocml-train sources fetch` fills it).",
)
def synth(
    out: Path,
    recipe: str,
    seed: int | None,
    recordings: int | None,
    min_seconds: float | None,
    max_seconds: float | None,
    tts_utterances: int | None,
    weights: tuple[str, ...],
    speech_dir: tuple[str, ...],
    noise_dir: tuple[str, ...],
    no_system_sources: bool,
    catalogue_root: str,
) -> None:
    """Mix a labelled, lecture-like training set into OUT.

    What goes in is the recipe's `synth:` section (the default recipe builds the default model's
    data); options override it. Speakers come from text-to-speech (espeak-ng in all its languages
    and voice variants, speaking texts from the system's gettext catalogues; flite; festival in
    English, Catalan, Italian, Russian, Finnish, Hindi, Marathi and Telugu), from recorded voices
    in Debian packages (Asterisk's English prompts, ALSA and freedesktop, Tux Paint's stamp
    descriptions and KTuberling's words in the allowed languages, Hedgewars' voice packs) and
    from --speech-dir folders, each source drawn by its weight. Recorded clips are trimmed by
    energy and labelled sentence by sentence. Each recording has pauses of 0.2–10 s, quiet
    stretches at both ends, room tone, fans, hum, lecture-hall events (knocks, doors, applause,
    coughs, chairs, keyboards, steps, steady noise bursts), MIDI music in every General MIDI
    family with drums, sung melodies, one room's reverberation on the voice, the events and the
    music alike (tails labelled non-speech), telephone-band speech, SNRs of 0–30 dB and levels
    of −60 to −5 dBFS. Missing sources are skipped with a warning.

    Writes synth-NNNNN.flac with synth-NNNNN.json labels ({"duration", "speech": [[s, e], ...]})
    and manifest.json (with clips per source and language).

    \b
    Examples:
      ocml-train synth data/synth
      ocml-train synth data/synth-small --recordings 10 --weight tuxpaint=0
    """
    from ocml.models.dataset_writer import write_dataset
    from ocml.models.pools import config_from_recipe

    options = {
        "seed": seed,
        "recordings": recordings,
        "min_seconds": min_seconds,
        "max_seconds": max_seconds,
        "tts_utterances": tts_utterances,
    }
    cfg = config_from_recipe(
        load_recipe(recipe).to_dict()["synth"],
        overrides={k: v for k, v in options.items() if v is not None},
        weights=parse_assignments(weights, option="--weight"),
        system_sources=not no_system_sources,
        speech_dirs=speech_dir,
        noise_dirs=noise_dir,
        catalogue_root=catalogue_root,
    )
    with click.progressbar(length=cfg.recordings, label="mixing") as bar:
        manifest = write_dataset(cfg, out, progress=lambda i, n: bar.update(1))
    click.echo(
        f"{out}: {cfg.recordings} recordings, {manifest['hours']} h, "
        f"speech {manifest['speech_fraction']:.0%}; sources {json.dumps(manifest['pools'])}"
    )


@main.command()
@click.argument(
    "data", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--window", default=1000, show_default=True, help="Frames (10 ms) per window.")
@click.option("--hop", default=1000, show_default=True, help="Frames between window starts.")
@click.option("--per-shard", default=64, show_default=True, help="Windows per .npz shard.")
@click.option(
    "--unlabelled", is_flag=True, help="Accept recordings without label files (for pretrain)."
)
@click.option(
    "--results-as-labels",
    is_flag=True,
    help="Accept a model's result JSON (what `ocml segment` writes) as a recording's labels; "
    "without it such a recording is refused.",
)
@click.option("--png", is_flag=True, help="Also write every window as a PNG under OUT/png/.")
def spectrograms(
    data: tuple[Path, ...],
    out: Path,
    window: int,
    hop: int,
    per_shard: int,
    unlabelled: bool,
    results_as_labels: bool,
    png: bool,
) -> None:
    """Cut the recordings in the DATA folders into log-mel windows with per-frame labels, as .npz shards in OUT.

    Each DATA folder holds recordings with a label file beside each (same stem NAME). Corrected
    labels saved in `ocml play` (NAME.labels.json, NAME.labels.txt) come first; else NAME.json
    ({"duration", "speech": [[s, e], ...]}), an Audacity label track (NAME.txt), RTTM or an
    Opencast SMIL. A model's result JSON (NAME.json from `ocml segment`) is used only with
    --results-as-labels. Features are computed by the pipeline's own chunked generator, so
    training sees what inference sees. `train` streams the shards back, so data sets larger
    than memory work.

    \b
    Example:
      ocml-train spectrograms data/synth data/spec --png
      ocml-train spectrograms data/synth-a data/synth-b data/spec-ab
    """
    from ocml.models.datasets import load_dataset
    from ocml.models.spectrograms import ShardSpec, write_shards
    from ocml.pipeline.features import PIPELINE_FEATURES

    items = [
        item
        for folder in data
        for item in load_dataset(
            folder, require_labels=not unlabelled, results_as_labels=results_as_labels
        )
    ]
    with click.progressbar(length=len(items), label="features") as bar:
        index = write_shards(
            items,
            out,
            PIPELINE_FEATURES,
            ShardSpec(window=window, hop=hop, per_shard=per_shard),
            png=png,
            progress=lambda i, n: bar.update(1),
        )
    kinds = ", ".join(f"{n} {LABEL_KINDS[kind]}" for kind, n in index["labels"].items())
    click.echo(
        f"{out}: {len(index['shards'])} shards, {index['hours']} h, "
        f"speech {index['speech_fraction']:.0%}; labels: {kinds}"
    )


def _recipe(
    recipe: str | None,
    arch: str | None,
    label_fraction: float | None,
    epochs: int | None,
    teacher: str | None,
) -> Recipe:
    """The named recipe with the command-line overrides laid over it (checked)."""
    overrides: dict[str, Any] = {}
    if arch:
        overrides["arch"] = arch
    train: dict[str, Any] = {}
    if label_fraction is not None:
        train["label_fraction"] = label_fraction
    if epochs is not None:
        train["epochs"] = epochs
    if teacher is not None:
        train["teacher"] = teacher
    if train:
        overrides["train"] = train
    name = recipe or arch or "default"
    return load_recipe(name, overrides=overrides)


def _checkpoint(value: str) -> str | int:
    """``best``, ``last`` or an epoch number >= 1 (as an int), else a usage error quoting it."""
    if value in ("best", "last"):
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise click.BadParameter(f"must be 'best', 'last' or an epoch number >= 1, got {value!r}")


_recipe_opt = click.option(
    "--recipe",
    help="YAML recipe file, or the name of one in models/recipes "
    "(default: the one named after --arch; without --arch 'default', "
    "the shipped model's).",
)
_data_opt = click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Spectrogram folder written by `ocml-train spectrograms`.",
)
_out_opt = click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Model directory: recipe, history, checkpoints/ and savedmodel/.",
)
_onnx_opt = click.option(
    "--onnx/--no-onnx",
    default=True,
    show_default=True,
    help="Also write the model as assets/model.onnx (checked within 1e-4 of the SavedModel on "
    "TensorFlow), which `ocml segment` runs on ONNX Runtime without TensorFlow.",
)
_threads_opt = click.option("--threads", default=2, show_default=True, help="TensorFlow threads.")


@main.command()
@click.option(
    "--arch", type=click.Choice(ARCHITECTURES), help="Architecture (overrides the recipe's)."
)
@_recipe_opt
@_data_opt
@_out_opt
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted run from OUT/checkpoints, exactly where it stopped.",
)
@click.option(
    "--label-fraction", type=float, help="Use only this fraction of the labelled windows (0–1]."
)
@click.option(
    "--encoder",
    type=click.Path(exists=True, path_type=Path),
    help="autoencoder only: encoder weights from `ocml-train pretrain` (or its model dir).",
)
@click.option(
    "--teacher", help="SavedModel whose probabilities are blended into the targets (distillation)."
)
@click.option("--epochs", type=int, help="Override the recipe's epoch count.")
@click.option(
    "--init-from",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Start from the weights of this SavedModel of the same network (a second stage).",
)
@_threads_opt
def train(
    arch: str | None,
    recipe: str | None,
    data: Path,
    out: Path,
    resume: bool,
    label_fraction: float | None,
    encoder: Path | None,
    teacher: str | None,
    epochs: int | None,
    init_from: Path | None,
    threads: int,
) -> None:
    """Train a model on spectrogram shards and export it to OUT/savedmodel.

    Prints one line per epoch (training and validation loss and accuracy, the epoch's time and
    an estimate of the time the remaining epochs take), keeps the last, the best and every
    epoch's weights in OUT/checkpoints (export any with `ocml-train export --checkpoint`), stops
    early when validation loss stops improving and
    restores the best epoch. Window classifiers (vanilla_conv, autoencoder) are exported
    wrapped, so every model maps [batch, frames, n_mels] to [batch, frames].

    \b
    Examples:
      ocml-train train --recipe default --data data/spec --out runs/default
      ocml-train train --arch crnn --data data/spec --out runs/crnn
      ocml-train pretrain --data data/spec --out runs/ae
      ocml-train train --arch autoencoder --encoder runs/ae --label-fraction 0.05 \\
          --data data/spec --out runs/ae-5
    """
    _threads(threads)  # before TensorFlow is imported, which also keeps its start-up noise off
    from ocml.models.train import train as run

    r = _recipe(recipe, arch, label_fraction, epochs, teacher)
    if encoder is not None and encoder.is_dir():
        encoder = encoder / "encoder.weights.h5"
    run(
        r,
        data,
        out,
        resume=resume,
        echo=click.echo,
        encoder_weights=encoder,
        init_from=init_from,
    )


@main.command()
@_recipe_opt
@_data_opt
@_out_opt
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted run from OUT/checkpoints, exactly where it stopped.",
)
@_threads_opt
def pretrain(recipe: str | None, data: Path, out: Path, resume: bool, threads: int) -> None:
    """Pre-train the autoencoder without labels; writes OUT/encoder.weights.h5.

    The spectrogram folder may be unlabelled (`ocml-train spectrograms --unlabelled`). Then train
    a readout on few labels with `ocml-train train --arch autoencoder --encoder OUT`.
    """
    _threads(threads)  # before TensorFlow is imported, which also keeps its start-up noise off
    from ocml.models.train import pretrain as run

    run(
        _recipe(recipe, "autoencoder", None, None, None),
        data,
        out,
        resume=resume,
        echo=click.echo,
    )


_data_args = click.argument(
    "data", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)


@main.command()
@click.argument("model", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_data_args
@click.option(
    "--plots",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write a timeline PNG per file (DIR/SET/), a precision/recall curve and, for the worst "
    "file of each folder and of the pool, its errors in 30 s rows (DIR/worst-*.png).",
)
@click.option(
    "--tune",
    is_flag=True,
    help="Search post-processing parameters on all DATA folders pooled; report each and the "
    "pool with the tuned values.",
)
@click.option(
    "--by-condition",
    is_flag=True,
    help="Also print frame metrics by recording condition (SNR, reverberation, level, music, "
    "noise events, speaker) from the folders' manifest.json (always in --json).",
)
@param_options
@click.option(
    "--json",
    "as_json",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the full report (per file, per folder, pooled, by condition) as JSON.",
)
@_threads_opt
def evaluate(
    model: Path,
    data: tuple[Path, ...],
    plots: Path | None,
    tune: bool,
    by_condition: bool,
    params: dict[str, float],
    as_json: Path | None,
    threads: int,
) -> None:
    """Score MODEL on the labelled recordings in one or more DATA folders through the real pipeline.

    Each file is decoded, featurised, run through the model and post-processed exactly as the
    worker does, then compared with its labels at 10 ms frames: precision, recall, F1,
    accuracy, detection error rate ((false alarm + miss) / reference speech) with no collar and
    with a 0.25 s collar around reference boundaries, and the mean boundary error. Numbers are
    given per file, per folder and pooled over all frames of all folders. The model runs once
    per file; tuning re-runs only the post-processing on its stored probabilities. MODEL is a
    SavedModel or a training run's directory (its savedmodel/ is used). The post-processing
    options are those of `ocml segment`; what is not given comes from the model's tuned values.

    \b
    Examples:
      ocml-train evaluate runs/default ../shared/data/dev
      ocml-train evaluate runs/default ../shared/data/dev --min-silence 0.3
      ocml-train evaluate runs/default ../shared/data/dev ../shared/data/val --tune \\
          --by-condition --plots plots/ --json pool.json
    """
    from ocml.models import evaluate as ev

    _threads(threads)
    report = ev.evaluate_dirs(
        model,
        data,
        overrides=params,
        plots=plots,
        tune=tune,
        by_condition=by_condition,
        echo=click.echo,
    )
    if as_json:
        as_json.write_text(json.dumps(report, indent=1))


@main.command()
@click.argument("model", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_data_args
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the calibrated SavedModel (a new directory).",
)
@click.option(
    "--no-tune",
    is_flag=True,
    help="Do not tune post-processing after calibrating; the model then recommends the "
    "generic defaults.",
)
@click.option("--version", "version", help="Version of the calibrated model (default: MODEL's).")
@_onnx_opt
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option(
    "--json",
    "as_json",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report (pooled F1 before and after) as JSON.",
)
@_threads_opt
def calibrate(
    model: Path,
    data: tuple[Path, ...],
    out: Path,
    no_tune: bool,
    version: str | None,
    onnx: bool,
    overwrite: bool,
    as_json: Path | None,
    threads: int,
) -> None:
    """Calibrate MODEL's probabilities on the DATA folders pooled and write it to OUT.

    Fits p' = sigmoid(a * logit(p) + b) so that the pipeline's generic post-processing defaults
    (threshold 0.5, neg_threshold 0.35, min_speech 0.25 s, min_silence 0.1 s, pad 0.03 s) give
    the highest pooled frame F1, and writes the model again with the transform inside the
    SavedModel (same signature) and a `calibration` record (a, b, fitted_on, F1 before/after)
    in assets/ocml.json. Then, unless --no-tune, post-processing is tuned on the calibrated
    probabilities (pool) and stored as the model's recommended values with the pooled metrics.
    Prints pooled F1 with the defaults and tuned, before and after.

    \b
    Example:
      ocml-train calibrate runs/default/savedmodel ../shared/data/dev ../shared/data/val \\
          --out runs/default/calibrated --json calibration.json
    """
    from ocml.models.calibrate import calibrate_dirs

    _threads(threads)
    report = calibrate_dirs(
        model,
        data,
        out,
        tune=not no_tune,
        version=version,
        onnx=onnx,
        overwrite=overwrite,
        echo=click.echo,
    )
    if as_json:
        as_json.write_text(json.dumps(report, indent=1))


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The spectrogram folder the run was trained on (feature statistics, data summary).",
)
@click.option(
    "--checkpoint",
    default="best",
    show_default=True,
    callback=lambda ctx, param, value: _checkpoint(value),
    help="Which weights: 'best' (lowest validation loss), 'last', or an epoch's number (every "
    "epoch's weights are kept), e.g. to export the epoch that scores best on your recordings.",
)
@click.option(
    "--metrics",
    "metrics_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON report from `evaluate --json` to store in the model's metadata.",
)
@click.option(
    "--postprocess",
    "pp_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON object of recommended post-processing parameters (e.g. from --tune).",
)
@click.option("--name", help="Model name (default: the recipe's).")
@click.option("--version", "version", help="Model version (default: the recipe's).")
@_onnx_opt
@click.option(
    "--tflite",
    is_flag=True,
    help="Also write a TFLite flatbuffer to assets/ (checked within 1e-4 of the Keras model), "
    "so `ocml segment --runtime litert` can run the model without TensorFlow.",
)
def export(
    run_dir: Path,
    out: Path,
    data: Path,
    checkpoint: str | int,
    metrics_file: Path | None,
    pp_file: Path | None,
    name: str | None,
    version: str | None,
    onnx: bool,
    tflite: bool,
) -> None:
    """Export a training run's checkpoint as a SavedModel at OUT.

    The SavedModel maps [batch, frames, n_mels] log-mels to [batch, frames] speech
    probabilities and carries assets/ocml.json: feature configuration, context_frames,
    recommended post-processing, training data summary and evaluation metrics.

    \b
    Example:
      ocml-train export runs/default models/pretrained/default --data data/spec \\
          --metrics dev.json --postprocess tuned.json
    """
    _threads(1)
    from ocml.models.evaluate import read_metrics, read_postprocess
    from ocml.models.train import export_checkpoint

    metrics = read_metrics(metrics_file) if metrics_file else None
    pp = read_postprocess(pp_file) if pp_file else None
    path = export_checkpoint(
        run_dir,
        out,
        data=data,
        checkpoint=checkpoint,
        metrics=metrics,
        postprocess=pp,
        name=name,
        version=version,
        onnx=onnx,
        tflite=tflite,
    )
    click.echo(f"exported {path}")


@main.command("add-onnx")
@click.argument("model", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the model with the asset here (default: replace MODEL once the copy is checked).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def add_onnx(model: Path, out: Path | None, overwrite: bool) -> None:
    """Add an ONNX asset to MODEL, a SavedModel exported without one.

    Weights, signature, calibration and metadata stay as they are; assets/model.onnx is converted
    from the serving signature, checked within 1e-4 of the SavedModel on TensorFlow and declared
    in assets/ocml.json, so `ocml segment` runs the model on ONNX Runtime.

    \b
    Example:
      ocml-train add-onnx models/pretrained/default
    """
    _threads(1)
    from ocml.models.export import add_onnx as add

    path = add(model, out, overwrite=overwrite)
    click.echo(f"wrote {path}")
