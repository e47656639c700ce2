"""Training recipes: typed, validated hyper-parameters, read from ``models/recipes/*.yaml``.

A recipe file overrides the defaults declared here, section by section, and the command line
(``--arch``, ``--epochs`` ...) overrides the file. Every value is checked as it is read: an unknown
key or a bad value is a ``RecipeError`` that names the file (or ``overrides``) and the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ocml.pipeline.checks import check_int, check_number, check_text
from ocml.pipeline.errors import OcmlError, ParamsError
from ocml.pipeline.model_metadata import inference_hint_problem
from ocml.pipeline.postprocess import SegmentParams

ARCHITECTURES = ("vanilla_conv", "autoencoder", "rnn", "crnn", "tcn")
RECIPES = Path(__file__).parent / "recipes"


class RecipeError(OcmlError, ValueError):
    """A recipe key is unknown or its value unusable; the message names the file and the key."""

    code = "bad_recipe"
    usage = True


Check = Callable[[Any, str], Any]
"""``check(value, name)``: the value to store, or a ``RecipeError`` naming ``name``."""


def _positive_int(value: Any, name: str) -> int:
    return check_int(value, name=name, error=RecipeError)


def _count(value: Any, name: str) -> int:
    return check_int(value, name=name, minimum=0, error=RecipeError)


def _optional_positive_int(value: Any, name: str) -> int | None:
    return None if value is None else _positive_int(value, name)


def _positive(value: Any, name: str) -> float:
    number = check_number(value, name=name, error=RecipeError)
    if number <= 0:
        raise RecipeError(f"{name} must be > 0, got {value!r}")
    return number


def _non_negative(value: Any, name: str) -> float:
    return check_number(value, name=name, minimum=0.0, error=RecipeError)


def _weight(value: Any, name: str) -> float:
    return check_number(value, name=name, minimum=0.0, maximum=1.0, error=RecipeError)


def _fraction(value: Any, name: str) -> float:
    number = _weight(value, name)
    if number == 0:
        raise RecipeError(f"{name} must lie in (0, 1], got {value!r}")
    return number


def _text(value: Any, name: str) -> str:
    return check_text(value, name=name, error=RecipeError)


def _optional_text(value: Any, name: str) -> str | None:
    return None if value is None else _text(value, name)


def _architecture(value: Any, name: str) -> str:
    if value not in ARCHITECTURES:
        raise RecipeError(f"{name} {value!r} is unknown; choose one of {', '.join(ARCHITECTURES)}")
    return value


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise RecipeError(f"{name} must be a mapping, got {value!r}")
    return dict(value)


def _postprocess(value: Any, name: str) -> dict[str, Any]:
    params = _mapping(value, name)
    try:
        SegmentParams.from_mapping(params)
    except ParamsError as exc:
        raise RecipeError(f"{name}: {exc}") from None
    return params


def _inference(value: Any, name: str) -> dict[str, int]:
    hint = _mapping(value, name)
    problem = inference_hint_problem(hint)
    if problem:
        raise RecipeError(problem.replace("inference", name, 1))
    return hint


def _field(default: Any, check: Check) -> Any:
    """A recipe field whose values pass ``check``; mutable defaults are copied per recipe."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"check": check})
    return field(default=default, metadata={"check": check})


class _Checked:
    """Runs each field's check on construction, storing what it returns (e.g. 1 → 1.0)."""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if "check" in f.metadata:
                object.__setattr__(self, f.name, f.metadata["check"](value, f.name))


@dataclass(frozen=True, kw_only=True)
class DataRecipe(_Checked):
    """How training examples are cut from the spectrogram shards."""

    crop: int = _field(800, _positive_int)
    batch_size: int = _field(16, _positive_int)
    validation_every: int = _field(8, _positive_int)
    gain_jitter_db: float = _field(6.0, _non_negative)
    eq_jitter_db: float = _field(0.0, _non_negative)
    windows_per_example: int = _field(32, _positive_int)
    # Non-speech up to tail_seconds after speech ends (a room still ringing) weighs tail_weight in
    # the training loss; 1 weighs it like any other frame.
    tail_seconds: float = _field(0.0, _non_negative)
    tail_weight: float = _field(1.0, _positive)


@dataclass(frozen=True, kw_only=True)
class TrainRecipe(_Checked):
    """The optimiser, early stopping, label fraction and distillation."""

    epochs: int = _field(30, _positive_int)
    learning_rate: float = _field(0.002, _positive)
    patience: int = _field(5, _count)
    seed: int = _field(0, _count)
    steps_per_epoch: int | None = _field(None, _optional_positive_int)
    label_fraction: float = _field(1.0, _fraction)
    teacher: str | None = _field(None, _optional_text)
    distill_weight: float = _field(0.5, _weight)


@dataclass(frozen=True, kw_only=True)
class PretrainRecipe(_Checked):
    """The autoencoder's pre-training without labels."""

    epochs: int = _field(10, _positive_int)
    learning_rate: float = _field(0.002, _positive)


def _speech_sources(value: Any, name: str) -> list[str]:
    """Names of recorded-speech sources (``models.sources.RECORDED_SOURCES``)."""
    from ocml.models.sources import RECORDED_SOURCES

    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise RecipeError(f"{name} must be a list of source names, got {value!r}")
    unknown = [item for item in value if item not in RECORDED_SOURCES]
    if unknown:
        raise RecipeError(
            f"{name}: unknown source(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(RECORDED_SOURCES)}"
        )
    return list(value)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise RecipeError(f"{name} must be true or false, got {value!r}")
    return value


