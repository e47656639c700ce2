"""Loading a speech-probability SavedModel and its ``assets/ocml.json`` metadata.

Only TensorFlow is needed, never the training code. TensorFlow is imported inside the functions
that need it, so importing this module stays cheap; ``load_model(..., background=True)`` does that
import and the SavedModel load in a thread while the caller starts decoding. A model exported with
an ONNX model or a TFLite flatbuffer in its ``assets/`` can also run on ONNX Runtime
(``runtime="onnx"``) or LiteRT (``runtime="litert"``), neither of which imports TensorFlow; the
SavedModel stays the contract and TensorFlow the reference runtime.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.resources
import json
import logging
import math
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ocml.pipeline.checks import check_int
from ocml.pipeline.errors import ModelError
from ocml.pipeline.extras import RUNTIME_EXTRAS, require
from ocml.pipeline.features import FeatureConfig

FORMAT_VERSION = 1
METADATA_FILE = "assets/ocml.json"
LABELS = ["non-speech", "speech"]
REQUIRED_KEYS = (
    "format_version",
    "name",
    "version",
    "architecture",
    "features",
    "context_frames",
    "labels",
)
RUN_MODEL_DIR = "savedmodel"
RUN_RECIPE = "recipe.yaml"
"""A training run's directory holds its recipe and, once trained, its model in ``savedmodel/``."""
PIPELINE_FEATURES = FeatureConfig()
"""The features this pipeline computes; a model trained on others is refused."""

SIGNATURES = ("serve", "serving_default")
RUNTIMES = ("tensorflow", "onnx", "litert")
"""Where ``Model.predict`` runs: TensorFlow (the reference), ONNX Runtime (needs an ``onnx``
asset) or LiteRT (needs a ``tflite`` asset)."""


@dataclass(frozen=True)
class Asset:
    """A file in the SavedModel's ``assets/`` that lets another runtime run the model, as
    ``ocml.json`` declares it: ``{key: {"file": NAME, **fields}}``, ``fields`` fixed values."""

    key: str
    fields: Mapping[str, Any]
    kind: str
    how: str
    """How a model gets the asset, for the error when a runtime needs it and the model lacks it."""


ASSETS = {
    "onnx": Asset("onnx", {}, "ONNX model", "ocml-train export and calibrate write one"),
    "litert": Asset("tflite", {"batch_size": 1}, "TFLite flatbuffer", "export it with --tflite"),
}
"""The runtimes other than TensorFlow and the asset each of them runs."""
LITERT_MAX_SECONDS = 1200.0
"""``choose_runtime`` picks LiteRT for jobs with at most this much audio (docs/performance.md:
TensorFlow starts ~3.5 s later, LiteRT infers the CRNN ~6–7 s per hour slower; below ~30 min of
audio one process on LiteRT finishes first, 20 min keeps a margin)."""
INFERENCE_DEFAULTS = {"chunk_frames": 3000, "batch_size": 8}
"""How ``Inference`` runs a model whose metadata has no ``inference`` hint (right for convolutions)."""

log = logging.getLogger(__name__)


def inference_hint_problem(hint: Mapping[str, Any]) -> str | None:
    """What is wrong with an ``inference`` hint (metadata or recipe), or None when it is usable."""
    for key, value in hint.items():
        if key not in INFERENCE_DEFAULTS:
            return f"inference.{key} is unknown; known: {', '.join(INFERENCE_DEFAULTS)}"
        try:
            check_int(value, name=f"inference.{key}")
        except ValueError as exc:
            return str(exc)
    return None


_threads: dict[str, int] = {}
"""The process's inference thread count as its entry point set it; 'applied' once TF has it."""


