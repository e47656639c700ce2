"""Keras 3 builders for the five architectures `ocml-train` knows.

Frame models (``rnn``, ``crnn``, ``tcn``) map ``[batch, frames, n_mels]`` to ``[batch, frames]``
speech probability. Window classifiers (``vanilla_conv``, the ``autoencoder``'s readout) map a
``[batch, width, n_mels]`` window to the probability of its centre frame; ``frame_model`` wraps one
so it honours the per-frame SavedModel contract. ``context_frames`` gives the receptive-field
radius that chunked inference must overlap by.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from ocml.models.errors import TrainingInputError
from ocml.models.recipe import ARCHITECTURES
from ocml.pipeline.checks import check_int

FINE_HEAD = "speech_fine"
"""The CRNN's per-frame term beside the pooled decision (``fine_head``)."""
RNN_CONTEXT_FRAMES = 200
"""Context declared for recurrent models, whose receptive field is unbounded: 2 s each side.

Measured on the dev set with the shipped CRNN: chunked inference with 200 frames of context moved
probabilities by at most 0.036 from one whole-recording call and put 0.011 % of one file's frames
(none of the other four files') on the other side of the threshold; 500 frames cost 2.5 times the
overlap work for no change in decisions."""


@dataclass(frozen=True)
class Built:
    """A trainable model and what export needs to know about it."""

    model: keras.Model
    context_frames: int
    window: int | None = None
    encoder: keras.Model | None = None
    autoencoder: keras.Model | None = None
    fresh: tuple[str, ...] = ()
    """Layers a warm start's source may lack; they then keep their initial weights."""


def normalizer(
    n_mels: int, mean: Sequence[float] | None, std: Sequence[float] | None
) -> layers.Layer:
    """Fixed per-mel standardisation with statistics of the training data (stored in the model)."""
    m = np.asarray(mean if mean is not None else np.full(n_mels, -6.0), np.float32)
    s = np.asarray(std if std is not None else np.full(n_mels, 4.0), np.float32)
    return layers.Normalization(axis=-1, mean=m, variance=s**2, name="standardise")


