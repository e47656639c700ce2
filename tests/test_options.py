"""One vocabulary: the post-processing and format options of ``ocml`` and ``ocml-train``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from ocml.cli.options import format_option, param_options
from ocml.cli.root import main as ocml
from ocml.cli.train import main as ocml_train
from ocml.pipeline.postprocess import SegmentParams, parameter_help

NAMED = {"--" + name.replace("_", "-"): text for name, text in parameter_help().items()}


def options_of(command: click.Command) -> dict[str, click.Option]:
    return {name: p for p in command.params if isinstance(p, click.Option) for name in p.opts}


@pytest.mark.parametrize(
    "command",
    [
        ocml.commands["segment"],
        ocml.commands["submit"],
        ocml.commands["watch"],
        ocml_train.commands["evaluate"],
    ],
    ids=lambda c: c.name,
)
def test_every_command_has_the_same_parameter_options(command: click.Command) -> None:
    options = options_of(command)
    assert {name: options[name].help for name in NAMED} == NAMED
    assert options["--param"] is options["-p"] and options["--param"].multiple


def test_parameter_options_are_made_from_segment_params() -> None:
    fields = set(SegmentParams.__dataclass_fields__)
    assert set(parameter_help()) == fields | {"pad"}
    assert SegmentParams.from_mapping({"pad": 0.3}) == SegmentParams(pad_before=0.3, pad_after=0.3)


@pytest.mark.parametrize(
    "command",
    [ocml.commands["segment"], ocml.commands["submit"], ocml.commands["watch"]],
    ids=lambda c: c.name,
)
def test_every_command_takes_formats_as_a_comma_list(command: click.Command) -> None:
    option = options_of(command)["--format"]
    assert option is options_of(command)["-f"] and option.metavar == "NAME[,NAME...]"


@click.command()
@format_option(("json", "smil", "rttm"), default_help="default: json")
@param_options
def probe(formats: tuple[str, ...], params: dict[str, float]) -> None:
    click.echo(repr((formats, params)))


def run(*args: str) -> Any:
    return CliRunner().invoke(probe, list(args))


def test_named_options_win_over_param_and_unset_ones_are_left_out() -> None:
    got = run("--min-silence", "2", "-p", "min_silence=1", "--param", "pad=0.3", "-f", "smil")
    assert got.exit_code == 0, got.output
    assert got.output.strip() == repr((("smil",), {"min_silence": 2.0, "pad": 0.3}))
    assert run().output.strip() == repr(((), {}))


def test_formats_split_on_commas_and_may_repeat() -> None:
    got = run("--format", "json, smil", "-f", "rttm,json")
    assert got.output.strip() == repr((("json", "smil", "rttm"), {}))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-p", "min_silence"), "expected KEY=VALUE, got 'min_silence'"),
        (("-p", "=2"), "expected KEY=VALUE, got '=2'"),
        (("-p", "min_silence=soon"), "min_silence: not a number: 'soon'"),
        (("--min-silence", "soon"), "'soon' is not a valid float"),
        (("-f", "json,pdf"), "'pdf': choose from json, smil, rttm"),
        (("-f", ","), "choose from json, smil, rttm"),
    ],
)
def test_bad_values_are_refused_quoting_them(args: tuple[str, ...], message: str) -> None:
    got = run(*args)
    assert got.exit_code == 2 and message in got.output, got.output


def test_evaluate_hands_the_options_to_the_evaluation(monkeypatch, tmp_path: Path) -> None:
    from ocml.models import evaluate

    seen: dict[str, Any] = {}
    monkeypatch.setattr(
        evaluate, "evaluate_dirs", lambda model, data, **kw: seen.update(kw, model=model) or {}
    )
    monkeypatch.setattr("ocml.cli.train._threads", lambda threads: None)
    got = CliRunner().invoke(
        ocml_train,
        ["evaluate", str(tmp_path), str(tmp_path), "--min-silence", "0.3", "-p", "pad=0"],
    )
    assert got.exit_code == 0, got.output
    assert seen["overrides"] == {"min_silence": 0.3, "pad": 0.0}


def test_watch_refuses_a_bad_parameter_before_watching(tmp_path: Path, monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("OCML_")]:
        monkeypatch.delenv(name)
    got = CliRunner().invoke(ocml, ["watch", str(tmp_path), "--min-silence", "-1", "--once"])
    assert got.exit_code == 2
    assert "min_silence must lie in [0, 3600] seconds, got -1.0" in got.output
