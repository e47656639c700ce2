"""The model's ONNX asset on ONNX Runtime: `OnnxRunner`. TensorFlow is never imported, and
ONNX Runtime only when a runner opens."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from ocml.pipeline.errors import ModelError
from ocml.pipeline.model_metadata import ASSETS, asset_file
from ocml.pipeline.runtimes.names import ONNX
from ocml.pipeline.threads import inference_threads

if TYPE_CHECKING:
    from onnxruntime import InferenceSession


class OnnxRunner:
    """An ONNX Runtime session as a `Runner`: the whole batch at once."""

    def __init__(self, session: InferenceSession, input_name: str) -> None:
        self._session = session
        self._input_name = input_name

    @classmethod
    def open(cls, root: Path, metadata: Mapping[str, Any]) -> Self:
        """The ONNX asset in an ONNX Runtime session on the CPU, with the process's inference
        threads intra-op and one inter-op.

        The session takes the whole batch at once (batch and frame axes are free). Its CPU memory
        arena stays on: the recurrent loop allocates at every step (docs/performance.md).
        """
        import onnxruntime

        file = asset_file(root, metadata, ASSETS[ONNX])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = inference_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no notices on stderr
        try:
            session = onnxruntime.InferenceSession(
                str(file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a damaged or unknown model
            raise ModelError(
                f"cannot load the ONNX asset: {type(exc).__name__}: {exc}", path=str(file)
            ) from exc
        inputs, outputs = session.get_inputs(), session.get_outputs()
        n_mels = metadata["features"]["n_mels"]
        if (
            len(inputs) != 1
            or inputs[0].type != "tensor(float)"
            or len(inputs[0].shape) != 3
            or (isinstance(inputs[0].shape[2], int) and inputs[0].shape[2] != n_mels)  # fixed
        ):
            found = [(i.name, i.type, i.shape) for i in inputs]
            raise ModelError(
                f"the ONNX asset must take one float32 [batch, frames, {n_mels}] input, "
                f"takes {found}",
                path=str(file),
            )
        if len(outputs) != 1 or len(outputs[0].shape) != 2:
            found = [(o.name, o.type, o.shape) for o in outputs]
            raise ModelError(
                f"the ONNX asset must give one [batch, frames] output, gives {found}",
                path=str(file),
            )
        return cls(session, inputs[0].name)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self._session.run(None, {self._input_name: batch})
        return out
