"""The Opencast workflow definitions in docs/opencast/ against facts read from Opencast's source.

``tests/data/opencast-operations.json`` lists, for each Opencast branch (r/13.x to r/16.x and
develop, at the commits named there and in docs/opencast.md), the definition elements its parser
reads, the configuration panel its admin UI shows and every operation id and configuration key
these workflows use; the checks here hold both definitions to every branch, also run each
``ocml`` command line through the real ``ocml submit`` or ``ocml status`` option parser, follow
the workflow properties ``submit --properties`` sets to the operations that read them, and follow
the cutting SMIL from where it is made to the editor and the non-interactive cut.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ocml.cli.queue import OUTCOME_PROPERTIES, status, submit
from ocml.pipeline.postprocess import preset
from ocml.pipeline.result import NO_SPEECH_CHOICES

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / "docs" / "opencast").glob("*.xml"))
FACTS = json.loads((ROOT / "tests" / "data" / "opencast-operations.json").read_text())
OPS = FACTS["operations"]
BRANCHES = FACTS["branches"]
NS = "{http://workflow.opencastproject.org}"
VARIABLE = re.compile(r"\$\{([^}:]+)\}")
PLACEHOLDER = re.compile(r"#\{([^{}()]+)(?:\(([^{}()]+)\))?\}")


def operations(path: Path) -> list[tuple[ET.Element, dict[str, str]]]:
    """Each ``<operation>`` of a definition with its configuration as a dict."""
    root = ET.parse(path).getroot()
    return [
        (op, {c.get("key"): (c.text or "").strip() for c in op.iter(f"{NS}configuration")})
        for op in root.find(f"{NS}operations")
    ]


def defaults(path: Path) -> dict[str, str]:
    return {
        k: v for op, cfg in operations(path) if op.get("id") == "defaults" for k, v in cfg.items()
    }


def flavor_matches(pattern: str, flavor: str) -> bool:
    """Opencast's MediaPackageElementFlavor.matches: '*' matches any type or subtype."""
    return all(p in ("*", f) for p, f in zip(pattern.split("/"), flavor.split("/")))


def condition(expression: str | None, values: dict[str, bool]) -> bool:
    """An ``if`` of ``${var}``, AND, OR, NOT and parentheses; unset variables are false."""
    if expression is None:
        return True
    text = VARIABLE.sub(lambda m: str(values.get(m[1], False)), expression)
    tokens = re.findall(r"\(|\)|\w+", text)
    assert set(tokens) <= {"(", ")", "True", "False", "AND", "OR", "NOT"}, expression
    python = " ".join({"AND": "and", "OR": "or", "NOT": "not"}.get(t, t) for t in tokens)
    return bool(eval(python, {"__builtins__": {}}))  # noqa: S307 - only booleans and operators


def test_there_are_both_workflows():
    assert [p.name for p in WORKFLOWS] == ["ocml-cutmarks.xml", "ocml-smil.xml"]


def panel_choices(root: ET.Element, panel: str) -> dict[str, tuple[str, str, bool]]:
    """The choices a configuration panel offers: {name: (type, label, checked by default)}."""
    text = root.findtext(f"{NS}{panel}")
    if panel == "configuration_panel_json":
        return {
            field["name"]: (field["type"], field["label"], field["value"])
            for fieldset in json.loads(text)
            for field in fieldset["fieldset"]
        }
    html = ET.fromstring(text.strip())
    labels = {label.get("for"): label.text.strip() for label in html.iter("label")}
    return {
        field.get("name"): (
            field.get("type"),
            labels[field.get("id")],
            field.get("checked") is not None,
        )
        for field in html.iter("input")
        if "configField" in field.get("class", "").split()
    }


def test_every_branch_checked_is_named_in_the_docs():
    text = (ROOT / "docs" / "opencast.md").read_text()
    assert set(BRANCHES) >= {"r/13.x", "r/14.x", "r/15.x", "r/16.x"}
    for branch, facts in BRANCHES.items():
        assert facts["commit"][:8] in text, branch
        for path in WORKFLOWS:
            assert branch.removeprefix("r/") in path.read_text() or branch == "develop"
    assert BRANCHES["develop"]["version"] in text
    for path in WORKFLOWS:
        assert BRANCHES["develop"]["commit"][:8] in path.read_text()


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_a_whole_definition_of_known_elements(path: Path):
    root = ET.parse(path).getroot()
    known = set().union(*(facts["definition_elements"] for facts in BRANCHES.values()))
    assert root.tag == f"{NS}definition"
    assert {child.tag.removeprefix(NS) for child in root} <= known
    assert root.findtext(f"{NS}id") == path.stem
    assert root.findtext(f"{NS}title").strip()