def _front_end(
    x: keras.KerasTensor,
    filters: Sequence[int],
    pools: Sequence[int],
    name: str,
    *,
    time_pool: int = 1,
    fine: bool = False,
) -> tuple[keras.KerasTensor, keras.KerasTensor | None]:
    """Conv2D stack over (time, mel) pooling along mels, and by ``time_pool`` in time after the
    first layer; returns the stack's output and, with ``fine``, the first layer's pooled along
    mels only (one vector per input frame, for a head that decides finer than ``time_pool``)."""
    x = layers.Reshape((-1, x.shape[-1], 1), name=f"{name}_to2d")(x)
    first = None
    for i, (f, p) in enumerate(zip(filters, pools, strict=True)):
        x = layers.Conv2D(f, (3, 3), padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
        if i == 0 and fine:  # pooled along mels first, then in time: max is separable
            x = layers.MaxPooling2D((1, p), padding="same", name=f"{name}_fine_pool")(x)
            first = layers.Reshape((-1, x.shape[-2] * x.shape[-1]), name=f"{name}_fine_to1d")(x)
            p = 1
        x = layers.MaxPooling2D(
            (time_pool if i == 0 else 1, p), padding="same", name=f"{name}_pool{i}"
        )(x)
    return layers.Reshape((-1, x.shape[-2] * x.shape[-1]), name=f"{name}_to1d")(x), first


def _frame_head(x: keras.KerasTensor, fine: keras.KerasTensor | None = None) -> keras.KerasTensor:
    """Dense sigmoid per frame, squeezed to ``[batch, frames]``. With ``fine`` (features at the
    input's frame rate) a second linear term of them joins the logit; it starts at zero, so a
    network warm-started without it begins exactly where its source was."""
    if fine is None:
        x = layers.Dense(1, activation="sigmoid", name="speech")(x)
    else:
        logit = layers.Dense(1, name="speech")(x)
        local = layers.Dense(1, use_bias=False, kernel_initializer="zeros", name=FINE_HEAD)(fine)
        x = layers.Activation("sigmoid", name="speech_sigmoid")(
            layers.Add(name="speech_logit")([logit, local])
        )
    return layers.Reshape((-1,), name="probability")(x)


def build_tcn(
    n_mels: int,
    *,
    front_filters: Sequence[int] = (16, 32),
    front_pools: Sequence[int] = (4, 4),
    channels: int = 64,
    kernel: int = 3,
    dilations: Sequence[int] = (1, 2, 4, 8, 16, 32),
    dropout: float = 0.1,
    mean=None,
    std=None,
) -> Built:
    """Conv front end pooling along mels, then residual dilated Conv1D over time ('same' padding)."""
    inp = keras.Input((None, n_mels), name="logmel")
    x = normalizer(n_mels, mean, std)(inp)
    context = 0
    if front_filters:
        x, _ = _front_end(x, front_filters, front_pools, "front")
        context += len(front_filters)
    x = layers.Conv1D(channels, 1, name="project")(x)
    for d in dilations:
        y = layers.Conv1D(
            channels, kernel, dilation_rate=d, padding="same", use_bias=False, name=f"dil{d}"
        )(x)
        y = layers.BatchNormalization(name=f"dil{d}_bn")(y)
        y = layers.ReLU(name=f"dil{d}_relu")(y)
        if dropout:
            y = layers.SpatialDropout1D(dropout, name=f"dil{d}_drop")(y)
        x = layers.Add(name=f"dil{d}_res")([x, y])
        context += d * (kernel - 1) // 2
    return Built(keras.Model(inp, _frame_head(x), name="tcn"), context_frames=context)


def build_crnn(
    n_mels: int,
    *,
    front_filters: Sequence[int] = (16, 32, 32),
    front_pools: Sequence[int] = (4, 4, 2),
    time_pool: int = 1,
    units: int = 48,
    cell: str = "gru",
    bidirectional: bool = True,
    dropout: float = 0.1,
    fine_head: bool = False,
    mean=None,
    std=None,
) -> Built:
    """Conv2D front end pooling along mels, then a (bi)directional GRU/LSTM, one decision per frame.

    ``time_pool`` > 1 runs everything after the first convolution at 1/time_pool of the frame rate
    (the recurrent layer steps through fewer frames) and repeats its output back to every frame.
    ``fine_head`` adds the first convolution's output, one vector per frame, to the decision, so
    that frames within one pooled step can differ (where a word starts or stops).
    """
    check_int(time_pool, name="time_pool")
    if not isinstance(fine_head, bool):
        raise TrainingInputError(f"fine_head must be true or false, got {fine_head!r}")
    inp = keras.Input((None, n_mels), name="logmel")
    x = normalizer(n_mels, mean, std)(inp)
    x, first = _front_end(
        x, front_filters, front_pools, "front", time_pool=time_pool, fine=fine_head
    )
    x = _recurrent(x, units, cell, bidirectional, dropout, "rec")
    if time_pool > 1:
        x = layers.UpSampling1D(time_pool, name="upsample")(x)
        x = CropLike(name="crop")([x, inp])
    head = _frame_head(x, first)
    return Built(
        keras.Model(inp, head, name="crnn"),
        context_frames=RNN_CONTEXT_FRAMES,
        fresh=(FINE_HEAD,) if fine_head else (),
    )


def build_rnn(
    n_mels: int,
    *,
    units: int = 64,
    layers_count: int = 2,
    cell: str = "lstm",
    bidirectional: bool = True,
    dropout: float = 0.1,
    mean=None,
    std=None,
) -> Built:
    """Stacked (bi)directional LSTM/GRU straight over the spectrogram frames."""
    inp = keras.Input((None, n_mels), name="logmel")
    x = normalizer(n_mels, mean, std)(inp)
    for i in range(layers_count):
        x = _recurrent(x, units, cell, bidirectional, dropout, f"rec{i}")
    return Built(keras.Model(inp, _frame_head(x), name="rnn"), context_frames=RNN_CONTEXT_FRAMES)


def _recurrent(
    x: keras.KerasTensor, units: int, cell: str, bidirectional: bool, dropout: float, name: str
) -> keras.KerasTensor:
    if cell not in ("gru", "lstm"):
        raise TrainingInputError(f"cell must be 'gru' or 'lstm', got {cell!r}")
    rnn = (layers.GRU if cell == "gru" else layers.LSTM)(
        units, return_sequences=True, dropout=dropout, name=name
    )
    return layers.Bidirectional(rnn, name=f"{name}_bi")(x) if bidirectional else rnn(x)


def build_vanilla_conv(
    n_mels: int,
    *,
    window: int = 31,
    filters: Sequence[int] = (16, 32, 32),
    dense: int = 64,
    dropout: float = 0.3,
    mean=None,
    std=None,
) -> Built:
    """The plain CNN of the original work: a spectrogram window in, speech/non-speech of its centre out."""
    _check_window(window)
    inp = keras.Input((window, n_mels), name="window")
    x = normalizer(n_mels, mean, std)(inp)
    x = layers.Reshape((window, n_mels, 1))(x)
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(dense, activation="relu", name="hidden")(x)
    out = layers.Dense(1, activation="sigmoid", name="speech")(x)
    out = layers.Reshape(())(out)
    return Built(
        keras.Model(inp, out, name="vanilla_conv"), context_frames=window // 2, window=window
    )


def build_autoencoder(
    n_mels: int,
    *,
    window: int = 32,
    filters: Sequence[int] = (16, 32),
    bottleneck: int = 32,
    readout: int = 32,
    mean=None,
    std=None,
) -> Built:
    """Conv encoder → bottleneck → transposed-conv decoder, and a small readout on the bottleneck.

    ``autoencoder`` (input → reconstruction of the standardised window) is pre-trained without
    labels; ``model`` (encoder + readout) is trained on labels and is what gets exported.
    """
    _check_window(window, even=True, multiple=2 ** len(filters))
    if n_mels % 2 ** len(filters):
        raise TrainingInputError(
            f"n_mels {n_mels} must be divisible by {2 ** len(filters)} for this encoder"
        )
    inp = keras.Input((window, n_mels), name="window")
    norm = normalizer(n_mels, mean, std)
    x = layers.Reshape((window, n_mels, 1))(norm(inp))
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 3, strides=2, padding="same", activation="relu", name=f"enc{i}")(x)
    shape = x.shape[1:]
    code = layers.Dense(bottleneck, activation="relu", name="bottleneck")(layers.Flatten()(x))
    encoder = keras.Model(inp, code, name="encoder")
    y = layers.Dense(int(np.prod(shape)), activation="relu", name="dec_in")(code)
    y = layers.Reshape(shape)(y)
    for i, f in enumerate(reversed(filters[:-1])):
        y = layers.Conv2DTranspose(
            f, 3, strides=2, padding="same", activation="relu", name=f"dec{i}"
        )(y)
    y = layers.Conv2DTranspose(1, 3, strides=2, padding="same", name="reconstruction")(y)
    target = layers.Reshape((window, n_mels, 1), name="target")(norm(inp))
    auto = keras.Model(inp, [y, target], name="autoencoder")
    r = layers.Dense(readout, activation="relu", name="readout_hidden")(code)
    r = layers.Dense(1, activation="sigmoid", name="speech")(r)
    model = keras.Model(inp, layers.Reshape(())(r), name="autoencoder_readout")
    return Built(
        model, context_frames=window // 2, window=window, encoder=encoder, autoencoder=auto
    )


