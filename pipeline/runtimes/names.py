"""The names of the model runtimes, spelled here only; imports nothing, so the settings may too."""

from __future__ import annotations

TENSORFLOW = "tensorflow"
"""The SavedModel itself on TensorFlow: the reference."""
ONNX = "onnx"
"""The model's ONNX asset on ONNX Runtime."""
LITERT = "litert"
"""The model's TFLite asset on LiteRT."""
RUNTIMES = (ONNX, TENSORFLOW, LITERT)
"""Where ``Model.predict`` can run."""
AUTO = "auto"
"""Asks for whichever runtime is faster for the job (``runtimes.choice.choose_runtime``)."""
RUNTIME_CHOICES = (AUTO, *RUNTIMES)
"""What a ``runtime`` setting or ``--runtime`` option may say."""