def configure_tensorflow(threads: int = 1) -> None:
    """Set this process's inference threads: TensorFlow's intra/inter-op pools, ONNX Runtime's
    intra-op pool and LiteRT's.

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


def _apply_threads(tf: Any, threads: int) -> None:
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


_import_lock = threading.Lock()
_NATIVE_NOISE = re.compile(
    rb"(WARNING: All log messages before absl|[IWE]\d{4} \d\d:|INFO: Created TensorFlow Lite)"
    rb"[^\n]*\n?"
)
"""Start-up lines that TensorFlow's and LiteRT's C++ code writes to stderr whatever we ask; found
anywhere in a line, since one may land in the middle of a line Python is writing piecewise."""


@contextlib.contextmanager
def native_noise_filtered() -> Iterator[None]:
    """Drop TensorFlow's and LiteRT's start-up lines (`_NATIVE_NOISE`) from file descriptor 2
    while the block runs.

    The block may run in a background thread (model loading) while the main thread reports on
    stderr, so fd 2 goes through a pipe whose other lines a thread passes on, not to /dev/null.
    Should the process exit meanwhile, an atexit hook (registered before fd 2 is touched, and
    waiting for a redirection under way) restores fd 2 and passes on what is left. It never
    flushes ``sys.stderr`` itself: from this thread that would race the main thread's writes
    (``TextIOWrapper`` is not thread-safe and once wrote a line end twice); text still buffered
    simply reaches fd 2 later, through the pipe or directly.
    """
    lock = threading.Lock()
    state: dict[str, Any] = {}

    def forward(read: int, saved: int) -> None:
        with os.fdopen(read, "rb") as pipe:
            for line in pipe:
                kept = _NATIVE_NOISE.sub(b"", line)
                if kept:
                    os.write(saved, kept)

    def restore() -> None:
        with lock:
            if state.get("saved") is not None:
                os.dup2(state["saved"], 2)  # closes the pipe's last write end
                state["forwarder"].join()  # ... so the forwarder passes on the rest and ends
                os.close(state["saved"])
            state["saved"] = None
            state["done"] = True

    atexit.register(restore)
    with lock:
        if not state.get("done"):
            saved = os.dup(2)
            read, write = os.pipe()
            os.dup2(write, 2)
            os.close(write)
            forwarder = threading.Thread(
                target=forward, args=(read, saved), name="ocml-stderr", daemon=True
            )
            forwarder.start()
            state.update(saved=saved, forwarder=forwarder)
    try:
        yield
    finally:
        atexit.unregister(restore)
        restore()


def import_tensorflow():
    """Import TensorFlow with its C++ start-up messages (oneDNN notices) kept off stderr, and
    apply the threads an entry point configured."""
    with _import_lock:
        if "tensorflow" not in sys.modules:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            # absl logs to stderr before it is initialised, ignoring TF_CPP_MIN_LOG_LEVEL.
            with native_noise_filtered():
                import tensorflow  # noqa: F401
        tf = sys.modules["tensorflow"]
        if "threads" in _threads and _threads.get("applied") != _threads["threads"]:
            _apply_threads(tf, _threads["threads"])
        return tf


def default_model_path() -> Path:
    """Directory of the shipped default model, ``models/pretrained/default`` in the package."""
    try:
        path = Path(str(importlib.resources.files("ocml.models.pretrained") / "default"))
    except ModuleNotFoundError as exc:
        raise ModelError(f"the default model is not installed ({exc})") from exc
    if not path.is_dir():
        raise ModelError("the default model is not installed", path=str(path))
    return path


def resolve_model_dir(path: str | os.PathLike[str] | None) -> Path:
    """The SavedModel a ``--model`` path names: the shipped default for None, a training run's
    exported ``savedmodel/`` for a run directory (``ocml-train train --out``), else ``path``."""
    if path is None:
        return default_model_path()
    root = Path(path)
    if not (root / "saved_model.pb").is_file() and (root / RUN_MODEL_DIR).is_dir():
        return root / RUN_MODEL_DIR
    return root


def read_metadata(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The validated ``assets/ocml.json`` of the model at ``path`` (as ``resolve_model_dir``
    finds it); ``ModelError`` if unusable."""
    return _read_metadata(_check_directory(resolve_model_dir(path)))[0]


def _read_metadata(path: Path) -> tuple[dict[str, Any], FeatureConfig]:
    """The validated metadata and its feature configuration, parsed once."""
    file = path / METADATA_FILE
    if not file.is_file():
        raise ModelError(
            f"no model metadata: {METADATA_FILE} is missing (not an opencast-ml model)",
            path=str(file),
        )
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"unreadable model metadata: {exc}", path=str(file)) from exc
    return data, _check_metadata(data, str(file))