def _check_window(window: int, *, even: bool = False, multiple: int = 1) -> None:
    if not isinstance(window, int) or window < 3 or window % multiple or (even and window % 2):
        raise TrainingInputError(
            f"window must be an integer >= 3 and a multiple of {multiple}, got {window!r}"
        )


BUILDERS = {
    "vanilla_conv": build_vanilla_conv,
    "autoencoder": build_autoencoder,
    "rnn": build_rnn,
    "crnn": build_crnn,
    "tcn": build_tcn,
}


def build(
    arch: str, n_mels: int, params: Mapping[str, Any] | None = None, *, mean=None, std=None
) -> Built:
    """Build ``arch`` with the recipe's ``params``; unknown architectures or keys raise ``ValueError``."""
    if arch not in BUILDERS:
        raise TrainingInputError(
            f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    try:
        return BUILDERS[arch](n_mels, mean=mean, std=std, **dict(params or {}))
    except TypeError as err:
        raise TrainingInputError(f"bad model parameters for {arch}: {err}") from err


@keras.saving.register_keras_serializable(package="ocml")
class CentredWindows(layers.Layer):
    """``[B, T, M]`` → ``[B·T, width, M]``: the window around every frame, zero-padded in standardised space.

    Padding uses the per-mel training mean so edge windows look like "average" input, not like
    −13.8 (digital silence) — the model never saw that.
    """

    def __init__(self, width: int, pad_value: Sequence[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.width = int(width)
        self.pad_value = [float(v) for v in pad_value]

    def call(self, x: Any) -> Any:
        left = self.width // 2
        right = self.width - 1 - left
        batch, frames, mels = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
        fill = tf.reshape(tf.constant(self.pad_value, tf.float32), (1, 1, mels))
        padded = tf.concat(
            [tf.tile(fill, (batch, left, 1)), x, tf.tile(fill, (batch, right, 1))], axis=1
        )
        windows = tf.signal.frame(padded, self.width, 1, axis=1)
        return tf.reshape(windows, (batch * frames, self.width, mels))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "width": self.width, "pad_value": self.pad_value}


@keras.saving.register_keras_serializable(package="ocml")
class CropLike(layers.Layer):
    """``[B, T', C]`` cut to the frame count ``T <= T'`` of a second input ``[B, T, ...]``."""

    def call(self, inputs: Any) -> Any:
        x, like = inputs
        return x[:, : tf.shape(like)[1]]


@keras.saving.register_keras_serializable(package="ocml")
class PerFrame(layers.Layer):
    """Reshape ``[B·T]`` window decisions back to ``[B, T]`` using the input's shape."""

    def call(self, inputs: Any) -> Any:
        probs, like = inputs
        return tf.reshape(probs, tf.shape(like)[:2])


def frame_model(window_model: keras.Model, width: int, pad_value: Sequence[float]) -> keras.Model:
    """Wrap a window classifier as ``[B, T, M]`` → ``[B, T]``: classify the window centred on each frame."""
    n_mels = window_model.input_shape[-1]
    inp = keras.Input((None, n_mels), name="logmel")
    windows = CentredWindows(width, pad_value, name="centred_windows")(inp)
    probs = window_model(windows)
    out = PerFrame(name="per_frame")([probs, inp])
    return keras.Model(inp, out, name=f"{window_model.name}_per_frame")
