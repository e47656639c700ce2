"""Training recipes: typed sections, every value checked, errors naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ocml.models.recipe import (
    ARCHITECTURES,
    RECIPES,
    DataRecipe,
    Recipe,
    RecipeError,
    SynthRecipe,
    TrainRecipe,
    load_recipe,
)


def test_every_shipped_recipe_loads_into_typed_sections() -> None:
    for file in sorted(RECIPES.glob("*.yaml")):
        recipe = load_recipe(file.stem)
        assert recipe.arch in ARCHITECTURES and isinstance(recipe.train, TrainRecipe), file
    stage1 = load_recipe("default-stage1")
    assert (stage1.arch, stage1.train.epochs, stage1.data.crop) == ("crnn", 20, 800)
    assert stage1.inference == {"chunk_frames": 2000, "batch_size": 12}
    assert load_recipe("tcn").arch == "tcn"
    stage2 = load_recipe("default-stage2")  # from stage 1's weights: the same network
    assert (stage2.arch, stage2.model, stage2.data, stage2.inference) == (
        stage1.arch,
        stage1.model,
        stage1.data,
        stage1.inference,
    )
    assert stage2.synth.catalogue and stage2.synth.channels > 0
    default = load_recipe("default")  # stage 3: stage 2's network, a per-frame head, its data
    assert default.model == {**stage2.model, "fine_head": True}
    assert (default.data, default.synth) == (stage2.data, stage2.synth)
    assert default.inference == {"chunk_frames": 2000, "batch_size": 8}
    assert not default.synth.heldout and load_recipe("realset").synth.heldout


def test_the_synth_section_is_typed_with_its_defaults() -> None:
    assert load_recipe().synth == SynthRecipe()
    assert (SynthRecipe().seed, SynthRecipe().recordings) == (2, 100)
    synth = load_recipe("default-stage1").synth
    assert (synth.seed, synth.recordings, synth.tts_utterances) == (20, 160, 3000)
    assert synth.recorded_speech == ["system", "tuxpaint", "ktuberling", "hedgewars"]
    assert synth.source_weights["tuxpaint"] == 0.28
    custom = load_recipe(
        overrides={"synth": {"source_weights": {"tuxpaint": 0, "dir": 2}, "recordings": 3}}
    ).synth
    assert custom.source_weights == {"tuxpaint": 0.0, "dir": 2.0} and custom.recordings == 3


def test_overrides_lay_over_the_file_and_keep_the_rest() -> None:
    recipe = load_recipe("default-stage1", overrides={"train": {"epochs": 3}, "arch": "tcn"})
    assert recipe.train == TrainRecipe(epochs=3, learning_rate=0.002, patience=4, seed=0)
    assert recipe.arch == "tcn" and recipe.data == load_recipe("default-stage1").data


def test_the_plain_form_round_trips_through_yaml(tmp_path: Path) -> None:
    recipe = load_recipe("default", overrides={"postprocess": {"min_silence": 0.3}})
    file = tmp_path / "run.yaml"
    file.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    assert load_recipe(file) == recipe
    assert list(recipe.to_dict()) == [
        "name", "version", "arch", "model", "data", "train", "pretrain", "postprocess",
        "inference", "synth",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train": {"epochs": 0}}, "train.epochs must be a positive integer, got 0"),
        ({"train": {"epochs": 2.5}}, "train.epochs must be a positive integer, got 2.5"),
        ({"train": {"learning_rate": 0}}, "train.learning_rate must be > 0, got 0"),
        ({"train": {"learning_rate": "fast"}}, "train.learning_rate must be a number, got 'fast'"),
        ({"train": {"patience": -1}}, "train.patience must be an integer >= 0, got -1"),
        ({"train": {"distill_weight": 1.5}}, "train.distill_weight must lie in [0, 1], got 1.5"),
        ({"train": {"label_fraction": 0}}, "train.label_fraction must lie in (0, 1], got 0"),
        ({"train": {"steps_per_epoch": 0}}, "train.steps_per_epoch must be a positive integer"),
        ({"train": {"teacher": ""}}, "train.teacher must be a non-empty string, got ''"),
        ({"train": {"epoch": 3}}, "unknown recipe key 'train.epoch'; known: epochs,"),
        ({"pretrain": {"epochs": True}}, "pretrain.epochs must be a positive integer, got True"),
        ({"data": {"crop": -5}}, "data.crop must be a positive integer, got -5"),
        ({"data": {"gain_jitter_db": -1}}, "data.gain_jitter_db must lie in [0, inf], got -1"),
        ({"data": {"tail_weight": 0}}, "data.tail_weight must be > 0, got 0"),
        ({"data": {"tail_seconds": -0.1}}, "data.tail_seconds must lie in [0, inf], got -0.1"),
        ({"data": 3}, "data must be a mapping, got 3"),
        ({"arch": "cnn"}, "arch 'cnn' is unknown; choose one of"),
        ({"version": 1.0}, "version must be a non-empty string, got 1.0"),
        ({"model": [1]}, "model must be a mapping, got [1]"),
        ({"inference": {"chunk": 2000}}, "inference.chunk is unknown"),
        ({"inference": {"batch_size": 1.5}}, "inference.batch_size must be a positive integer"),
        ({"postprocess": {"threshold": 2}}, "postprocess: threshold must lie in [0, 1], got 2"),
        ({"synth": {"recordings": 0}}, "synth.recordings must be a positive integer, got 0"),
        ({"synth": {"min_seconds": 300}}, "5 <= min_seconds <= max_seconds, got 300.0 and 240.0"),
        ({"synth": {"recorded_speech": ["radio"]}}, "synth.recorded_speech: unknown source(s)"),
        ({"synth": {"recorded_speech": "system"}}, "must be a list of source names, got 'system'"),
        ({"synth": {"source_weights": {"tv": 1}}}, "synth.source_weights: unknown source 'tv'"),
        ({"synth": {"source_weights": {"dir": -1}}}, "synth.source_weights.dir must lie in"),
    ],
)
def test_bad_values_name_the_file_and_the_key(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    file = tmp_path / "mine.yaml"
    file.write_text(yaml.safe_dump(changes))
    with pytest.raises(RecipeError) as from_file:
        load_recipe(file)
    assert str(from_file.value).startswith(f"{file}: ") and message in str(from_file.value)
    with pytest.raises(RecipeError) as from_overrides:
        load_recipe("default", overrides=changes)
    assert str(from_overrides.value).startswith("overrides: ")


def test_unreadable_recipes_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [1, 2\n")
    with pytest.raises(RecipeError, match=f"{bad}: cannot read recipe"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="a recipe must be a mapping, got"):
        load_recipe(overrides=["train"])  # type: ignore[arg-type]


def test_sections_check_their_values_when_built_directly() -> None:
    with pytest.raises(RecipeError, match="batch_size must be a positive integer, got 0"):
        DataRecipe(batch_size=0)
    with pytest.raises(RecipeError, match="arch 'cnn' is unknown"):
        Recipe(arch="cnn")
    assert TrainRecipe(learning_rate=1).learning_rate == 1.0
