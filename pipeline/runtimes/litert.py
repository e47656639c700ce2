"""The model's TFLite asset on LiteRT: `LiteRTRunner`. TensorFlow is never imported, and LiteRT
only when a runner opens."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from ocml.pipeline.errors import ModelError
from ocml.pipeline.model_metadata import ASSETS, asset_file
from ocml.pipeline.native_noise import native_noise_filtered
from ocml.pipeline.runtimes.names import LITERT
from ocml.pipeline.threads import inference_threads

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter


class LiteRTRunner:
    """A LiteRT interpreter of a batch-1, any-length flatbuffer as a `Runner`, window by window."""

    def __init__(self, interpreter: Interpreter) -> None:
        self._interpreter = interpreter
        (source,) = interpreter.get_input_details()
        (target,) = interpreter.get_output_details()
        self._source, self._target = source["index"], target["index"]
        self._frames = -1

    @classmethod
    def open(cls, root: Path, metadata: Mapping[str, Any]) -> Self:
        """The TFLite asset on a LiteRT interpreter with the process's inference threads.

        The flatbuffer has batch 1 and any number of frames (a fixed batch is what lets a
        recurrent layer convert to built-in ops); each length change re-plans the interpreter.
        """
        from ai_edge_litert.interpreter import Interpreter

        file = asset_file(root, metadata, ASSETS[LITERT])
        try:
            with native_noise_filtered():  # the first allocation announces its XNNPACK delegate
                interpreter = Interpreter(model_path=str(file), num_threads=inference_threads())
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load the TFLite asset: {exc}", path=str(file)) from exc
        return cls(interpreter)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = np.empty(batch.shape[:2], np.float32)
        interpreter = self._interpreter
        for row, window in enumerate(batch):
            if len(window) != self._frames:  # re-plan for a new length (the last window)
                interpreter.resize_tensor_input(self._source, [1, *window.shape])
                interpreter.allocate_tensors()
                self._frames = len(window)
            interpreter.set_tensor(self._source, window[None])
            interpreter.invoke()
            out[row] = interpreter.get_tensor(self._target).reshape(-1)
        return out
