"""Training from spectrogram shards: recipe → Keras model → checkpoints → exported SavedModel.

A recipe (``models/recipes/*.yaml``, read and checked by ``models.recipe``) holds every
hyper-parameter. Every ``validation_every``-th
shard is held out for validation; training examples are random crops of the shard windows with a
random gain change, streamed through ``tf.data``. ``MODEL_DIR`` receives ``recipe.yaml``,
``history.csv``, ``checkpoints/`` (last and best weights, the epoch reached, the schedule's
counters) and ``savedmodel/``.
"""

from __future__ import annotations

import csv
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from ocml.models.architectures import Built, build, frame_model
from ocml.models.errors import TrainingInputError
from ocml.models.recipe import Recipe, RecipeError, load_recipe
from ocml.models.spectrograms import UNLABELLED, load_shard, read_index
from ocml.pipeline.features import FeatureConfig
from ocml.pipeline.model import Model
from ocml.pipeline.model_metadata import RUN_MODEL_DIR, RUN_RECIPE

if TYPE_CHECKING:  # TensorFlow loads only when a command trains or exports
    import keras
    import tensorflow as tf

Echo = Callable[[str], None]


@dataclass(frozen=True)
class ShardSet:
    """A spectrogram folder split into training and validation shards."""

    folder: Path
    train: list[Path]
    validation: list[Path]
    features: FeatureConfig
    window: int
    index: dict[str, Any]


EPOCH_CHECKPOINT = "epoch-{epoch:02d}.weights.h5"
"""Each epoch's weights (``epoch`` from 1, filled in by Keras when it saves), kept so that a run
can be exported at any epoch: the best by validation loss is not always the best on the
recordings a model is selected on."""


def split_shards(folder: Path, every: int) -> ShardSet:
    """Every ``every``-th shard (starting with the second) is validation; one shard means no validation."""
    index = read_index(folder)
    paths = [folder / s for s in index["shards"]]
    val = [p for i, p in enumerate(paths) if len(paths) > 1 and i % every == 1 % every]
    train = [p for p in paths if p not in val]
    return ShardSet(
        folder, train, val, FeatureConfig.from_dict(index["features"]), int(index["window"]), index
    )


