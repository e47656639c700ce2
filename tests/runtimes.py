"""Checks shared by the tests of the runtimes that must not need TensorFlow (onnx, litert)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from ocml.pipeline.model import load_model
from ocml.pipeline.postprocess import PRESETS
from ocml.pipeline.segment import segment_file


def assert_segments_without_tensorflow(model: Path | None, runtime: str, audio: Path) -> None:
    """Segment ``audio`` in a fresh interpreter on ``runtime`` (``model`` None: the shipped one)
    and check it found speech, never imported TensorFlow or Keras, and wrote nothing to stderr."""
    code = f"""
import sys
from ocml.pipeline.model import load_model
from ocml.pipeline.threads import set_inference_threads
from ocml.pipeline.postprocess import PRESETS
from ocml.pipeline.segment import segment_file
set_inference_threads(1)
model = load_model({str(model) if model else None!r}, runtime={runtime!r}, background=True)
result = segment_file({str(audio)!r}, model, PRESETS["default"])
print(len(result.segments), "tensorflow" in sys.modules, "keras" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    count, tensorflow, keras = out.stdout.split()
    assert int(count) > 0 and tensorflow == keras == "False"
    assert out.stderr == ""


def assert_same_result_as_tensorflow(
    model: Path, runtime: str, audio: Path, *, tolerance: float
) -> None:
    """``segment_file`` of ``audio`` on ``runtime`` against the TensorFlow reference, in 7 s
    blocks: probabilities within ``tolerance``, the same segments, input and model records."""
    reference = load_model(model, runtime="tensorflow")
    other = load_model(model, runtime=runtime)
    expected = segment_file(audio, reference, PRESETS["default"], block_seconds=7.0)
    got = segment_file(audio, other, PRESETS["default"], block_seconds=7.0)
    assert got.probabilities.shape == expected.probabilities.shape
    assert np.abs(got.probabilities - expected.probabilities).max() < tolerance
    assert got.segments == expected.segments
    assert got.input == expected.input and got.model == expected.model
