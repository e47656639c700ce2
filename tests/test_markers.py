"""The test markers hold: every test module that starts worker processes is marked ``fleet``, so
``make quick`` (``-m "not fleet and not train and not slow"``) never starts a fleet."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import pytest

from tests import worker_support

TESTS = Path(__file__).resolve().parent
STARTERS = ("running_workers", "WorkerProcess", "WatchProcess")
"""What ``tests/worker_support.py`` starts worker (or watcher) processes with."""
FLEET_FIXTURE = "fleet"


def starts_workers(tree: ast.Module) -> bool:
    """Whether a test module imports one of ``STARTERS`` or asks for the ``fleet`` fixture."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "tests.worker_support":
            if any(alias.name in STARTERS for alias in node.names):
                return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if any(arg.arg == FLEET_FIXTURE for arg in node.args.args):
                return True
    return False


def module_marks(tree: ast.Module) -> set[str]:
    """The ``pytest.mark.NAME`` names in a module's top-level ``pytestmark``."""
    marks: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            for sub in ast.walk(node.value):
                if (
                    isinstance(sub, ast.Attribute)
                    and isinstance(sub.value, ast.Attribute)
                    and sub.value.attr == "mark"
                ):
                    marks.add(sub.attr)
    return marks


def unmarked_fleets(sources: dict[str, str]) -> list[str]:
    """The names of the modules in ``sources`` that start workers without the ``fleet`` mark."""
    trees = {name: ast.parse(text, name) for name, text in sources.items()}
    return sorted(
        n for n, t in trees.items() if starts_workers(t) and "fleet" not in module_marks(t)
    )


def test_every_module_that_starts_workers_is_marked_fleet() -> None:
    sources = {p.name: p.read_text(encoding="utf-8") for p in sorted(TESTS.glob("test_*.py"))}
    assert unmarked_fleets(sources) == []
    assert [n for n, text in sources.items() if starts_workers(ast.parse(text))], "none found"


def test_the_check_sees_a_fleet_without_its_mark() -> None:
    starter = "from tests.worker_support import running_workers\n"
    fixture = "def test_jobs(fleet):\n    pass\n"
    marked = "import pytest\npytestmark = [pytest.mark.fleet, pytest.mark.slow]\n"
    other_mark = "import pytest\npytestmark = pytest.mark.train\n"
    assert unmarked_fleets(
        {"a": starter, "b": fixture, "c": other_mark + fixture, "d": marked + starter}
    ) == ["a", "b", "c"]
    assert unmarked_fleets({"e": "from tests.worker_support import flush\n"}) == []


def test_the_starters_still_exist() -> None:
    """A renamed harness must not leave the check above looking for names nobody imports."""
    assert all(hasattr(worker_support, name) for name in STARTERS)


@pytest.mark.parametrize("mark", ["fleet", "train", "slow"])
def test_the_markers_are_registered(mark: str) -> None:
    setup = configparser.ConfigParser()
    setup.read(TESTS.parent / "setup.cfg")
    registered = [
        line.split(":")[0].strip() for line in setup["tool:pytest"]["markers"].splitlines()
    ]
    assert mark in registered
