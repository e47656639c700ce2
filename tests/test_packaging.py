"""The wheel ``make wheel`` builds, installed the way docs/opencast.md installs it on a host.

SLOW (about two minutes; every test here shares one build and one install): ``make wheel`` builds
the wheel in a venv of its own; a fresh venv (``python -m venv``, no system site-packages) installs
it with its core dependencies alone, from the package registry pip is configured with here, as on
a clean machine; ``ocml`` then runs from that venv, away from the checkout. The core segments on
ONNX Runtime with none of the extras' libraries, and each command that needs an extra names it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.train

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "lecture-sample.flac"
TOP_LEVEL = {"ocml", "opencast_ml"}
EXTRA_MODULES = ("tensorflow", "keras", "ai_edge_litert", "pygame", "matplotlib", "onnx", "tf2onnx")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        ["make", "-s", "wheel", f"DIST={out}", f"PYTHON={sys.executable}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("opencast_ml-*.whl")
    assert built.stdout.strip() == str(path), "make wheel names only the wheel it built"
    return path


@pytest.fixture(scope="module")
def host(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its core dependencies installed; its ``bin``."""
    venv = tmp_path_factory.mktemp("host") / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    installed = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-qq", wheel],
        capture_output=True,
        text=True,
        timeout=900,
        env=_clean_env(),
    )
    assert installed.returncode == 0, installed.stderr
    return venv / "bin"


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that would point at the checkout or its venv."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("OCML_")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )
    return {**env, **extra}


def _run(command: list, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env=_clean_env(**env),
    )


def test_wheel_holds_only_the_ocml_package_and_its_model(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0].split("-")[0] for n in names} <= TOP_LEVEL
    assert "ocml/models/pretrained/default/saved_model.pb" in names
    assert "ocml/models/pretrained/default/assets/ocml.json" in names
    assert "ocml/models/pretrained/default/assets/model.onnx" in names
    assert "ocml/pipeline/schemas/segments-v1.schema.json" in names
    assert "ocml/config/default.yaml" in names
    assert not [n for n in names if n.startswith(("pipeline/", "models/", "config/", "tests/"))]


def test_the_core_install_segments_without_any_extra(host: Path, tmp_path: Path):
    where = _run(
        [
            host / "python",
            "-c",
            "import importlib.util as u, json, ocml.pipeline, ocml.models.pretrained as p; "
            f"print(json.dumps([ocml.pipeline.__file__, p.__file__, "
            f"[m for m in {EXTRA_MODULES!r} if u.find_spec(m)]]))",
        ],
        tmp_path,
    )
    assert where.returncode == 0, where.stderr
    pipeline_file, model_file, extras_found = json.loads(where.stdout)
    assert pipeline_file.startswith(str(host.parent)) and model_file.startswith(str(host.parent))
    assert extras_found == [], "the core install pulled in an extra's library"

    for command in ("ocml", "ocml-train"):
        shown = _run([host / command, "--help"], tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "Usage:" in shown.stdout

    done = _run(
        [host / "ocml", "segment", SAMPLE, "-o", tmp_path / "out", "--format", "json,smil"],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out" / "lecture-sample.json").read_text())
    assert result["model"]["name"] == "default"
    assert result["segments"], "the sample recording has speech"
    assert f"{len(result['segments'])} speech segments" in done.stdout
    assert (tmp_path / "out" / "lecture-sample.smil").stat().st_size > 0


def _failure(proc: subprocess.CompletedProcess[str]) -> str:
    """The one failure line of a command that must end without a traceback."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def test_each_command_that_needs_an_extra_names_it(host: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert _run([host / "ocml", "segment", SAMPLE, "-o", out, "-q"], tmp_path).returncode == 0
    result = out / "lecture-sample.json"
    expected = {
        ("ocml", "play", SAMPLE, "--result", result, "--screenshot", tmp_path / "f.png"): (
            "the player needs pygame: pip install 'opencast-ml[player]'"
        ),
        ("ocml", "plot", SAMPLE, "--result", result, "-o", tmp_path / "p.png"): (
            "ocml plot needs matplotlib: pip install 'opencast-ml[player]'"
        ),
        ("ocml", "segment", SAMPLE, "-o", out, "--runtime", "tensorflow"): (
            "runtime tensorflow needs tensorflow-cpu: pip install 'opencast-ml[tensorflow]'"
        ),
        ("ocml-train", "add-onnx", ROOT / "models" / "pretrained" / "default"): (
            "ocml-train add-onnx needs tensorflow-cpu, keras, onnx, tf2onnx, matplotlib: "
            "pip install 'opencast-ml[train]'"
        ),
    }
    for (command, *args), message in expected.items():
        proc = _run([host / command, *args], tmp_path)
        assert (proc.returncode, _failure(proc)) == (1, f"ocml: failed: missing_extra: {message}")
    assert not (tmp_path / "f.png").exists() and not (tmp_path / "p.png").exists()

    media, results = tmp_path / "media", tmp_path / "results"
    media.mkdir()
    refused = _run(
        [host / "ocml", "worker"],
        tmp_path,
        OCML_RUNTIME="tensorflow",
        OCML_MEDIA_ROOTS=str(media),
        OCML_OUTPUT_ROOT=str(results),
    )
    assert (refused.returncode, _failure(refused)) == (
        2,
        "ocml: failed: runtime: runtime tensorflow needs tensorflow-cpu: "
        "pip install 'opencast-ml[tensorflow]'",
    )
