"""benchmarks/image_size.py's logic on tiny folders: how it sizes a tree and an install, reads the
Dockerfile and apt sources, and slims a root filesystem. Building an image is left to the script."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_size", ROOT / "benchmarks/image_size.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


image_size = _load()


def _write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def test_tree_size_counts_files_and_links_once_and_no_folders(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.bin", 1000)
    _write(tmp_path / "sub" / "deeper" / "b.bin", 300)
    os.link(a, tmp_path / "sub" / "a-again.bin")
    (tmp_path / "link").symlink_to("sub/deeper/b.bin")
    (tmp_path / "folder-link").symlink_to("sub")
    _write(tmp_path / "proc" / "skipped.bin", 5000)

    expected = 1000 + 300 + len("sub/deeper/b.bin") + len("sub") + 5000
    assert image_size.tree_size(tmp_path) == expected
    assert image_size.tree_size(tmp_path, skip={"proc"}) == expected - 5000
    assert image_size.tree_size(tmp_path, skip={"sub/deeper"}) == expected - 300


def test_bytecode_size_sums_pycache_folders(tmp_path: Path) -> None:
    _write(tmp_path / "pkg" / "__pycache__" / "m.cpython-311.pyc", 70)
    _write(tmp_path / "pkg" / "sub" / "__pycache__" / "n.cpython-311.pyc", 30)
    _write(tmp_path / "pkg" / "m.py", 500)
    assert image_size.bytecode_size(tmp_path) == 100


def test_dist_sizes_reads_records_largest_first(tmp_path: Path) -> None:
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    _write(site / "small" / "__init__.py", 10)
    _write(site / "big" / "core.so", 900)
    _write(site / "big.libs" / "libx.so", 100)
    _write(tmp_path / "bin" / "big-tool", 5)
    small = site / "small-1.0.dist-info"
    big = site / "big-2.0.dist-info"
    _write(small / "METADATA", 4)
    _write(big / "METADATA", 6)
    (small / "RECORD").write_text(
        "small/__init__.py,sha256=x,10\nsmall-1.0.dist-info/METADATA,,\n"
        "small-1.0.dist-info/RECORD,,\nbig/core.so,,\n\n"
    )
    (big / "RECORD").write_text(
        "big/core.so,sha256=x,900\nbig.libs/libx.so,,\n../../../bin/big-tool,,\n"
        "big/gone.py,,\nbig-2.0.dist-info/METADATA,,\n"
    )
    sizes = image_size.dist_sizes(site)
    assert list(sizes) == ["big", "small"]
    assert sizes["big"] == 900 + 100 + 5 + 6
    assert sizes["small"] == 10 + 4 + (small / "RECORD").stat().st_size


def test_dockerfile_steps_join_continued_lines_and_drop_comments() -> None:
    text = (
        "# a comment\nFROM python:3.11-slim\n\nENV A=1 \\\n    B='two words'\n"
        "RUN pip install . \\\n # inside\n && echo done\nCOPY pipeline ./pipeline\n"
    )
    assert image_size.dockerfile_steps(text) == [
        ("FROM", "python:3.11-slim"),
        ("ENV", "A=1 B='two words'"),
        ("RUN", "pip install . && echo done"),
        ("COPY", "pipeline ./pipeline"),
    ]
    with pytest.raises(ValueError, match="continued line"):
        image_size.dockerfile_steps("RUN echo \\\n")


def test_the_dockerfile_is_one_the_script_can_apply() -> None:
    steps = image_size.dockerfile_steps((ROOT / "docker" / "Dockerfile").read_text())
    words = {word for word, _ in steps}
    handled = {"FROM", "ENV", "USER", "WORKDIR", "COPY", "RUN"} | image_size.IGNORED_INSTRUCTIONS
    assert words <= handled
    assert steps[0] == ("FROM", "python:3.11-slim")
    (install,) = [args for word, args in steps if word == "RUN" and "pip install" in args]
    assert "pip install '.[tensorflow,litert,player,train]'" in image_size.with_extras(
        install, image_size.ALL_EXTRAS
    )
    env = {}
    for word, args in steps:
        if word == "ENV":
            env.update(image_size.env_values(args))
    assert env["PIP_NO_CACHE_DIR"] == "1" and env["OCML_MEDIA_ROOTS"] == "/srv/media"


def test_env_values_both_forms() -> None:
    assert image_size.env_values("A=1 B='x y'") == {"A": "1", "B": "x y"}
    assert image_size.env_values("LANG C.UTF-8") == {"LANG": "C.UTF-8"}


def test_with_extras_needs_exactly_one_pip_install_of_the_context() -> None:
    assert image_size.with_extras("pip install . && true", "a,b") == "pip install '.[a,b]' && true"
    with pytest.raises(ValueError, match="pip install ./pkg"):
        image_size.with_extras("pip install ./pkg", "a")


def test_debian_mirrors_from_deb822_and_one_line_sources() -> None:
    text = (
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb-src\nURIs: http://src.example/debian\nSuites: trixie\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "deb [arch=amd64] http://other.example/debian trixie main\n"
        "deb http://late.example/debian bookworm main\n"
    )
    assert image_size.debian_mirrors(text) == {
        "bookworm": "http://mirror.example/debian",
        "bookworm-updates": "http://mirror.example/debian",
        "bookworm-security": "http://mirror.example/debian-security",
        "trixie": "http://other.example/debian",
    }


def test_slimify_drops_docs_man_and_locales_but_keeps_copyrights(tmp_path: Path) -> None:
    (tmp_path / "etc" / "dpkg" / "dpkg.cfg.d").mkdir(parents=True)
    share = tmp_path / "usr" / "share"
    _write(share / "doc" / "bash" / "copyright", 10)
    _write(share / "doc" / "bash" / "README.gz", 10)
    _write(share / "doc" / "gone" / "changelog.gz", 10)
    (share / "doc" / "bash" / "link").symlink_to("README.gz")
    _write(share / "man" / "man1" / "bash.1.gz", 10)
    _write(share / "locale" / "de" / "LC_MESSAGES" / "bash.mo", 10)
    _write(share / "locale" / "locale.alias", 10)
    _write(share / "zoneinfo" / "UTC", 10)

    image_size.slimify(tmp_path)

    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert [p for p in left if p.startswith("usr/share/")] == [
        "usr/share/doc",
        "usr/share/doc/bash",
        "usr/share/doc/bash/copyright",
        "usr/share/locale",
        "usr/share/locale/locale.alias",
        "usr/share/man",
        "usr/share/zoneinfo",
        "usr/share/zoneinfo/UTC",
    ]
    config = (tmp_path / "etc" / "dpkg" / "dpkg.cfg.d" / "docker").read_text()
    assert "path-exclude /usr/share/doc/*" in config
    assert "path-include /usr/share/doc/*/copyright" in config