@pytest.mark.parametrize("branch", BRANCHES)
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_each_branch_shows_the_same_choices_with_the_workflow_defaults(path: Path, branch: str):
    """The panel a branch's admin UI shows is one its parser reads, and every panel offers the
    same choices, each unchecked unless its ``defaults`` value is true."""
    facts = BRANCHES[branch]
    root = ET.parse(path).getroot()
    shown = facts["admin_ui_panel"]
    assert shown in facts["definition_elements"]
    choices = panel_choices(root, shown)
    assert "straightToPublishing" in choices
    assert choices == panel_choices(root, "configuration_panel_json")
    assert choices == panel_choices(root, "configuration_panel")
    given = defaults(path)
    for name, (kind, label, checked) in choices.items():
        assert kind == "checkbox" and label.strip()
        assert given[name] == str(checked).lower(), name


@pytest.mark.parametrize("branch", BRANCHES)
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_operation_id_and_key_exists_in_opencast(path: Path, branch: str):
    keys = BRANCHES[branch]["operation_keys"]
    shipped = set(FACTS["shipped_workflows"])
    for op, cfg in operations(path):
        name = op.get("id")
        assert name in keys, f"{path.name}: operation {name!r} is not in {branch}'s list"
        assert set(op.attrib) <= set(FACTS["operation_attributes"]), (name, op.attrib)
        if keys[name] != "any":
            unknown = set(cfg) - set(keys[name])
            assert not unknown, (
                f"{path.name}: {name} has no configuration key(s) {unknown} in {branch}"
            )
        if name == "include":
            assert cfg["workflow-id"] in shipped
        assert op.get("exception-handler-workflow", "partial-error") in shipped


def test_the_docs_say_what_each_branch_does_with_a_recording_without_speech():
    """One row per branch in docs/opencast.md, naming the editor's skip-if-not-trimmed default
    there (the definitions cannot set it: the editor operation is in partial-publish) and, for
    each route, that nothing is encoded (no smil/cutting, so that operation skips)."""
    assert not [
        op for path in WORKFLOWS for op, _ in operations(path) if op.get("id") == "editor"
    ], "a definition with its own editor operation must set skip-if-not-trimmed where it exists"
    assert "skip-if-not-trimmed" not in FACTS["facts"]["partial_publish_editor_keys"]
    rows = {
        line.split("|")[1].strip(): line
        for line in (ROOT / "docs" / "opencast.md").read_text().splitlines()
        if line.startswith("| r/") or line.startswith("| develop")
    }
    for branch, facts in BRANCHES.items():
        default = str(facts["editor_skip_if_not_trimmed_default"]).lower()
        assert f"`skip-if-not-trimmed` {default}" in rows[branch], branch
        *_, cutmarks, smil = rows[branch].strip().strip("|").split("|")
        assert "nothing encoded" in cutmarks and "nothing encoded" in smil, branch


KIND = {"cutmarks": "Attachment", "smil": "Catalog"}
"""The element type ``execute-once`` must expect for a copied result file of each format."""


def ocml_arguments(cfg: dict[str, str], variables: dict[str, str], settings: Path) -> list[str]:
    """An ``execute-once``'s ocml command line as the Execute Service runs it: ``${...}`` from
    ``variables``, ``#{...}`` as workspace paths, our settings file for the shipped one."""
    assert Path(cfg["exec"]).name == "ocml"
    params = cfg["params"]
    used = set(VARIABLE.findall(params))
    assert used <= set(variables), f"{used - set(variables)} are set by no earlier operation"
    placeholders = PLACEHOLDER.findall(params)
    assert {name for name, _ in placeholders} <= set(OPS["execute-once"]["placeholders"])
    text = VARIABLE.sub(lambda m: variables[m[1]], params)
    text = PLACEHOLDER.sub(
        lambda m: (
            {"id": "mp-1", "out": "/srv/oc/ws/out", "org_id": "org"}.get(m[1])
            or f"/srv/oc/ws/{m[2].replace('/', '-')}.mp4"
        ),
        text,
    )
    return shlex.split(text.replace("/etc/opencast-ml/settings.yaml", str(settings)))


def sets_properties(cfg: dict[str, str]) -> bool:
    return cfg.get("set-workflow-properties") == "true"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_each_ocml_command_line_is_one_ocml_accepts(path: Path, tmp_path: Path):
    """Every run is ``ocml submit --wait`` on one track whose output file is the result
    (attached, as its format's element type) or its outcome as workflow properties, or
    ``ocml status`` copying the one result file of the job such a submit named."""
    settings = tmp_path / "settings.yaml"
    settings.write_text("{}\n")
    variables = defaults(path)
    job_formats: set[str] = set()
    runs = [cfg for op, cfg in operations(path) if op.get("id") == "execute-once"]
    assert runs
    for cfg in runs:
        command, *args = ocml_arguments(cfg, variables, settings)
        assert cfg["output-filename"]
        if command == "status":
            given = status.make_context("status", args).params
            assert given["output_file"] == "/srv/oc/ws/out"
            assert given["job_ids"] == ("job-1",) and not sets_properties(cfg)
            assert {cfg["expected-type"]} == {KIND[f] for f in job_formats}
            continue
        assert command == "submit"
        given = submit.make_context("submit", args).params
        assert given["wait_"] and len(given["files"]) == 1
        preset(given["preset"])
        assert given["no_speech"] in NO_SPEECH_CHOICES
        if sets_properties(cfg):
            assert given["properties_file"] == "/srv/oc/ws/out" and not given["output_file"]
            assert cfg["expected-type"] and "target-flavor" not in cfg
            variables.update(zip(OUTCOME_PROPERTIES, ("job-1", "true")))
            job_formats.update(given["formats"])
            assert len(job_formats) == 1
            continue
        assert given["output_file"] == "/srv/oc/ws/out" and not given["properties_file"]
        assert len(given["formats"]) == 1
        assert cfg["expected-type"] == KIND[given["formats"][0]]