def _check_metadata(data: Any, file: str) -> FeatureConfig:
    """Refuses unusable metadata with a ``ModelError``; returns its feature configuration."""
    if not isinstance(data, dict):
        raise ModelError(
            f"model metadata must be a JSON object, got {type(data).__name__}", path=file
        )
    if "format_version" in data and data["format_version"] != FORMAT_VERSION:
        raise ModelError(
            f"unsupported format_version {data['format_version']!r}; "
            f"this pipeline reads format_version {FORMAT_VERSION}",
            path=file,
        )
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ModelError(f"model metadata lacks keys {missing}", path=file)
    for key in ("name", "version", "architecture"):
        if not isinstance(data[key], str) or not data[key]:
            raise ModelError(
                f"metadata {key} must be a non-empty string, got {data[key]!r}", path=file
            )
    try:
        features = FeatureConfig.from_dict(data["features"])
    except ValueError as exc:
        raise ModelError(f"bad feature configuration: {exc}", path=file) from exc
    try:
        check_int(data["context_frames"], name="context_frames", minimum=0)
    except ValueError as exc:
        raise ModelError(str(exc), path=file) from None
    if data["labels"] != LABELS:
        raise ModelError(f"labels must be {LABELS}, got {data['labels']!r}", path=file)
    for key in ("postprocess", "training", "metrics", "inference"):
        if data.get(key) is not None and not isinstance(data[key], Mapping):
            raise ModelError(f"metadata {key} must be an object, got {data[key]!r}", path=file)
    problem = inference_hint_problem(data.get("inference") or {})
    if problem:
        raise ModelError(f"metadata {problem}", path=file)
    for asset in ASSETS.values():
        problem = _asset_problem(asset, data.get(asset.key))
        if problem:
            raise ModelError(f"metadata {problem}", path=file)
    return features


def _asset_problem(asset: Asset, entry: Any) -> str | None:
    """What is wrong with a runtime's asset entry (a file name in ``assets/`` and the asset's
    fixed fields), or None; an absent entry is fine."""
    if entry is None:
        return None
    keys = ("file", *asset.fields)
    if not isinstance(entry, Mapping) or set(entry) != set(keys):
        return f"{asset.key} must be an object with keys {' and '.join(keys)}, got {entry!r}"
    name = entry["file"]
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        return f"{asset.key}.file must be a file name in assets/, got {name!r}"
    for field, value in asset.fields.items():
        if entry[field] != value:
            return f"{asset.key}.{field} must be {value!r}, got {entry[field]!r}"
    return None


