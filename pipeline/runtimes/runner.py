"""The one interface every runtime gives a loaded model: `Runner`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np


class Runner(Protocol):
    """A network loaded on one runtime: float32 ``[B, T, n_mels]`` → ``[B, T]``; the caller
    (``Model.predict``) has checked the input's shape and checks the output's."""

    @classmethod
    def open(cls, root: Path, metadata: Mapping[str, Any]) -> Self:
        """The SavedModel at ``root`` (whose checked ``metadata`` is given) on this runtime;
        ``ModelError`` naming what is wrong if it cannot run there."""
        ...

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Speech probability per frame, ``[B, T]``, for the log-mels ``batch``."""
        ...
