"""The dependency graph of docs/architecture.md, checked: each package (every module of it) is
imported in a fresh interpreter and must not have pulled in what its layer may not use; and the
import statements of every module, read with ``ast`` (inside functions too), form no cycle."""

from __future__ import annotations

import ast
import configparser
import json
import subprocess
import sys
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

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
ALLOWED: dict[str, tuple[str, ...]] = {
    # The settings check a `runtime` against the pipeline's runtime names, spelled once in a
    # module that imports nothing; config may import it (and the empty packages around it).
    "ocml.config": ("ocml.pipeline", "ocml.pipeline.runtimes", "ocml.pipeline.runtimes.names"),
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
    modules = [m for m in imported_by(name) if m not in ALLOWED.get(name, ())]
    assert name in modules
    assert offending(modules, FORBIDDEN.get(name, ()) + LAZY.get(name, ())) == []


def test_the_check_sees_a_forbidden_import() -> None:
    assert offending(imported_by("ocml.worker.app"), ("celery",)) != []
    assert offending(["celery.app", "celeryish"], ("celery",)) == ["celery.app"]


ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("ocml.pipeline", "ocml.config", "ocml.models", "ocml.player", "ocml.worker")


def module_files() -> dict[str, Path]:
    """Every module of the ``ocml`` package by name, with its file, from setup.cfg's package_dir."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    lines = setup["options"]["package_dir"].strip().splitlines()
    files: dict[str, Path] = {}
    for package, folder in (map(str.strip, line.split("=")) for line in lines):
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = parts[:-1] if parts[-1] == "__init__" else parts
            files[".".join((package, *name))] = path
    return files


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every name an ``import`` or ``from … import`` of ``path`` may load, at module level and
    inside functions alike, relative imports resolved (``from a import b``: ``a`` and ``a.b``)."""
    package = module.split(".")[: None if path.name == "__init__.py" else -1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            stem = ".".join([*base, *([node.module] if node.module else [])])
            yield stem
            yield from (f"{stem}.{alias.name}" for alias in node.names)


def import_graph(files: Mapping[str, Path]) -> dict[str, set[str]]:
    """Which of ``files``' modules each of them imports; a name that is none of them counts as
    its longest prefix that is one (``from ocml.x.y import f``: ``ocml.x.y``)."""
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        graph[module] = set()
        for name in imported_names(module, path):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                graph[module].add(name)
    return graph


def find_cycle(graph: Mapping[str, Collection[str]]) -> list[str]:
    """A cycle of ``graph``: its nodes in import order, the first repeated last; [] if none."""
    finished: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str]:
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if target in path:
                return [*path[path.index(target) :], target]
            if target not in finished and (cycle := visit(target)):
                return cycle
        path.pop()
        finished.add(node)
        return []

    for node in sorted(graph):
        if node not in finished and (cycle := visit(node)):
            return cycle
    return []


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(module_files())


def test_no_module_imports_one_that_imports_it_back(graph: dict[str, set[str]]) -> None:
    assert "ocml.pipeline.segment" in graph["ocml.cli.segment"]
    cycle = find_cycle(graph)
    assert cycle == [], "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("room", LIBRARIES)
def test_no_library_room_imports_the_command_line(room: str, graph: dict[str, set[str]]) -> None:
    found = {m: offending(sorted(t), ("ocml.cli",)) for m, t in graph.items()}
    assert {m: cli for m, cli in found.items() if cli and offending([m], (room,))} == {}
    assert found["ocml.cli.root"] != []


def test_only_the_command_line_imports_click() -> None:
    """Celery imports click, so the package check cannot forbid it to the worker; this one does."""
    found = {
        m: offending(sorted(imported_names(m, p)), ("click",)) for m, p in module_files().items()
    }
    assert {
        m: names for m, names in found.items() if names and not offending([m], ("ocml.cli",))
    } == {}
    assert found["ocml.cli.root"] == ["click"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_reads_relative_and_function_level_imports(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    files = {
        "ocml.a": tmp_path / "a" / "__init__.py",
        "ocml.a.b": tmp_path / "a" / "b.py",
        "ocml.a.c": tmp_path / "a" / "c.py",
        "ocml.d": tmp_path / "d.py",
    }
    files["ocml.a"].write_text("from .b import f\n")
    files["ocml.a.b"].write_text(
        "from . import c\nfrom ..d import e\n\n\ndef f():\n    import ocml.x.y\n"
    )
    files["ocml.a.c"].write_text("")
    files["ocml.d"].write_text("")
    assert sorted(imported_names("ocml.a.b", files["ocml.a.b"])) == [
        "ocml.a",
        "ocml.a.c",
        "ocml.d",
        "ocml.d.e",
        "ocml.x.y",
    ]
    found = import_graph(files)
    assert found == {
        "ocml.a": {"ocml.a.b"},
        "ocml.a.b": {"ocml.a", "ocml.a.c", "ocml.d"},
        "ocml.a.c": set(),
        "ocml.d": set(),
    }
    assert find_cycle(found) == ["ocml.a", "ocml.a.b", "ocml.a"]
