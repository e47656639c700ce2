"""Corrections made in the player are training data, end to end, the way a person makes them:
`ocml play` in a real X window (Xvfb), corrected with key presses (xdotool), saved with `s`;
then `ocml-train spectrograms` labels the recording with the corrections, and `train` runs on them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ocml.models.datasets import frame_labels
from ocml.models.spectrograms import ShardSpec, load_shard, recording_features, windows
from ocml.pipeline.features import FeatureConfig
from tests.media import speechlike, write_wav
from tests.results import write_result
from tests.test_train import TINY_TCN
from tests.xdisplay import press_keys, virtual_display

pytestmark = pytest.mark.train

SR = 16000
DURATION = 60.0
SPEECH = [(5.0, 20.0), (30.0, 45.0)]
MODEL_SAID = [(5.0, 24.0), (30.0, 45.0), (50.0, 52.0)]  # 4 s too long, and a false alarm
BIN = Path(sys.executable).parent
SPEC = ShardSpec(window=1000, hop=1000, per_shard=64)


def ocml(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 300):
    """Run an installed command (``ocml``, ``ocml-train``) as a user does."""
    return subprocess.run(
        [str(BIN / str(args[0])), *map(str, args[1:])],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )


def shard_labels(spec: Path, recording: Path) -> list[np.ndarray]:
    """The per-frame labels of ``recording``'s windows, in the order the shards hold them."""
    out = []
    for name in json.loads((spec / "index.json").read_text())["shards"]:
        with np.load(spec / name) as shard:
            out += [y for y, src in zip(shard["y"], shard["source"]) if src == recording.name]
    return out


def expected_labels(recording: Path, speech: list[tuple[float, float]]) -> list[np.ndarray]:
    """The windows' labels ``spectrograms`` must write for ``speech`` on ``recording``."""
    cfg = FeatureConfig()
    x = recording_features(recording, cfg)
    return [y for _, y in windows(x, frame_labels(speech, len(x), cfg), SPEC)]


@pytest.fixture
def lectures(tmp_path: Path) -> Path:
    """A folder with a lecture and the model's (wrong) result beside it, as `ocml segment` left it."""
    folder = tmp_path / "lectures"
    folder.mkdir()
    media = write_wav(folder / "lecture.wav", speechlike(SR, DURATION, SPEECH, seed=5), SR)
    write_result(folder / "lecture.json", MODEL_SAID, duration=DURATION, media=media)
    return folder


def test_player_corrections_become_the_training_labels(lectures: Path, tmp_path: Path) -> None:
    media = lectures / "lecture.wav"
    with virtual_display() as display:
        player = subprocess.Popen(
            [BIN / "ocml", "play", media, "--result", lectures / "lecture.json", "--at", "51"],
            env={
                **os.environ,
                "DISPLAY": display,
                "SDL_VIDEODRIVER": "x11",
                "SDL_AUDIODRIVER": "dummy",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            keys = ["f"]  # the false alarm at 50–52 s becomes non-speech
            keys += ["Home", "n", "n"]  # to the first segment's end, 24 s
            keys += ["shift+Left"] * 4 + ["x"]  # back to 20 s, split there
            keys += ["shift+Right", "f"]  # and 20–24 s becomes non-speech
            press_keys(display, "ocml", [*keys, "s", "q"])
            out, err = player.communicate(timeout=60)
        finally:
            player.kill()
    assert player.returncode == 0, err
    corrected = lectures / "lecture.labels.json"
    assert f"corrected labels: {corrected}" in out
    assert json.loads(corrected.read_text()) == {
        "duration": DURATION,
        "speech": list(map(list, SPEECH)),
    }
    assert (lectures / "lecture.labels.txt").is_file()

    spec = tmp_path / "spec"
    made = ocml("ocml-train", "spectrograms", lectures, spec, "--window", "1000", "--hop", "1000")
    assert made.returncode == 0, made.stderr
    assert "labels: 1 corrected in the player" in made.stdout
    got, want = shard_labels(spec, media), expected_labels(media, SPEECH)
    assert len(got) == len(want) == 6
    np.testing.assert_array_equal(np.stack(got), np.stack(want))
    assert not np.array_equal(np.stack(got), np.stack(expected_labels(media, MODEL_SAID)))

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY_TCN, "train": {"epochs": 1, "steps_per_epoch": 2}}))
    run = tmp_path / "run"
    trained = ocml("ocml-train", "train", "--recipe", recipe, "--data", spec, "--out", run)
    assert trained.returncode == 0, trained.stderr
    x, y = load_shard(spec / "shard-00000.npz")
    assert len(x) == 6 and np.array_equal(y, np.stack(want))
    summary = json.loads((run / "savedmodel" / "assets" / "ocml.json").read_text())
    assert summary["training"]["data"]["recordings"] == 1


def test_a_model_result_is_labels_only_when_asked(lectures: Path, tmp_path: Path) -> None:
    media = lectures / "lecture.wav"
    refused = ocml("ocml-train", "spectrograms", lectures, tmp_path / "spec")
    assert refused.returncode == 1
    assert "lecture.wav: its labels would be lecture.json, a result of the model tiny 1.0.0" in (
        refused.stderr
    )
    assert "--results-as-labels" in refused.stderr and not (tmp_path / "spec").exists()

    spec = tmp_path / "spec"
    args = ["--window", "1000", "--hop", "1000", "--results-as-labels"]
    made = ocml("ocml-train", "spectrograms", lectures, spec, *args)
    assert made.returncode == 0, made.stderr
    assert "labels: 1 from model results" in made.stdout
    got = shard_labels(spec, media)
    np.testing.assert_array_equal(np.stack(got), np.stack(expected_labels(media, MODEL_SAID)))
