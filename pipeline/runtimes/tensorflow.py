"""The SavedModel's serving signature on TensorFlow, the reference runtime: `TensorFlowRunner`.

TensorFlow is imported when a runner opens (`threads.import_tensorflow`), never at import."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, Self

import numpy as np

from ocml.pipeline.errors import ModelError
from ocml.pipeline.threads import import_tensorflow

if TYPE_CHECKING:
    from tensorflow.types.experimental import ConcreteFunction

SIGNATURES = ("serve", "serving_default")
"""The serving signature's names, the first one a SavedModel has being used."""


class LoadedSavedModel(Protocol):
    """What ``tf.saved_model.load`` gives, as far as the pipeline uses it."""

    signatures: Mapping[str, ConcreteFunction]


def serving_signature_name(loaded: LoadedSavedModel, root: str | os.PathLike[str]) -> str:
    """The name of the serving signature (the first of `SIGNATURES`) of the SavedModel
    ``loaded`` from ``root``; ``ModelError`` naming what it has if none."""
    name = next((s for s in SIGNATURES if s in loaded.signatures), None)
    if name is None:
        raise ModelError(
            f"SavedModel has no serving signature (looked for {list(SIGNATURES)}, "
            f"found {sorted(loaded.signatures)})",
            path=str(root),
        )
    return name


class TensorFlowRunner:
    """A SavedModel's serving signature as a `Runner`."""

    def __init__(
        self,
        tf: ModuleType,
        loaded: LoadedSavedModel,
        signature: ConcreteFunction,
        input_name: str,
        output: str,
    ) -> None:
        self._tf = tf
        self._loaded = loaded  # keeps the signature's variables alive
        self._signature = signature
        self._input_name = input_name
        self._output = output

    @classmethod
    def open(cls, root: Path, metadata: Mapping[str, Any]) -> Self:
        """The SavedModel's serving signature, checked against the metadata."""
        tf = import_tensorflow()
        try:
            loaded = tf.saved_model.load(str(root))
        except Exception as exc:  # TensorFlow raises many types for a damaged SavedModel
            raise ModelError(
                f"cannot load SavedModel: {type(exc).__name__}: {exc}", path=str(root)
            ) from exc
        signature = loaded.signatures[serving_signature_name(loaded, root)]
        return cls(
            tf,
            loaded,
            signature,
            _check_input(signature, metadata, str(root)),
            _check_output(signature, str(root)),
        )

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        tensor = self._tf.constant(batch)
        return self._signature(**{self._input_name: tensor})[self._output].numpy()


def _check_input(signature: ConcreteFunction, metadata: Mapping[str, Any], where: str) -> str:
    """The signature's one input name, after checking it takes float32 ``[B, T, n_mels]``."""
    args, kwargs = signature.structured_input_signature
    if args or len(kwargs) != 1:
        raise ModelError(
            f"signature must take one input tensor, takes {args or kwargs}", path=where
        )
    ((name, spec),) = kwargs.items()
    n_mels = metadata["features"]["n_mels"]
    shape = spec.shape.as_list() if spec.shape.rank is not None else None
    if (
        spec.dtype.name != "float32"
        or shape is None
        or len(shape) != 3
        or shape[2] not in (None, n_mels)
    ):
        raise ModelError(
            f"signature input {name!r} is {spec.dtype.name} {shape}, expected float32 "
            f"[batch, frames, {n_mels}] (n_mels {n_mels} from metadata)",
            path=where,
        )
    return name


def _check_output(signature: ConcreteFunction, where: str) -> str:
    """The signature's one output key, after checking it is ``[batch, frames]``."""
    outputs = signature.structured_outputs
    if not isinstance(outputs, Mapping) or len(outputs) != 1:
        raise ModelError(f"signature must have one output, has {outputs}", path=where)
    ((key, spec),) = outputs.items()
    shape = spec.shape.as_list() if spec.shape.rank is not None else None
    if shape is None or len(shape) != 2:
        raise ModelError(
            f"signature output {key!r} has shape {shape}, expected [batch, frames]", path=where
        )
    return key
