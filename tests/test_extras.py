"""pipeline/extras.py against setup.cfg's extras, and the error it gives for a missing one.

The end-to-end check, a core install whose commands name the extra they need, is in
tests/test_packaging.py.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from ocml.pipeline.errors import MissingExtra
from ocml.pipeline.extras import DISTRIBUTIONS, EXTRAS, explain, require

ROOT = Path(__file__).resolve().parents[1]


def setup_extras() -> dict[str, set[str]]:
    """setup.cfg's extras with the distribution names each requires."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    return {
        extra: {re.split(r"[<>=\[; ]", line.strip())[0] for line in text.strip().splitlines()}
        for extra, text in setup["options.extras_require"].items()
    }


def test_every_extra_a_command_names_is_in_setup_cfg_with_its_libraries():
    declared = setup_extras()
    for extra, modules in EXTRAS.items():
        assert extra in declared, extra
        assert {DISTRIBUTIONS.get(m, m) for m in modules} <= declared[extra], extra


def test_a_missing_module_names_the_extra_to_install():
    with pytest.raises(MissingExtra) as caught:
        require("player", "the player", modules=["pygame", "ocml_no_such_module"])
    assert str(caught.value) == (
        "the player needs ocml_no_such_module: pip install 'opencast-ml[player]'"
    )
    assert caught.value.code == "missing_extra"
    assert require("player", "the player", modules=["json"]) is None
    with pytest.raises(ValueError, match="unknown extra 'gpu'"):
        require("gpu", "x")


def test_a_failed_import_of_an_extras_library_becomes_missing_extra():
    def failed(name: str) -> ModuleNotFoundError:
        return ModuleNotFoundError(f"No module named {name!r}", name=name)

    assert str(explain(failed("pygame.mixer"))) == (
        "this needs pygame: pip install 'opencast-ml[player]'"
    )
    assert str(explain(failed("tensorflow"))).endswith("'opencast-ml[tensorflow]'")
    assert str(explain(failed("tensorflow"), "train")) == (
        "this needs tensorflow-cpu: pip install 'opencast-ml[train]'"
    )
    assert str(explain(failed("matplotlib"), "litert")).endswith("'opencast-ml[player]'")
    assert explain(failed("celery")) is None
