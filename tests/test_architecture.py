"""The dependency graph of docs/architecture.md, checked: each package (every module of it) is
imported in a fresh interpreter and must not have pulled in what its layer may not use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CELERY = ("celery", "kombu", "redis")
FRAMEWORKS = (*CELERY, "click", "pygame", "matplotlib")
TENSORFLOW = ("tensorflow", "keras")

FORBIDDEN: dict[str, tuple[str, ...]] = {
    # The pure library: no framework, no TensorFlow until a model is loaded, nothing of ours.
    "ocml.pipeline": (
        *FRAMEWORKS,
        *TENSORFLOW,
        "yaml",
        "ocml.config",
        "ocml.models",
        "ocml.worker",
        "ocml.player",
        "ocml.cli",
    ),
    "ocml.config": (
        *FRAMEWORKS,
        *TENSORFLOW,
        "ocml.pipeline",
        "ocml.models",
        "ocml.worker",
        "ocml.player",
        "ocml.cli",
    ),
    # Training uses the pipeline; its command line is ocml.cli's, so no click and no Celery.
    "ocml.models": (*CELERY, "click", "pygame", "ocml.player", "ocml.worker", "ocml.cli"),
    "ocml.player": (
        *CELERY,
        *TENSORFLOW,
        "click",
        "ocml.config",
        "ocml.models",
        "ocml.worker",
        "ocml.cli",
    ),
    # Celery itself imports click (celery/app/base.py), so click cannot be forbidden here.
    "ocml.worker": ("pygame", "matplotlib", *TENSORFLOW, "ocml.models", "ocml.player", "ocml.cli"),
}
LAZY: dict[str, tuple[str, ...]] = {
    # The commands import their heavy parts when one runs, so --help stays instant.
    "ocml.cli": TENSORFLOW + ("pygame", "matplotlib"),
    "ocml.models.recipe": TENSORFLOW,
}
WALK = """
import importlib, json, pkgutil, sys
name = sys.argv[1]
module = importlib.import_module(name)
for info in pkgutil.walk_packages(getattr(module, "__path__", []), name + "."):
    importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def imported_by(name: str) -> list[str]:
    """Every module a fresh interpreter holds after importing ``name`` and all its submodules."""
    proc = subprocess.run(
        [sys.executable, "-c", WALK, name], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def offending(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("name", [*FORBIDDEN, *LAZY])
def test_a_package_imports_only_what_its_layer_may_use(name: str) -> None:
    modules = imported_by(name)
    assert name in modules
    assert offending(modules, FORBIDDEN.get(name, ()) + LAZY.get(name, ())) == []


def test_the_check_sees_a_forbidden_import() -> None:
    assert offending(imported_by("ocml.worker.app"), ("celery",)) != []
    assert offending(["celery.app", "celeryish"], ("celery",)) == ["celery.app"]