def test_the_smil_route_attaches_a_cutting_smil_only_where_there_is_speech():
    """Followed through ocml-smil.xml with the properties ``submit --properties`` sets: one
    ``smil/cutting`` when the detection found speech, none without speech (partial-publish's
    editor then skips on every branch) and none when the event had one already."""
    facts = FACTS["facts"]
    assert set(facts["workflow_properties"]["substituted_in"]) >= {"if", "configuration"}
    assert facts["workflow_properties"]["unset_in_if"] is False
    assert "skips" in facts["editor_without_smil"]
    ops = operations(ROOT / "docs" / "opencast" / "ocml-smil.xml")
    for speech, existing in itertools.product([True, False], repeat=2):
        values = {"presenter_source_exists": True, "smil_cutting_exists": existing}
        attached = []
        for op, cfg in ops:
            if op.get("id") != "execute-once" or not condition(op.get("if"), values):
                continue
            if sets_properties(cfg):
                assert "--properties #{out}" in cfg["params"]
                values["ocml_speech_found"] = speech
            else:
                attached.append(cfg["target-flavor"])
        assert attached == (["smil/cutting"] if speech and not existing else []), values


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_a_missing_track_flavor_skips_instead_of_failing(path: Path):
    """#{flavor(F)} throws when no element has F: every run is guarded by F's _exists
    variable from an earlier analyze-mediapackage, and exactly one detection runs per event."""
    seen: list[str] = []
    runs = []
    for op, cfg in operations(path):
        if op.get("id") == "analyze-mediapackage":
            seen += [f.strip() for f in cfg["source-flavors"].split(",")]
        flavors = [f for _, f in PLACEHOLDER.findall(cfg.get("params", "")) if f]
        if op.get("id") == "execute-once" and flavors:
            for flavor in flavors:
                assert any(flavor_matches(p, flavor) for p in seen), flavor
                variable = flavor.replace("/", "_") + "_exists"
                assert condition(op.get("if"), {variable: True, "smil_cutting_exists": False})
                others = {"presenter_source_exists", "presentation_source_exists"} - {variable}
                assert not condition(op.get("if"), dict.fromkeys(others, True))
            runs.append(op.get("if"))
    for presenter, presentation in itertools.product([True, False], repeat=2):
        values = {"presenter_source_exists": presenter, "presentation_source_exists": presentation}
        assert sum(condition(c, values) for c in runs) == int(presenter or presentation)
        assert not any(condition(c, {**values, "smil_cutting_exists": True}) for c in runs)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_the_cuts_reach_the_editor_and_the_non_interactive_cut(path: Path):
    facts = FACTS["facts"]
    assert facts["partial_publish_cuts_on"] == facts["editor_ui_reads"][0] == "smil/cutting"
    ops = operations(path)
    made = [
        n
        for n, (op, cfg) in enumerate(ops)
        if (op.get("id") == "cut-marks-to-smil" and cfg["target-smil-flavor"] == "smil/cutting")
        or (op.get("id") == "execute-once" and cfg.get("target-flavor") == "smil/cutting")
    ]
    assert made
    for n in made:
        op, cfg = ops[n]
        assert OPS[op.get("id")]["target_tags"] == "literal"
        assert "archive" in [t.strip() for t in cfg["target-tags"].split(",")]
        archived = [
            m
            for m, (later, lcfg) in enumerate(ops)
            if m > n and later.get("id") == "snapshot" and "archive" in lcfg.get("source-tags", "")
        ]
        assert archived, "the editor reads the archived event: the SMIL must be archived"
    publish = [n for n, (op, cfg) in enumerate(ops) if cfg.get("workflow-id") == "partial-publish"]
    assert publish and min(publish) > max(made)


def test_the_cut_marks_attachment_is_read_once_and_never_archived():
    ops = operations(ROOT / "docs" / "opencast" / "ocml-cutmarks.xml")
    attachments = {
        cfg["target-flavor"]
        for op, cfg in ops
        if op.get("id") == "execute-once" and cfg["expected-type"] == "Attachment"
    }
    assert len(attachments) == 1
    for op, cfg in ops:
        if op.get("id") == "execute-once":
            assert "archive" not in cfg.get("target-tags", "")
        if op.get("id") == "cut-marks-to-smil":
            assert {cfg["source-json-flavor"]} == attachments