def _catalogue_sources(value: Any, name: str) -> list[str]:
    """Names of sources in the catalogue of pinned real audio (``models/catalogue.yaml``)."""
    from ocml.models.catalogue import load_catalogue

    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise RecipeError(f"{name} must be a list of catalogue source names, got {value!r}")
    known = load_catalogue()
    if unknown := [item for item in value if item not in known]:
        raise RecipeError(
            f"{name}: unknown source(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
        )
    return list(value)


def _source_weights(value: Any, name: str) -> dict[str, float]:
    """Speaker source → relative weight >= 0 (``models.pools.SPEECH_GROUPS`` or a catalogue
    source)."""
    from ocml.models.catalogue import load_catalogue
    from ocml.models.pools import SPEECH_GROUPS

    weights = _mapping(value, name)
    known = (*SPEECH_GROUPS, *load_catalogue())
    for source, given in weights.items():
        if source not in known:
            raise RecipeError(f"{name}: unknown source {source!r}; known: {', '.join(known)}")
        weights[source] = _non_negative(given, f"{name}.{source}")
    return weights


@dataclass(frozen=True, kw_only=True)
class SynthRecipe(_Checked):
    """The training data ``ocml-train synth`` mixes (``models.pools.SynthConfig``)."""

    seed: int = _field(2, _count)
    recordings: int = _field(100, _positive_int)
    min_seconds: float = _field(60.0, _positive)
    max_seconds: float = _field(240.0, _positive)
    tts_utterances: int = _field(3000, _count)
    midi_pieces: int = _field(60, _count)
    recorded_speech: list[str] = _field(
        ["system", "tuxpaint", "ktuberling", "hedgewars"], _speech_sources
    )
    source_weights: dict[str, float] = _field({}, _source_weights)
    catalogue: list[str] = _field([], _catalogue_sources)
    channels: float = _field(0.0, _weight)  # share of recordings sent through a channel
    floor_margin_db: float = _field(0.0, _non_negative)  # speech above a clip's noise floor
    rt60_max: float = _field(0.9, _positive)  # the longest room reverberation mixed in, seconds
    second_speaker_db: float = _field(0.0, _non_negative)  # dB quieter a second speaker may be
    heldout: bool = _field(False, _flag)  # the real-recordings yardstick, never training data

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 5.0 <= self.min_seconds <= self.max_seconds:
            raise RecipeError(
                f"min_seconds and max_seconds must satisfy 5 <= min_seconds <= max_seconds, "
                f"got {self.min_seconds!r} and {self.max_seconds!r}"
            )


@dataclass(frozen=True, kw_only=True)
class Recipe(_Checked):
    """Every hyper-parameter of one model; ``model`` goes to the architecture's builder as is."""

    name: str = _field("custom", _text)
    version: str = _field("0.1.0", _text)
    arch: str = _field("tcn", _architecture)
    model: dict[str, Any] = _field({}, _mapping)
    data: DataRecipe = field(default_factory=DataRecipe)
    train: TrainRecipe = field(default_factory=TrainRecipe)
    pretrain: PretrainRecipe = field(default_factory=PretrainRecipe)
    postprocess: dict[str, Any] = _field({}, _postprocess)
    inference: dict[str, int] = _field({}, _inference)
    synth: SynthRecipe = field(default_factory=SynthRecipe)

    def to_dict(self) -> dict[str, Any]:
        """The plain form, as ``recipe.yaml`` and the model's metadata store it."""
        return dataclasses.asdict(self)


def load_recipe(
    path: Path | str | None = None, *, overrides: Mapping[str, Any] | None = None
) -> Recipe:
    """The defaults, updated by the YAML file at ``path`` (or the name of one in
    ``models/recipes``), then by ``overrides``."""
    recipe = Recipe()
    if path is not None:
        file = Path(path)
        if not file.is_file() and (RECIPES / f"{path}.yaml").is_file():
            file = RECIPES / f"{path}.yaml"
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise RecipeError(f"{file}: cannot read recipe: {err}") from err
        recipe = _updated(recipe, data, where=str(file))
    return _updated(recipe, overrides or {}, where="overrides")


def _updated(section: Any, changes: Any, *, where: str, prefix: str = "") -> Any:
    """``section`` with ``changes`` laid over it, checked; errors name ``where`` and the key."""
    if not isinstance(changes, Mapping):
        raise RecipeError(
            f"{where}: {prefix.rstrip('.') or 'a recipe'} must be a mapping, got {changes!r}"
        )
    known = [f.name for f in fields(section)]
    new = {}
    for key, value in changes.items():
        if key not in known:
            raise RecipeError(
                f"{where}: unknown recipe key {prefix + str(key)!r}; known: {', '.join(known)}"
            )
        current = getattr(section, key)
        new[key] = (
            _updated(current, value, where=where, prefix=f"{prefix}{key}.")
            if is_dataclass(current)
            else value
        )
    try:
        return replace(section, **new)
    except RecipeError as exc:
        raise RecipeError(f"{where}: {prefix}{exc}") from None
