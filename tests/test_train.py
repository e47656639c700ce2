"""`ocml-train` end to end on a tiny synthetic set: spectrograms → train → resume → evaluate → export."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from click.testing import CliRunner, Result

from ocml.cli.train import main
from ocml.models.recipe import load_recipe
from ocml.models.spectrograms import UNLABELLED, load_shard
from ocml.models.train import clock, epoch_timing
from ocml.pipeline.model import load_model
from tests.media import speechlike

pytestmark = pytest.mark.train

SR = 16000
OCML = str(Path(sys.executable).with_name("ocml"))
TINY_TCN = {
    "name": "tiny",
    "version": "0.0.1",
    "arch": "tcn",
    "model": {"front_filters": [], "front_pools": [], "channels": 8, "dilations": [1, 2]},
    "data": {"crop": 150, "batch_size": 4, "validation_every": 2},
    "train": {"epochs": 2, "steps_per_epoch": 2, "patience": 2},
    "postprocess": {"min_silence": 0.3, "pad": 0.05},
}


def _recording(folder: Path, name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    speech, t = [], 0.5
    while t < 5.0:
        end = t + float(rng.uniform(0.5, 1.2))
        speech.append([round(t, 3), round(end, 3)])
        t = end + float(rng.uniform(0.4, 1.0))
    sf.write(
        folder / f"{name}.flac", speechlike(SR, 7.0, [tuple(s) for s in speech], seed=seed), SR
    )
    (folder / f"{name}.json").write_text(json.dumps({"duration": 7.0, "speech": speech}))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train")
    data = root / "data"
    data.mkdir()
    for i in range(4):
        _recording(data, f"rec{i}", i)
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_TCN))
    spec = root / "spec"
    result = CliRunner().invoke(
        main,
        [
            "spectrograms",
            str(data),
            str(spec),
            "--window",
            "200",
            "--hop",
            "100",
            "--per-shard",
            "4",
            "--png",
        ],
    )
    assert result.exit_code == 0, result.output
    return {"root": root, "data": data, "spec": spec, "recipe": recipe}


def test_spectrogram_shards_hold_windows_and_frame_labels(workspace: dict[str, Path]) -> None:
    index = json.loads((workspace["spec"] / "index.json").read_text())
    assert index["recordings"] == 4 and index["window"] == 200
    x, y = load_shard(workspace["spec"] / index["shards"][0])
    assert x.shape[1:] == (200, 64) and y.shape[1:] == (200,)
    assert set(np.unique(y)) <= {0, 1} and 0 < y.mean() < 1
    assert list((workspace["spec"] / "png").glob("*.png"))


def test_train_resume_evaluate_export(workspace: dict[str, Path]) -> None:
    runner = CliRunner()
    run = workspace["root"] / "run"
    args = [
        "train",
        "--recipe",
        str(workspace["recipe"]),
        "--data",
        str(workspace["spec"]),
        "--out",
        str(run),
        "--threads",
        "1",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "epoch 2/2" in result.output
    assert (run / "checkpoints" / "last.weights.h5").is_file()
    model = load_model(run / "savedmodel")
    assert (model.architecture, model.context_frames) == ("tcn", 3)
    assert model.predict(np.zeros((2, 30, 64), np.float32)).shape == (2, 30)
    assert model.postprocess == {"min_silence": 0.3, "pad": 0.05}

    result = runner.invoke(main, [*args, "--resume", "--epochs", "3"])
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 2" in result.output and "epoch 3/3" in result.output
    kept = sorted(p.name for p in (run / "checkpoints").glob("epoch-*.weights.h5"))
    assert kept == [f"epoch-0{n}.weights.h5" for n in (1, 2, 3)]

    report = workspace["root"] / "report.json"
    plots = workspace["root"] / "plots"
    result = runner.invoke(
        main,
        [
            "evaluate",
            str(run),
            str(workspace["data"]),
            "--json",
            str(report),
            "--plots",
            str(plots),
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert set(data["sets"]["data"]["files"]) == {f"rec{i}.flac" for i in range(4)}
    assert 0 <= data["overall"]["f1"] <= 1 and data["overall"]["hours"] > 0
    assert (plots / "precision_recall.png").is_file() and (plots / "data" / "rec0.png").is_file()
    assert data["worst_file"].startswith("data/rec")

    out = workspace["root"] / "exported"
    result = runner.invoke(
        main,
        [
            "export",
            str(run),
            str(out),
            "--data",
            str(workspace["spec"]),
            "--metrics",
            str(report),
            "--name",
            "renamed",
            "--version",
            "2.0.0",
            "--tflite",
        ],
    )
    assert result.exit_code == 0, result.output
    exported = load_model(out)
    assert (exported.name, exported.version) == ("renamed", "2.0.0")

    def export_epoch(to: Path, checkpoint: str) -> Result:
        args = ["--data", str(workspace["spec"]), "--no-onnx", "--checkpoint", checkpoint]
        return runner.invoke(main, ["export", str(run), str(to), *args])

    first = workspace["root"] / "epoch1"
    result = export_epoch(first, "1")
    assert result.exit_code == 0, result.output
    probe = np.random.default_rng(1).normal(-5, 3, (1, 200, 64)).astype(np.float32)
    assert not np.allclose(load_model(first).predict(probe), exported.predict(probe))
    for bad in ("0", "first"):
        result = export_epoch(first, bad)
        assert result.exit_code == 2
        assert f"must be 'best', 'last' or an epoch number >= 1, got {bad!r}" in result.output
    result = export_epoch(workspace["root"] / "e9", "9")
    assert result.exit_code == 1 and "epoch-09.weights.h5: no such checkpoint" in result.output
    assert exported.metadata["metrics"]["f1"] == data["overall"]["f1"]
    assert exported.metadata["onnx"] == {"file": "model.onnx"}  # written unless --no-onnx
    probe = np.random.default_rng(0).normal(-5, 3, (2, 321, 64)).astype(np.float32)
    for runtime in ("litert", "onnx"):
        other = load_model(out, runtime=runtime)
        np.testing.assert_allclose(other.predict(probe), exported.predict(probe), atol=1e-4)


def test_a_first_small_run_without_validation_finishes_and_segments(tmp_path: Path) -> None:
    """A new trainer's first run: 3 short recordings in one shard (no validation), 2 epochs.

    It must finish and export, show each epoch's time and what is left, and the run's folder
    must be a model `ocml segment --model` takes, as `evaluate` and `calibrate` do.
    """
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        _recording(data, f"rec{i}", i)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_TCN))
    spec, run = tmp_path / "spec", tmp_path / "runs" / "mine"
    runner = CliRunner()
    result = runner.invoke(main, ["spectrograms", str(data), str(spec), "--window", "200"])
    assert result.exit_code == 0, result.output
    assert "1 shards" in result.output
    args = ["--recipe", str(recipe), "--data", str(spec), "--out", str(run), "--threads", "1"]
    result = runner.invoke(main, ["train", *args])
    assert result.exit_code == 0, result.output
    assert "1 training / 0 validation shards" in result.output
    assert re.search(
        r"^epoch 1/2  .*loss \d\.\d{4}  \(took [\d.]+ s, ~[\d.]+ s left\)$", result.output, re.M
    ), result.output
    assert re.search(r"^epoch 2/2  .*\(took [\d.]+ s\)$", result.output, re.M), result.output
    history = load_model(run).metadata["training"]["history"]
    assert history["epochs"] == 2 and "val_loss" not in history and history["loss"] > 0

    media = data / "rec0.flac"
    segmented = subprocess.run(
        [OCML, "segment", str(media), "--model", str(run), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert segmented.returncode == 0, segmented.stderr
    document = json.loads((tmp_path / "out" / "rec0.json").read_text())
    assert document["model"]["name"] == "tiny"

    (run / "savedmodel" / "saved_model.pb").unlink()
    unfinished = subprocess.run(
        [OCML, "segment", str(media), "--model", str(run / "savedmodel")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert unfinished.returncode != 0 and "saved_model.pb is missing" in unfinished.stderr
    (run / "savedmodel").rename(run / "exported-elsewhere")
    unfinished = subprocess.run(
        [OCML, "segment", str(media), "--model", str(run)], capture_output=True, text=True
    )
    assert "a training run without an exported model" in unfinished.stderr


def test_epoch_lines_estimate_what_is_left_from_the_epochs_after_the_first() -> None:
    assert epoch_timing([8.0], 1, 10) == "took 8.0 s, ~1 min 12 s left"
    assert epoch_timing([8.0, 1.0, 3.0], 3, 10) == "took 3.0 s, ~14 s left"
    assert epoch_timing([8.0, 1.0], 2, 2) == "took 1.0 s"
    assert clock(7384) == "2 h 03 min"


def _fit_toy(out: Path, *, epochs: int, resume: bool = False) -> tuple[list[np.ndarray], str]:
    """A toy regression through `fit`, with validation targets it cannot meet, so the validation
    loss rises: the learning rate is halved on the plateau and early stopping counts."""
    import keras
    import tensorflow as tf

    from ocml.models.train import fit

    keras.utils.set_random_seed(7)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    train_ds = tf.data.Dataset.from_tensor_slices((x, x @ np.ones((4, 1), np.float32))).batch(8)
    val_ds = tf.data.Dataset.from_tensor_slices((x, -(x @ np.ones((4, 1), np.float32)))).batch(8)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    lines: list[str] = []
    fit(
        model,
        train_ds,
        val_ds,
        out=out,
        epochs=epochs,
        patience=6,
        resume=resume,
        echo=lines.append,
        steps=None,
    )
    model.load_weights(out / "checkpoints" / "last.weights.h5")
    return model.get_weights(), "\n".join(lines)


def test_a_resumed_run_goes_on_exactly_as_one_that_never_stopped(tmp_path: Path) -> None:
    whole, _ = _fit_toy(tmp_path / "whole", epochs=4)
    _fit_toy(tmp_path / "split", epochs=2)
    resumed, shown = _fit_toy(tmp_path / "split", epochs=4, resume=True)
    assert "resuming after epoch 2" in shown
    for a, b in zip(whole, resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    state = [
        json.loads((tmp_path / r / "checkpoints" / "state.json").read_text())
        for r in ("whole", "split")
    ]
    assert state[0] == state[1]
    assert state[0]["epoch"] == 4 and state[0]["callbacks"]["early_stopping"]["wait"] == 3
    history = (tmp_path / "split" / "history.csv").read_text().splitlines()
    assert (
        len(history) == 5
        and history[1:] == (tmp_path / "whole" / "history.csv").read_text().splitlines()[1:]
    )


def test_autoencoder_pretrain_then_few_label_readout(workspace: dict[str, Path]) -> None:
    recipe = workspace["root"] / "ae.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "arch": "autoencoder",
                "model": {"window": 8, "filters": [4, 4], "bottleneck": 8, "readout": 4},
                "data": {"batch_size": 16, "validation_every": 2, "windows_per_example": 4},
                "train": {"epochs": 1, "steps_per_epoch": 2},
                "pretrain": {"epochs": 1},
            }
        )
    )
    runner = CliRunner()
    pre = workspace["root"] / "ae-pre"
    result = runner.invoke(
        main,
        [
            "pretrain",
            "--recipe",
            str(recipe),
            "--data",
            str(workspace["spec"]),
            "--out",
            str(pre),
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (pre / "encoder.weights.h5").is_file()
    run = workspace["root"] / "ae-20"
    result = runner.invoke(
        main,
        [
            "train",
            "--recipe",
            str(recipe),
            "--arch",
            "autoencoder",
            "--encoder",
            str(pre),
            "--label-fraction",
            "0.2",
            "--data",
            str(workspace["spec"]),
            "--out",
            str(run),
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    model = load_model(run / "savedmodel")
    assert model.architecture == "autoencoder" and model.context_frames == 4
    assert model.predict(np.zeros((1, 25, 64), np.float32)).shape == (1, 25)
    assert model.metadata["training"]["recipe"]["train"]["label_fraction"] == 0.2


def test_autoencoder_readout_without_encoder_is_refused(workspace: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--arch",
            "autoencoder",
            "--data",
            str(workspace["spec"]),
            "--out",
            str(workspace["root"] / "x"),
            "--threads",
            "1",
        ],
    )
    assert result.exit_code != 0
    assert "pre-trained encoder" in result.output


def test_unlabelled_folder_gives_unlabelled_shards(tmp_path: Path) -> None:
    (tmp_path / "rec").mkdir()
    sf.write(tmp_path / "rec" / "bare.flac", speechlike(SR, 3.0, [(0.5, 2.0)], seed=1), SR)
    result = CliRunner().invoke(
        main,
        [
            "spectrograms",
            str(tmp_path / "rec"),
            str(tmp_path / "spec"),
            "--window",
            "100",
            "--unlabelled",
        ],
    )
    assert result.exit_code == 0, result.output
    _, y = load_shard(tmp_path / "spec" / "shard-00000.npz")
    assert (y == UNLABELLED).all()
    result = CliRunner().invoke(
        main, ["spectrograms", str(tmp_path / "rec"), str(tmp_path / "spec2")]
    )
    assert result.exit_code != 0 and "no label file" in result.output


def test_the_default_recipe_is_the_one_the_shipped_model_was_trained_with() -> None:
    from ocml.pipeline.model_metadata import default_model_path, read_metadata

    sections = ("name", "version", "arch", "model", "data", "train", "inference", "synth")
    recorded = read_metadata(default_model_path())["training"]["recipe"]
    shipped = load_recipe(overrides={k: recorded[k] for k in sections}).to_dict()
    committed = load_recipe("default").to_dict()
    for section in sections:
        assert committed[section] == shipped[section], section


def test_level_jitter_moves_bands_by_at_most_the_configured_decibels() -> None:
    from ocml.models.train import level_jitter

    x = np.full((50, 64), math.log(1.0 + 1e-6), np.float32)  # mel power 1: far above the floor
    rng = np.random.default_rng(0)
    plain = level_jitter(x, rng, gain_db=0.0, eq_db=0.0)
    np.testing.assert_allclose(plain, x, atol=1e-5)
    for _ in range(20):
        y = level_jitter(x, rng, gain_db=2.0, eq_db=6.0)
        db = 10 * (y - x) / math.log(10)
        assert np.abs(db).max() <= 2.0 + 6.0 + 1e-3
        assert np.ptp(db, axis=0).max() < 1e-3  # the same curve for every frame
    assert np.ptp(db[0]) > 0.1  # an equaliser, not only a gain


def test_tail_mask_marks_the_non_speech_right_after_each_utterance_in_its_own_row() -> None:
    from ocml.models.train import tail_mask

    y = np.array(
        [
            [0, 1, 1, 0, 0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, UNLABELLED, 1, UNLABELLED, 0, 0, 0],
        ],
        np.uint8,
    )
    expected = np.array(
        [
            [0, 0, 0, 1, 1, 0, 0, 0, 1, 1],  # row 0 starts with non-speech: no tail before speech
            [0, 0, 0, 0, 0, 0, 0, 1, 0, 0],  # unlabelled frames are never tails
        ],
        bool,
    )
    np.testing.assert_array_equal(tail_mask(y, 2), expected)
    assert not tail_mask(y, 0).any()


def test_training_examples_weigh_the_tail_after_speech_as_the_recipe_says(
    workspace: dict[str, Path],
) -> None:
    from ocml.models.train import Examples, tail_mask

    shards = sorted(workspace["spec"].glob("*.npz"))
    recipe = load_recipe(
        workspace["recipe"],
        overrides={"data": {"crop": 200, "tail_seconds": 0.1, "tail_weight": 3}},
    )
    built = type("Built", (), {"window": None})()

    def weights(training: bool) -> np.ndarray:
        examples = Examples(shards, recipe, built=built, training=training, frame_seconds=0.01)
        return np.stack([w for _, _, w in examples()])

    labels = np.concatenate([load_shard(p)[1] for p in shards])
    tails = tail_mask(labels, 10)
    assert tails.any()
    trained = weights(True)
    assert sorted(np.unique(trained)) == [1.0, 3.0]
    assert (trained == 3.0).sum() == tails.sum()  # every window, each once per epoch
    assert set(np.unique(weights(False))) == {1.0}  # validation loss stays the plain one


def test_window_examples_carry_the_tail_weight_of_their_centre_frame(
    workspace: dict[str, Path],
) -> None:
    from ocml.models.train import Examples

    shards = sorted(workspace["spec"].glob("*.npz"))
    recipe = load_recipe(
        workspace["recipe"],
        overrides={"data": {"windows_per_example": 200, "tail_seconds": 0.1, "tail_weight": 3}},
    )
    built = type("Built", (), {"window": 21})()
    examples = Examples(shards, recipe, built=built, training=True, frame_seconds=0.01)
    weights = sorted({float(w) for _, _, w in examples()})
    assert weights == [1.0, 3.0]
