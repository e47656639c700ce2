"""`ocml-train calibrate`: the logit transform, its fit, and the SavedModel that carries it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ocml.cli.train import main
from ocml.models.calibrate import Calibration, fit_calibration, logit, write_calibrated
from ocml.models.datasets import Item
from ocml.models.scoring import FileRun
from ocml.pipeline.errors import ModelError, OutputError
from ocml.pipeline.features import FeatureConfig
from ocml.pipeline.labels import Labels
from ocml.pipeline.model import load_model
from ocml.pipeline.postprocess import SegmentParams
from tests.labelled import labelled_folders

CFG = FeatureConfig()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Labelled folders ``a`` and ``b`` (and ``both``)."""
    return labelled_folders(tmp_path_factory.mktemp("cal"))


def _expected(p: np.ndarray, a: float, b: float) -> np.ndarray:
    q = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
    return 1 / (1 + np.exp(-(a * np.log(q / (1 - q)) + b)))


def test_calibrated_savedmodel_applies_the_transform(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = write_calibrated(
        tiny_model_dir,
        tmp_path / "cal",
        Calibration(1.7, -0.8),
        record={"fitted_on": ["a", "b"]},
        postprocess={"threshold": 0.55},
    )
    original, calibrated = load_model(tiny_model_dir), load_model(out)
    batch = np.random.default_rng(5).normal(-6, 3, (3, 411, 64)).astype(np.float32)
    p = original.predict(batch)
    assert calibrated.predict(batch).shape == (3, 411)
    np.testing.assert_allclose(calibrated.predict(batch), _expected(p, 1.7, -0.8), atol=1e-5)
    assert not np.allclose(calibrated.predict(batch), p, atol=1e-3)
    # its own ONNX asset, transform (Log1p) included
    assert calibrated.metadata["onnx"] == {"file": "model.onnx"}
    on_onnx = load_model(out, runtime="onnx").predict(batch)
    np.testing.assert_allclose(on_onnx, calibrated.predict(batch), atol=1e-4)
    meta = calibrated.metadata
    assert meta["calibration"] == {"a": 1.7, "b": -0.8, "fitted_on": ["a", "b"]}
    assert meta["postprocess"] == {"threshold": 0.55}
    assert meta["name"] == original.name and meta["features"] == original.metadata["features"]
    assert meta["context_frames"] == original.context_frames
    with pytest.raises(ModelError, match="already calibrated"):
        write_calibrated(out, tmp_path / "twice", Calibration(1.0, 0.5), record={})
    with pytest.raises(OutputError, match="new directory"):
        write_calibrated(tiny_model_dir, tiny_model_dir, Calibration(1.0, 0.5), record={})
    with pytest.raises(OutputError, match="already exists"):
        write_calibrated(tiny_model_dir, out, Calibration(1.0, 0.5), record={})


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [(0.0, 0.0, "a must be > 0"), (-1.0, 0.0, "-1.0"), (1.0, float("nan"), "nan"), ("1", 0, "'1'")],
)
def test_calibration_refuses_bad_values(a: object, b: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Calibration(a, b)  # type: ignore[arg-type]


def test_transform_keeps_order_and_inverts_logit() -> None:
    p = np.linspace(0.01, 0.99, 500)
    out = Calibration(2.0, 1.0)(p)
    assert np.all(np.diff(out) > 0)
    np.testing.assert_allclose(Calibration(1.0, 0.0)(p), p, atol=1e-6)
    np.testing.assert_allclose(logit(Calibration(2.0, 1.0)(p)), 2.0 * logit(p) + 1.0, atol=1e-3)


def _run(seed: int) -> FileRun:
    """30 s: speech in 2 s blocks every 5 s with probability 0.9, 0.7 elsewhere (over-confident)."""
    speech = [(float(s), float(s + 2)) for s in range(2, 28, 5)]
    probs = np.full(3000, 0.7, np.float32)
    for s, e in speech:
        probs[int(s * 100) : int(e * 100)] = 0.9
    item = Item(Path(f"r{seed}.flac"), Labels(speech, 30.0))
    return FileRun(item, probs, 30.0, [], "s", CFG)


def test_fit_moves_the_default_thresholds_between_the_classes() -> None:
    runs = [_run(seed) for seed in range(3)]
    cal, f1 = fit_calibration(runs)
    # with the defaults (threshold 0.5) everything is speech before calibration
    speech_fraction = 12 / 30
    assert fit_calibration(runs, a_grid=(1.0,), b_grid=(0.0,), refine=0)[1] == pytest.approx(
        2 * speech_fraction / (1 + speech_fraction), abs=1e-3
    )
    # after it, only the default padding on each side of a 2 s block is wrong
    generic = SegmentParams()
    precision = 2.0 / (2.0 + generic.pad_before + generic.pad_after)
    assert f1 == pytest.approx(2 * precision / (1 + precision), abs=1e-3)
    low, high = cal(np.array([0.7, 0.9]))
    assert low < SegmentParams().neg_threshold and high >= SegmentParams().threshold
    with pytest.raises(ValueError, match="no recordings"):
        fit_calibration([])
    with pytest.raises(ValueError, match="refine must be an integer >= 0, got -1"):
        fit_calibration(runs, refine=-1)
    with pytest.raises(ValueError, match="a must be > 0"):
        fit_calibration(runs, a_grid=(0.0, 1.0), refine=0)


@pytest.mark.slow
def test_calibrate_command_end_to_end(
    tiny_model_dir: Path,
    folders: dict[str, Path],
    tmp_path: Path,
) -> None:
    out, report_path = tmp_path / "calibrated", tmp_path / "calibration.json"
    args = [str(tiny_model_dir), str(folders["a"]), str(folders["b"])]
    result = CliRunner().invoke(
        main,
        ["calibrate", *args, "--out", str(out), "--json", str(report_path), "--threads", "1"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    meta = load_model(out).metadata
    record = meta["calibration"]
    assert record["fitted_on"] == ["a", "b"]
    assert (record["a"], record["b"]) == (report["calibration"]["a"], report["calibration"]["b"])
    assert record["f1_default_after"] >= record["f1_default_before"]
    assert meta["postprocess"] == report["after"]["tuned_params"]
    assert meta["metrics"]["data"] == "a+b" and set(meta["metrics"]["sets"]) == {"a", "b"}
    # the calibrated SavedModel, scored by evaluate with the generic defaults, gives what the fit saw
    generic = [arg for k, v in SegmentParams().to_dict().items() for arg in ("--param", f"{k}={v}")]
    scored = tmp_path / "scored.json"
    result = CliRunner().invoke(
        main,
        ["evaluate", str(out), *args[1:], *generic, "--json", str(scored), "--threads", "1"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(scored.read_text())["overall"] == report["after"]["default"]
    result = CliRunner().invoke(main, ["calibrate", *args, "--out", str(out)])
    assert result.exit_code != 0 and "already exists" in result.output
