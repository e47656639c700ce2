"""The process's inference threads, set once by its entry point and used by every runtime, and
`import_tensorflow`, the import that gives TensorFlow's pools those threads before it runs an op."""

from __future__ import annotations

import logging
import os
import sys
import threading
from types import ModuleType

from ocml.pipeline.checks import check_int
from ocml.pipeline.native_noise import native_noise_filtered

log = logging.getLogger(__name__)

_threads: dict[str, int] = {}
"""The process's inference thread count as its entry point set it; 'applied' once TF has it."""
_import_lock = threading.Lock()


def set_inference_threads(threads: int = 1) -> None:
    """Set this process's inference threads: TensorFlow's intra/inter-op pools, ONNX Runtime's
    intra-op pool and LiteRT's interpreter.

    For entry points (CLIs, worker processes), once, from their own option; loading a model never
    changes it. Does not import TensorFlow: the setting is applied by `import_tensorflow`, or at
    once if TensorFlow is already imported. Once TensorFlow has run an op its pools can no longer
    change; then the existing setting is kept and a warning logged.
    """
    check_int(threads, name="threads")
    _threads.clear()
    _threads["threads"] = threads
    if "tensorflow" in sys.modules:
        import_tensorflow()


def inference_threads() -> int:
    """The threads an ONNX Runtime session or a LiteRT interpreter opened now should use."""
    return _threads.get("threads", 1)


def import_tensorflow() -> ModuleType:
    """Import TensorFlow with its C++ start-up messages (oneDNN notices) kept off stderr, and
    apply the threads an entry point set."""
    with _import_lock:
        if "tensorflow" not in sys.modules:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            # absl logs to stderr before it is initialised, ignoring TF_CPP_MIN_LOG_LEVEL.
            with native_noise_filtered():
                import tensorflow  # noqa: F401
        tf = sys.modules["tensorflow"]
        if "threads" in _threads and _threads.get("applied") != _threads["threads"]:
            _apply_tensorflow_threads(tf, _threads["threads"])
        return tf


def _apply_tensorflow_threads(tf: ModuleType, threads: int) -> None:
    _threads["applied"] = threads
    pools = tf.config.threading
    for name, get, set_ in (
        (
            "intra_op",
            pools.get_intra_op_parallelism_threads,
            pools.set_intra_op_parallelism_threads,
        ),
        (
            "inter_op",
            pools.get_inter_op_parallelism_threads,
            pools.set_inter_op_parallelism_threads,
        ),
    ):
        if get() == threads:
            continue
        try:
            set_(threads)
        except RuntimeError:
            log.warning("TensorFlow already initialised; %s threads stay at %s", name, get())