def directory_sha256(path: str | os.PathLike[str]) -> str:
    """Stable hash of every file under ``path``: relative paths (sorted) and contents."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(
        (p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix()
    ):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


Runner = Callable[[np.ndarray], np.ndarray]
"""A loaded network: float32 ``[B, T, n_mels]`` → ``[B, T]``, shapes already checked."""


class Model:
    """A SavedModel's metadata and its network: ``predict([B, T, n_mels]) -> [B, T]``.

    The metadata attributes are there at once; the network may still be loading in a background
    thread (``load_model(..., background=True)``): ``predict`` and ``wait`` block until it is
    ready and raise its ``ModelError`` if loading failed.
    """

    def __init__(
        self,
        *,
        path: Path,
        metadata: dict[str, Any],
        runtime: str,
        runner: Future[Runner],
        features: FeatureConfig,
        sha256: str,
    ) -> None:
        self.path = path
        self.metadata = metadata
        self.runtime = runtime
        self.features = features
        self.context_frames: int = metadata["context_frames"]
        self.name: str = metadata["name"]
        self.version: str = metadata["version"]
        self.architecture: str = metadata["architecture"]
        self.postprocess: dict[str, Any] = dict(metadata.get("postprocess") or {})
        self.inference: dict[str, int] = {**INFERENCE_DEFAULTS, **(metadata.get("inference") or {})}
        self.sha256 = sha256
        self._runner = runner

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}, version={self.version!r}, architecture={self.architecture!r}, "
            f"runtime={self.runtime!r}, path='{self.path}')"
        )

    @property
    def ready(self) -> bool:
        """Whether the network has finished loading (or failed to): ``predict`` would not wait."""
        return self._runner.done()

    def wait(self) -> Model:
        """Block until the network is loaded; raises the loading's ``ModelError``."""
        self._runner.result()
        return self

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Speech probability per frame, float32 ``[B, T]``, for log-mel ``batch`` ``[B, T, n_mels]``."""
        data = np.asarray(batch, dtype=np.float32)
        if data.ndim != 3 or data.shape[2] != self.features.n_mels:
            raise ValueError(
                f"batch must be [batch, frames, {self.features.n_mels}] log-mels, "
                f"got shape {data.shape}"
            )
        if data.shape[0] == 0 or data.shape[1] == 0:
            return np.zeros(data.shape[:2], dtype=np.float32)
        out = self._runner.result()(data)
        if out.shape != data.shape[:2]:
            raise ModelError(
                f"model returned shape {out.shape} for input {data.shape}, "
                f"expected {data.shape[:2]}",
                path=str(self.path),
            )
        return out.astype(np.float32, copy=False)


def choose_runtime(requested: str, metadata: Mapping[str, Any], audio_seconds: float) -> str:
    """The runtime for a job: ``requested``, or for ``"auto"`` the faster one for this much audio.

    ``auto`` is ONNX Runtime when the model has an ONNX asset (faster than TensorFlow per frame
    and ~0.2 s instead of ~3 s to start, docs/performance.md); else LiteRT when the model has a
    TFLite asset and the job (one process's whole work) holds at most `LITERT_MAX_SECONDS` of
    audio; else TensorFlow. A worker, whose model serves job after job, passes ``math.inf``.
    """
    if requested != "auto":
        return requested
    if metadata.get(ASSETS["onnx"].key):
        return "onnx"
    small = audio_seconds <= LITERT_MAX_SECONDS
    return "litert" if small and metadata.get(ASSETS["litert"].key) else "tensorflow"


def runtime_depends_on_duration(metadata: Mapping[str, Any]) -> bool:
    """Whether ``choose_runtime("auto", metadata, …)`` depends on the audio's duration, i.e.
    whether a caller must read its inputs' durations before choosing."""
    return choose_runtime("auto", metadata, 0.0) != choose_runtime("auto", metadata, math.inf)


def load_model(
    path: str | os.PathLike[str] | None = None,
    *,
    runtime: str = "tensorflow",
    background: bool = False,
) -> Model:
    """Load the SavedModel at ``path`` (None: the shipped default), refusing incompatible ones.

    ``runtime``: ``"tensorflow"`` (the reference), ``"onnx"`` (the model's ONNX asset on ONNX
    Runtime) or ``"litert"`` (its TFLite asset on LiteRT); on the last two TensorFlow is never
    imported. With ``background`` the metadata is checked at once and
    the network loads in a thread, so the caller can start decoding; TensorFlow must then not be
    forked while it loads (worker processes load after the fork, in the foreground).
    """
    root = resolve_model_dir(path)
    metadata, features = _read_metadata(_check_directory(root))
    problems = features.mismatches(PIPELINE_FEATURES)
    if problems:
        raise ModelError(
            "model features differ from the pipeline's: " + "; ".join(problems), path=str(root)
        )
    return _model(root, metadata, features, runtime=runtime, background=background)


def open_savedmodel(path: str | os.PathLike[str], *, runtime: str = "tensorflow") -> Model:
    """Load the SavedModel at ``path`` with its metadata, whatever its feature configuration.

    For export checks and tools; segmenting uses ``load_model``, which also checks the features.
    """
    root = _check_directory(resolve_model_dir(path))
    return _model(root, *_read_metadata(root), runtime=runtime, background=False)


def _check_directory(root: Path) -> Path:
    """``root`` if it holds a SavedModel; a ``ModelError`` that says what it holds instead."""
    if not root.is_dir():
        raise ModelError("model directory does not exist", path=str(root))
    if (root / RUN_RECIPE).is_file() and not (root / "saved_model.pb").is_file():
        raise ModelError(
            f"a training run without an exported model ({RUN_MODEL_DIR}/ is missing: the run "
            "has not finished; `ocml-train export` writes one from its checkpoints)",
            path=str(root),
        )
    if not (root / "saved_model.pb").is_file():
        raise ModelError("not a SavedModel: saved_model.pb is missing", path=str(root))
    return root


def _model(
    root: Path,
    metadata: dict[str, Any],
    features: FeatureConfig,
    *,
    runtime: str,
    background: bool,
) -> Model:
    if runtime not in RUNTIMES:
        raise ModelError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    asset = ASSETS.get(runtime)
    if asset is not None and not metadata.get(asset.key):
        raise ModelError(
            f"runtime {runtime} needs the model's {asset.kind} in assets/ ({asset.how})",
            path=str(root),
        )
    if runtime in RUNTIME_EXTRAS:
        require(RUNTIME_EXTRAS[runtime], f"runtime {runtime}")
    opener = {"tensorflow": _open_tensorflow, "onnx": _open_onnx, "litert": _open_litert}[runtime]
    runner: Future[Runner] = Future()

    def load() -> None:
        try:
            runner.set_result(opener(root, metadata))
        except BaseException as exc:  # handed to whoever waits for the model
            runner.set_exception(exc)

    if background:
        # Not a daemon: the interpreter's exit waits for the load to end. A process that exits
        # while the thread is inside TensorFlow's or ONNX Runtime's native code (every file
        # failed before inference) is otherwise aborted ("terminate called without an active
        # exception", status -6).
        threading.Thread(target=load, name="ocml-model-load", daemon=False).start()
    else:
        load()
        runner.result()
    return Model(
        path=root,
        metadata=metadata,
        runtime=runtime,
        runner=runner,
        features=features,
        sha256=directory_sha256(root),
    )


def serving_signature_name(loaded: Any, root: str | os.PathLike[str]) -> str:
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


def _open_tensorflow(root: Path, metadata: dict[str, Any]) -> Runner:
    """The SavedModel's serving signature, checked against the metadata."""
    tf = import_tensorflow()
    try:
        loaded = tf.saved_model.load(str(root))
    except Exception as exc:  # TensorFlow raises many types for a damaged SavedModel
        raise ModelError(
            f"cannot load SavedModel: {type(exc).__name__}: {exc}", path=str(root)
        ) from exc
    signature = loaded.signatures[serving_signature_name(loaded, root)]
    return _TensorFlowRunner(
        tf,
        loaded,
        signature,
        _check_input(signature, metadata, str(root)),
        _check_output(signature, str(root)),
    )


class _TensorFlowRunner:
    """A SavedModel's serving signature as a `Runner`."""

    def __init__(self, tf: Any, loaded: Any, signature: Any, input_name: str, output: str) -> None:
        self._tf = tf
        self._loaded = loaded  # keeps the signature's variables alive
        self._signature = signature
        self._input_name = input_name
        self._output = output

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        tensor = self._tf.constant(batch)
        return self._signature(**{self._input_name: tensor})[self._output].numpy()


def _open_litert(root: Path, metadata: dict[str, Any]) -> Runner:
    """The TFLite asset on a LiteRT interpreter: one window at a time, resized to its length.

    The flatbuffer has batch 1 and any number of frames (a fixed batch is what lets a recurrent
    layer convert to built-in ops); each length change re-plans the interpreter (cheap).
    """
    from ai_edge_litert.interpreter import Interpreter

    file = _asset_file(root, metadata, ASSETS["litert"])
    try:
        with native_noise_filtered():  # the first allocation announces its XNNPACK delegate
            interpreter = Interpreter(model_path=str(file), num_threads=_threads.get("threads", 1))
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load the TFLite asset: {exc}", path=str(file)) from exc
    return _LiteRTRunner(interpreter)


class _LiteRTRunner:
    """A LiteRT interpreter of a batch-1, any-length flatbuffer as a `Runner`, window by window."""

    def __init__(self, interpreter: Any) -> None:
        self._interpreter = interpreter
        (source,) = interpreter.get_input_details()
        (target,) = interpreter.get_output_details()
        self._source, self._target = source["index"], target["index"]
        self._frames = -1

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


def _asset_file(root: Path, metadata: Mapping[str, Any], asset: Asset) -> Path:
    """The path of the ``asset`` that ``metadata`` declares; ``ModelError`` naming it if missing."""
    file = root / "assets" / metadata[asset.key]["file"]
    if not file.is_file():
        raise ModelError(
            f"the {asset.kind} that {METADATA_FILE} declares is missing", path=str(file)
        )
    return file


def _open_onnx(root: Path, metadata: dict[str, Any]) -> Runner:
    """The ONNX asset in an ONNX Runtime session on the CPU, with the entry point's threads.

    The session takes the whole batch at once (batch and frame axes are free). Its CPU memory
    arena stays on: without it the batch of 12 × 2400 frames peaked ~85 MB lower but ran ~35 %
    slower (the recurrent loop allocates at every step; docs/performance.md).
    """
    import onnxruntime

    file = _asset_file(root, metadata, ASSETS["onnx"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _threads.get("threads", 1)
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
        or (isinstance(inputs[0].shape[2], int) and inputs[0].shape[2] != n_mels)  # int: fixed
    ):
        found = [(i.name, i.type, i.shape) for i in inputs]
        raise ModelError(
            f"the ONNX asset must take one float32 [batch, frames, {n_mels}] input, takes {found}",
            path=str(file),
        )
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        found = [(o.name, o.type, o.shape) for o in outputs]
        raise ModelError(
            f"the ONNX asset must give one [batch, frames] output, gives {found}", path=str(file)
        )
    return _OnnxRunner(session, inputs[0].name)


class _OnnxRunner:
    """An ONNX Runtime session as a `Runner`."""

    def __init__(self, session: Any, input_name: str) -> None:
        self._session = session
        self._input_name = input_name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self._session.run(None, {self._input_name: batch})
        return out


def _check_input(signature: Any, metadata: dict[str, Any], where: str) -> str:
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


def _check_output(signature: Any, where: str) -> str:
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
