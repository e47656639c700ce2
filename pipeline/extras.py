"""The optional parts of opencast-ml (pip extras) and the one error for a missing one.

The core install segments on ONNX Runtime and runs the worker; TensorFlow, LiteRT, the player's
and the trainer's libraries come with the extras named here. Whatever needs one calls `require`
first, so a missing part ends the command with one line naming the extra to install, never with
an ``ImportError`` traceback.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from ocml.pipeline.errors import MissingExtra
from ocml.pipeline.runtimes.names import LITERT, TENSORFLOW

EXTRAS: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow",),
    "litert": ("ai_edge_litert",),
    "player": ("pygame", "matplotlib"),
    "train": ("tensorflow", "keras", "onnx", "tf2onnx", "matplotlib"),
}
"""Each extra of setup.cfg and the top-level modules it installs."""
DISTRIBUTIONS = {"tensorflow": "tensorflow-cpu", "ai_edge_litert": "ai-edge-litert"}
"""The pip name of each module whose distribution is named otherwise."""
RUNTIME_EXTRAS = {TENSORFLOW: "tensorflow", LITERT: "litert"}
"""The extra each model runtime other than ONNX Runtime (a core dependency) needs."""


def install_command(extra: str) -> str:
    """The command that installs ``extra`` beside an installed opencast-ml."""
    return f"pip install 'opencast-ml[{extra}]'"


def missing(modules: Iterable[str]) -> list[str]:
    """The pip names of those of ``modules`` that cannot be imported here (nothing is imported)."""
    return [DISTRIBUTIONS.get(m, m) for m in modules if importlib.util.find_spec(m) is None]


def require(extra: str, purpose: str, modules: Iterable[str] | None = None) -> None:
    """Nothing when ``extra`` (or those of its ``modules`` that ``purpose`` uses) is installed;
    else `MissingExtra`: "``purpose`` needs pygame: pip install 'opencast-ml[player]'"."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    absent = missing(EXTRAS[extra] if modules is None else modules)
    if absent:
        raise MissingExtra(f"{purpose} needs {', '.join(absent)}: {install_command(extra)}")


def explain(exc: ModuleNotFoundError, extra: str | None = None) -> MissingExtra | None:
    """`MissingExtra` for an import that failed because an extra is not installed (``extra``
    when it provides the module, else the first that does); None for any other module."""
    top = (exc.name or "").split(".")[0]
    providers = [name for name, modules in EXTRAS.items() if top in modules]
    if not providers:
        return None
    chosen = extra if extra in providers else providers[0]
    return MissingExtra(f"this needs {DISTRIBUTIONS.get(top, top)}: {install_command(chosen)}")