def feature_stats(shards: list[Path], *, max_shards: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Per-mel mean and standard deviation over (up to ``max_shards``) training shards."""
    total = sq = None
    n = 0
    for p in shards[:max_shards]:
        x, _ = load_shard(p)
        flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
        total = flat.sum(0) if total is None else total + flat.sum(0)
        sq = (flat**2).sum(0) if sq is None else sq + (flat**2).sum(0)
        n += len(flat)
    mean = total / n
    return mean.astype(np.float32), np.sqrt(np.maximum(sq / n - mean**2, 1e-6)).astype(np.float32)


class Examples:
    """Python generator of training examples from shards (numpy, seeded, streamed shard by shard).

    Frame models get ``(x [crop, M], y [crop], weight [crop])``; window models get
    ``(x [width, M], y, weight)`` for the centre frame. Labels may be blended with a teacher's
    probabilities (distillation); frames outside the label fraction or unlabelled weigh 0.
    """

    def __init__(
        self,
        shards: list[Path],
        recipe: Recipe,
        *,
        built: Built,
        training: bool,
        soft: Mapping[Path, np.ndarray] | None = None,
        frame_seconds: float,
    ) -> None:
        self.shards, self.recipe, self.built, self.training = shards, recipe, built, training
        self.soft = soft
        # [seed, 0]: the stream every shipped model was trained with; keep it reproducible.
        self.rng = np.random.default_rng([recipe.train.seed, 0])
        self.keep = _label_mask_seed(recipe)
        self.frame_seconds = frame_seconds

    def __call__(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        data = self.recipe.data
        order = self.rng.permutation(len(self.shards)) if self.training else range(len(self.shards))
        for si in order:
            path = self.shards[si]
            x, y = load_shard(path)
            weight = (y != UNLABELLED).astype(np.float32) * self.keep(path, y.shape)
            if self.training and data.tail_seconds and data.tail_weight != 1.0:
                tail = tail_mask(y, round(data.tail_seconds / self.frame_seconds))
                weight *= np.where(tail, np.float32(data.tail_weight), np.float32(1.0))
            target = np.where(y == UNLABELLED, 0, y).astype(np.float32)
            if self.soft is not None:
                a = self.recipe.train.distill_weight
                target = (1 - a) * target + a * self.soft[path]
            idx = self.rng.permutation(len(x)) if self.training else range(len(x))
            for i in idx:
                if not weight[i].any():
                    continue
                xi = x[i]
                if self.training and (data.gain_jitter_db or data.eq_jitter_db):
                    xi = level_jitter(
                        xi, self.rng, gain_db=data.gain_jitter_db, eq_db=data.eq_jitter_db
                    )
                yield from self._cut(xi, target[i], weight[i])

    def _cut(
        self, x: np.ndarray, y: np.ndarray, w: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if self.built.window is None:
            crop = min(self.recipe.data.crop, len(x)) if self.training else len(x)
            s = int(self.rng.integers(0, len(x) - crop + 1))
            yield x[s : s + crop], y[s : s + crop], w[s : s + crop]
            return
        width = self.built.window
        half = width // 2
        count = self.recipe.data.windows_per_example
        centres = (
            self.rng.integers(half, len(x) - (width - half) + 1, count)
            if self.training
            else np.arange(half, len(x) - (width - half) + 1, max(1, width // 2))
        )
        for c in centres:
            if w[c]:
                yield x[c - half : c - half + width], np.float32(y[c]), np.float32(w[c])


def tail_mask(y: np.ndarray, frames: int) -> np.ndarray:
    """Non-speech frames at most ``frames`` after the last speech frame of the same window row.

    ``y`` holds hard labels per window row (0, 1, or ``UNLABELLED``); these are where a room's
    reverberation still rings after a voice stops, the frames a model most easily calls speech.
    """
    idx = np.broadcast_to(np.arange(y.shape[-1]), y.shape)
    last = np.maximum.accumulate(np.where(y == 1, idx, -(frames + 1)), axis=-1)
    return (y == 0) & (idx - last <= frames)


def level_jitter(
    x: np.ndarray, rng: np.random.Generator, *, gain_db: float, eq_db: float
) -> np.ndarray:
    """Log-mel ``x`` played up to ``gain_db`` louder or softer and through a random smooth
    equaliser of up to ``eq_db`` per band (a tilt plus a broad bump: another microphone, another
    room). The log floor of the features (1e-6) stays where it is."""
    bands = np.linspace(0.0, 1.0, x.shape[-1])
    curve = rng.uniform(-gain_db, gain_db) if gain_db else 0.0
    if eq_db:
        tilt = rng.uniform(-1, 1) * (bands - 0.5)
        bump = rng.uniform(-0.5, 0.5) * np.cos(np.pi * rng.uniform(1, 3) * bands)
        curve = curve + eq_db * (tilt + bump)
    shift = (np.asarray(curve) / 10 * math.log(10)).astype(np.float32)
    return np.logaddexp(x + shift, math.log(1e-6)).astype(np.float32)


def _label_mask_seed(recipe: Recipe) -> Callable[[Path, tuple[int, ...]], np.ndarray]:
    """Which windows keep their labels under ``label_fraction`` (fixed per shard and seed)."""
    fraction = recipe.train.label_fraction
    seed = recipe.train.seed

    def keep(path: Path, shape: tuple[int, ...]) -> np.ndarray:
        if fraction >= 1:
            return np.ones(shape, np.float32)
        rng = np.random.default_rng([seed, sum(path.name.encode())])
        return np.repeat((rng.random(shape[0]) < fraction)[:, None], shape[1], axis=1).astype(
            np.float32
        )

    return keep


def make_dataset(
    examples: Examples, *, n_mels: int, batch_size: int, frame: bool
) -> tf.data.Dataset:
    """``tf.data`` pipeline over an ``Examples`` generator: batched, prefetched."""
    import tensorflow as tf

    if frame:
        sig = (
            tf.TensorSpec([None, n_mels], tf.float32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None], tf.float32),
        )
    else:
        width = examples.built.window
        sig = (
            tf.TensorSpec([width, n_mels], tf.float32),
            tf.TensorSpec([], tf.float32),
            tf.TensorSpec([], tf.float32),
        )
    ds = tf.data.Dataset.from_generator(examples, output_signature=sig)
    if examples.training:
        ds = ds.shuffle(2048 if not frame else 64, seed=examples.recipe.train.seed)
    return ds.batch(batch_size).prefetch(2)


def frame_bce(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Binary cross-entropy per frame (no averaging over time), so per-frame weights apply."""
    import keras

    return keras.ops.binary_crossentropy(y_true, y_pred)


def frame_accuracy(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Share of frames on the right side of 0.5 (targets may be soft under distillation)."""
    import keras

    return keras.ops.cast(keras.ops.equal(y_true > 0.5, y_pred > 0.5), "float32")


def _compile(model: keras.Model, lr: float) -> None:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=frame_bce,
        weighted_metrics=[keras.metrics.MeanMetricWrapper(frame_accuracy, name="acc")],
    )


# What each stateful callback of `fit` must carry across a resume: attribute names by callback.
_CARRIED = {
    "best_checkpoint": ("best",),
    "early_stopping": ("wait", "best", "best_epoch"),
    "reduce_lr": ("wait", "best", "cooldown_counter"),
}


def _plain(value: Any) -> Any:
    """A callback counter as JSON can hold it (numpy scalars become Python numbers)."""
    return value.item() if isinstance(value, np.generic | np.ndarray) else value


def clock(seconds: float) -> str:
    """A duration for people: ``0.4 s``, ``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def epoch_timing(durations: list[float], epoch: int, epochs: int) -> str:
    """This epoch's time and the estimate for the epochs left after ``epoch`` (1-based).

    The estimate is the mean epoch time times the epochs left; the first epoch (which also
    builds the graph) counts only until a second one has run. Early stopping may end sooner.
    """
    took = f"took {clock(durations[-1])}"
    if epoch >= epochs:
        return took
    steady = durations[1:] or durations
    return f"{took}, ~{clock((epochs - epoch) * sum(steady) / len(steady))} left"


class _Progress:
    """Keras callback: one line per epoch through ``echo``, then the run's state in ``ckpt``.

    Each line ends with the epoch's time and an estimate of the time the remaining epochs take.

    The state is the epoch reached and the counters of the callbacks in ``carried`` (the
    optimiser's moments, step and learning rate travel in ``last.weights.h5``), so that a resumed
    run goes on as if it had never stopped. Placed last, it puts the saved counters back
    (``restore``) after the other callbacks have reset theirs at the start of ``fit``.
    """

    def __new__(
        cls,
        echo: Echo,
        ckpt: Path,
        epochs: int,
        carried: Mapping[str, Any],
        restore: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> keras.callbacks.Callback:
        import keras

        state = ckpt / "state.json"

        durations: list[float] = []

        class Progress(keras.callbacks.Callback):
            def on_train_begin(self, logs: Mapping[str, float] | None = None) -> None:
                for name, values in (restore or {}).items():
                    for attr, value in values.items():
                        setattr(carried[name], attr, value)

            def on_epoch_begin(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
                self.started = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
                durations.append(time.perf_counter() - self.started)
                logs = dict(logs or {})
                shown = "  ".join(
                    f"{k} {v:.4f}" for k, v in sorted(logs.items()) if k != "learning_rate"
                )
                timing = epoch_timing(durations, epoch + 1, epochs)
                echo(f"epoch {epoch + 1}/{epochs}  {shown}  ({timing})")
                counters = {
                    name: {attr: _plain(getattr(carried[name], attr)) for attr in _CARRIED[name]}
                    for name in carried
                }
                (ckpt / "state.tmp").write_text(
                    json.dumps({"epoch": epoch + 1, "callbacks": counters})
                )
                (ckpt / "state.tmp").replace(state)

        return Progress()


def _resume(model: Any, ckpt: Path, echo: Echo) -> dict[str, Any]:
    """Load the last checkpoint (weights and optimiser) into ``model``; returns the saved state."""
    if not (ckpt / "last.weights.h5").is_file():
        raise FileNotFoundError(f"{ckpt}: nothing to resume (no last.weights.h5)")
    model.optimizer.build(model.trainable_variables)  # else Keras skips the optimiser's variables
    model.load_weights(ckpt / "last.weights.h5")
    saved = json.loads((ckpt / "state.json").read_text())
    echo(f"resuming after epoch {saved['epoch']}")
    return saved


def fit(
    model: keras.Model,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset | None,
    *,
    out: Path,
    epochs: int,
    patience: int,
    resume: bool,
    echo: Echo,
    steps: int | None,
) -> dict[str, Any]:
    """Run ``model.fit`` with checkpoints (last, best, every epoch's), early stopping, a CSV
    history and resume."""
    import keras

    ckpt = out / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    saved = _resume(model, ckpt, echo) if resume else {}
    initial = saved.get("epoch", 0)
    monitor = "val_loss" if val_ds is not None else "loss"
    carried = {
        "best_checkpoint": keras.callbacks.ModelCheckpoint(
            str(ckpt / "best.weights.h5"),
            save_weights_only=True,
            monitor=monitor,
            save_best_only=True,
        ),
        # No restore_best_weights: the best weights are read back from best.weights.h5 below,
        # which survives a resume, where early stopping's copy in memory would not.
        "early_stopping": keras.callbacks.EarlyStopping(monitor=monitor, patience=patience),
        "reduce_lr": keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=0.5, patience=max(1, patience // 3)
        ),
    }
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(ckpt / "last.weights.h5"), save_weights_only=True),
        keras.callbacks.ModelCheckpoint(str(ckpt / EPOCH_CHECKPOINT), save_weights_only=True),
        *carried.values(),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=resume),
        _Progress(echo, ckpt, epochs, carried, saved.get("callbacks")),
    ]
    if initial >= epochs:
        echo(f"already trained {initial} of {epochs} epochs")
        model.load_weights(ckpt / "best.weights.h5")
        return _history(out)
    with warnings.catch_warnings():
        # make_dataset shuffles the tf.data input itself, and validation data is finite by design.
        warnings.filterwarnings("ignore", message="`shuffle=True` was passed", category=UserWarning)
        warnings.filterwarnings(
            "ignore", message="Your input ran out of data", category=UserWarning
        )
        model.fit(
            train_ds.repeat() if steps else train_ds,
            validation_data=val_ds,
            epochs=epochs,
            initial_epoch=initial,
            steps_per_epoch=steps,
            callbacks=callbacks,
            verbose=0,
        )
    if (ckpt / "best.weights.h5").is_file():
        model.load_weights(ckpt / "best.weights.h5")
    return _history(out)


def _history(out: Path) -> dict[str, Any]:
    """The run's length and its best epoch's metrics, read from ``history.csv``.

    Keras's CSV logger writes ``NA`` for metrics an epoch did not log (every ``val_*`` column
    of a run without validation shards); those columns are left out.
    """
    path = out / "history.csv"
    if not path.is_file():
        return {"epochs": 0}
    with path.open(newline="") as file:
        rows = [
            {k: float(v) for k, v in row.items() if v not in ("", "NA")}
            for row in csv.DictReader(file)
        ]
    if not rows:
        return {"epochs": 0}
    key = "val_loss" if all("val_loss" in r for r in rows) else "loss"
    best = min(rows, key=lambda r: r[key])
    return {
        "epochs": len(rows),
        "best_epoch": int(best["epoch"]) + 1,
        **{k: round(v, 5) for k, v in best.items() if k != "epoch"},
    }


def teacher_targets(
    shards: list[Path], teacher: Model, *, batch: int = 8
) -> dict[Path, np.ndarray]:
    """The teacher's speech probabilities for every window of every shard (computed once, ~4 bytes a frame)."""
    out = {}
    for path in shards:
        x, _ = load_shard(path)
        out[path] = np.concatenate(
            [teacher.predict(x[i : i + batch]) for i in range(0, len(x), batch)]
        )
    return out


def prepare(
    data: Path, recipe: Recipe, *, teacher: Model | None = None, warm: WarmStart | None = None
) -> tuple[ShardSet, Built, tf.data.Dataset, tf.data.Dataset | None]:
    """Split the shards, build the model with the data's feature statistics (or those of the
    model it starts from), make both datasets."""
    shards = split_shards(data, recipe.data.validation_every)
    mean, std = (warm.mean, warm.std) if warm is not None else feature_stats(shards.train)
    built = build(recipe.arch, shards.features.n_mels, recipe.model, mean=mean, std=std)
    frame = built.window is None
    bs = recipe.data.batch_size
    soft = teacher_targets(shards.train, teacher) if teacher is not None else None
    train_ds = make_dataset(
        Examples(
            shards.train,
            recipe,
            built=built,
            training=True,
            soft=soft,
            frame_seconds=shards.features.grid.hop,
        ),
        n_mels=shards.features.n_mels,
        batch_size=bs,
        frame=frame,
    )
    val_ds = None
    if shards.validation:
        val_ds = make_dataset(
            Examples(
                shards.validation,
                recipe,
                built=built,
                training=False,
                frame_seconds=shards.features.grid.hop,
            ),
            n_mels=shards.features.n_mels,
            batch_size=bs,
            frame=frame,
        ).cache()
    return shards, built, train_ds, val_ds


def export_model(
    built: Built,
    out_dir: Path,
    *,
    recipe: Recipe,
    shards: ShardSet,
    history: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    onnx: bool = True,
    tflite: bool = False,
) -> Path:
    """Export the trained model as a per-frame SavedModel (window classifiers wrapped) with metadata;
    ``onnx`` adds the ONNX Runtime model, ``tflite`` the LiteRT flatbuffer to its assets."""
    from ocml.models.export import export_savedmodel

    model = built.model
    if built.window is not None:
        norm = model.get_layer("standardise")
        pad = np.asarray(norm.mean).reshape(-1)
        model = frame_model(model, built.window, pad)
    training = {
        "data": {k: shards.index[k] for k in ("hours", "recordings", "speech_fraction", "frames")},
        "data_folder": shards.folder.name,
        "recipe": recipe.to_dict(),
        "history": history,
        "params": int(built.model.count_params()),
    }
    return export_savedmodel(
        model,
        out_dir,
        name=recipe.name,
        version=recipe.version,
        architecture=recipe.arch,
        features=shards.features,
        context_frames=built.context_frames,
        postprocess=recipe.postprocess or None,
        inference=recipe.inference or None,
        training=training,
        metrics=metrics,
        onnx=onnx,
        tflite=tflite,
        overwrite=True,
    )


def train(
    recipe: Recipe,
    data: Path,
    out: Path,
    *,
    resume: bool = False,
    echo: Echo = print,
    encoder_weights: Path | None = None,
    init_from: Path | None = None,
) -> Path:
    """Train ``recipe`` on the shard folder ``data`` into ``out``; returns the exported SavedModel path.

    ``init_from``: a SavedModel of the same network whose weights and input standardisation the
    training starts from (a second stage on new data).
    """
    import keras

    keras.utils.set_random_seed(recipe.train.seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_RECIPE).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    teacher = None
    if recipe.train.teacher:
        from ocml.pipeline.model import load_model

        teacher = load_model(recipe.train.teacher)
        echo(
            f"distilling from {teacher.name} ({teacher.architecture}), weight {recipe.train.distill_weight}"
        )
    warm = None
    if init_from is not None:
        n_mels = FeatureConfig.from_dict(read_index(data)["features"]).n_mels
        warm = load_warm_start(init_from, n_mels)
    shards, built, train_ds, val_ds = prepare(data, recipe, teacher=teacher, warm=warm)
    norm = built.model.get_layer("standardise")
    np.savez(
        out / STANDARDISE_FILE,
        mean=np.asarray(norm.mean).reshape(-1),
        std=np.sqrt(np.asarray(norm.variance).reshape(-1)),
    )
    if recipe.arch == "autoencoder":
        if encoder_weights is None:
            raise TrainingInputError(
                "the autoencoder readout needs a pre-trained encoder: run `ocml-train pretrain` "
                "and pass --encoder MODEL_DIR"
            )
        built.encoder.load_weights(encoder_weights)
        built.encoder.trainable = False
    if warm is not None and not resume:
        warm.apply(built.model, fresh=built.fresh)
        echo(f"starting from the weights of {warm.source}")
    echo(
        f"{recipe.arch}: {built.model.count_params():,} parameters, context {built.context_frames} frames, "
        f"{len(shards.train)} training / {len(shards.validation)} validation shards"
    )
    _compile(built.model, recipe.train.learning_rate)
    history = fit(
        built.model,
        train_ds,
        val_ds,
        out=out,
        epochs=recipe.train.epochs,
        patience=recipe.train.patience,
        resume=resume,
        echo=echo,
        steps=recipe.train.steps_per_epoch,
    )
    path = export_model(built, out / RUN_MODEL_DIR, recipe=recipe, shards=shards, history=history)
    echo(f"exported {path}")
    return path


@dataclass(frozen=True)
class WarmStart:
    """The weights and input standardisation of a trained SavedModel, to start a second stage."""

    source: Path
    weights: dict[str, np.ndarray]
    mean: np.ndarray
    std: np.ndarray

    def apply(self, model: keras.Model, *, fresh: tuple[str, ...] = ()) -> None:
        """Copy every weight into ``model`` by variable name (random-generator states aside); a
        weight missing or of another shape is a ``RecipeError`` naming it, unless missing from a
        layer named in ``fresh`` (new in this network: it keeps its initial weights)."""
        for var in model.variables:
            if "seed_generator" in var.path:
                continue
            saved = self.weights.get(var.path)
            if saved is None and var.path.split("/")[0] in fresh:
                continue
            if saved is None or saved.shape != tuple(var.shape):
                found = "missing" if saved is None else f"shape {saved.shape}"
                raise RecipeError(
                    f"--init-from {str(self.source)!r}: weight {var.path} "
                    f"{tuple(var.shape)} is {found} there"
                )
            var.assign(saved)


def load_warm_start(savedmodel: Path, n_mels: int) -> WarmStart:
    """Read a SavedModel written by ``export`` or ``calibrate`` for a warm start.

    Its per-mel standardisation is not a variable but two constants captured by the serving
    function (mean, then variance, each ``[1, 1, n_mels]``): the new model must standardise
    exactly as the old one did, or its first convolution would see other inputs.
    """
    from ocml.pipeline.threads import import_tensorflow

    tf = import_tensorflow()
    try:
        loaded = tf.saved_model.load(str(savedmodel))
    except (OSError, ValueError) as err:
        raise RecipeError(f"--init-from {str(savedmodel)!r}: not a SavedModel ({err})") from None
    inner = getattr(loaded, "inner", loaded)  # a calibrated model wraps the trained one
    captured = [
        np.asarray(t).reshape(-1)
        for t in inner.signatures["serve"].captured_inputs
        if t.dtype == tf.float32 and tuple(t.shape) == (1, 1, n_mels)
    ]
    if len(captured) < 2 or not (captured[1] > 0).all():
        raise RecipeError(
            f"--init-from {str(savedmodel)!r}: its input standardisation was not found"
        )
    weights = {v.name.removesuffix(":0"): v.numpy() for v in inner.variables}
    return WarmStart(savedmodel, weights, captured[0], np.sqrt(captured[1]))


def pretrain(
    recipe: Recipe, data: Path, out: Path, *, resume: bool = False, echo: Echo = print
) -> Path:
    """Train the autoencoder to reconstruct standardised windows (no labels); save the encoder's weights."""
    import keras

    if recipe.arch != "autoencoder":
        raise RecipeError(f"pretrain needs arch autoencoder, the recipe says {recipe.arch!r}")
    keras.utils.set_random_seed(recipe.train.seed)
    out.mkdir(parents=True, exist_ok=True)
    unlabelled = replace(recipe, train=replace(recipe.train, label_fraction=1.0, teacher=None))
    shards, built, train_ds, val_ds = prepare(data, unlabelled)
    as_pairs = _reconstruction_pairs
    auto = reconstruction_model(built)
    auto.compile(optimizer=keras.optimizers.Adam(recipe.pretrain.learning_rate), loss="mse")
    echo(f"autoencoder: {auto.count_params():,} parameters, pre-training without labels")
    fit(
        auto,
        as_pairs(train_ds),
        as_pairs(val_ds) if val_ds is not None else None,
        out=out,
        epochs=recipe.pretrain.epochs,
        patience=recipe.train.patience,
        resume=resume,
        echo=echo,
        steps=recipe.train.steps_per_epoch,
    )
    path = out / "encoder.weights.h5"
    built.encoder.save_weights(path)
    echo(f"saved {path}")
    return path


def _reconstruction_pairs(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Drop labels: the target of the reconstruction-error model is zero everywhere."""
    import tensorflow as tf

    return ds.map(lambda x, y, w: (x, tf.zeros(tf.concat([tf.shape(x), [1]], 0))))


def reconstruction_model(built: Built) -> keras.Model:
    """The autoencoder's reconstruction minus its standardised input (trained towards zero)."""
    import keras

    inp = keras.Input(built.autoencoder.input_shape[1:])
    recon, target = built.autoencoder(inp)
    return keras.Model(inp, keras.layers.Subtract()([recon, target]), name="reconstruction_error")


STANDARDISE_FILE = "standardise.npz"
"""The per-mel mean and deviation a run's model standardises with (the data's, or those of the
model it started from), kept so an export rebuilds the same network."""


def run_standardisation(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The standardisation a run recorded, or None for runs made before it was recorded."""
    path = run_dir / STANDARDISE_FILE
    if not path.is_file():
        return None
    with np.load(path) as saved:
        return saved["mean"], saved["std"]


def export_checkpoint(
    run_dir: Path,
    out: Path,
    *,
    data: Path,
    checkpoint: str | int = "best",
    metrics: dict[str, Any] | None = None,
    postprocess: dict[str, Any] | None = None,
    name: str | None = None,
    version: str | None = None,
    onnx: bool = True,
    tflite: bool = False,
) -> Path:
    """Rebuild a run's model from its ``recipe.yaml``, load a checkpoint (``"best"``, ``"last"``
    or an epoch number) and export it to ``out`` (with an ONNX asset unless ``onnx`` is false, a
    TFLite one if ``tflite``)."""
    changes = {"name": name, "version": version, "postprocess": postprocess}
    recipe = load_recipe(
        run_dir / RUN_RECIPE,
        overrides={key: value for key, value in changes.items() if value is not None},
    )
    file = (
        EPOCH_CHECKPOINT.format(epoch=checkpoint)
        if isinstance(checkpoint, int)
        else f"{checkpoint}.weights.h5"
    )
    weights = run_dir / "checkpoints" / file
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no such checkpoint")
    shards = split_shards(data, recipe.data.validation_every)
    mean, std = run_standardisation(run_dir) or feature_stats(shards.train)
    built = build(recipe.arch, shards.features.n_mels, recipe.model, mean=mean, std=std)
    built.model.load_weights(weights)
    return export_model(
        built,
        out,
        recipe=recipe,
        shards=shards,
        history=_history(run_dir),
        metrics=metrics,
        onnx=onnx,
        tflite=tflite,
    )
