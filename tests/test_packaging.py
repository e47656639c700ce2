"""The wheel installs one import package, ``ocml``, and works away from the checkout.

The wheel is built from the checkout and installed without dependencies into a fresh venv whose
``.pth`` file points at this venv's site-packages for TensorFlow and the rest. A directory named
in a ``.pth`` file is added to ``sys.path`` without processing the ``.pth`` files inside it, so the
editable install's import hook stays inactive: whatever runs comes from the wheel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.train

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = {"ocml", "opencast_ml"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (path,) = out.glob("opencast_ml-*.whl")
    return path


def test_wheel_holds_only_the_ocml_package_and_its_model(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0].split("-")[0] for n in names} <= TOP_LEVEL
    assert "ocml/models/pretrained/default/saved_model.pb" in names
    assert "ocml/models/pretrained/default/assets/ocml.json" in names
    assert "ocml/pipeline/schemas/segments-v1.schema.json" in names
    assert "ocml/config/default.yaml" in names
    assert not [n for n in names if n.startswith(("pipeline/", "models/", "config/", "tests/"))]


def test_installed_wheel_segments_from_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    fresh_python = venv / "bin" / "python"
    fresh_site = Path(
        subprocess.run(
            [fresh_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (fresh_site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(fresh_python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run(
        [
            fresh_python,
            "-c",
            "import ocml.pipeline, ocml.models.pretrained as p; "
            "print(ocml.pipeline.__file__); print(p.__file__)",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=work,
    ).stdout.split()
    assert all(path.startswith(str(fresh_site)) for path in where), where

    subprocess.run(
        [
            venv / "bin" / "ocml",
            "segment",
            ROOT / "tests" / "data" / "lecture-sample.flac",
            "-o",
            work / "out",
            "--format",
            "json,smil",
        ],
        check=True,
        capture_output=True,
        cwd=work,
        timeout=300,
    )
    result = json.loads((work / "out" / "lecture-sample.json").read_text())
    assert result["model"]["name"] == "default"
    assert result["segments"], "the sample recording has speech"
    assert (work / "out" / "lecture-sample.smil").stat().st_size > 0
