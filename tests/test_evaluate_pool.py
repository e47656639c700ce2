"""`ocml-train evaluate` on several folders: each folder and the pool, tuning on the pool, metrics
by recording condition and the worst-file plots, with the tiny SavedModel of conftest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ocml.cli.train import main
from ocml.models.conditions import (
    MANIFEST_FILE,
    by_condition,
    format_conditions,
    read_manifest,
    segment_roles,
)
from ocml.models.datasets import Item
from ocml.models.evaluate import load_data_sets, rescore, tune_params
from ocml.models.scoring import FileRun, compare, pool, spans_to_frames
from ocml.pipeline.features import FeatureConfig
from ocml.pipeline.labels import Labels
from ocml.pipeline.postprocess import SegmentParams
from tests.labelled import SECONDS, labelled_folders, segments, write_recording

CFG = FeatureConfig()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders ``a`` and ``b`` (two recordings each, with manifests) and ``both`` (all four)."""
    return labelled_folders(tmp_path_factory.mktemp("pool"))


def _evaluate(model: Path, tmp: Path, *args: str | Path) -> dict:
    out = tmp / f"report{len(list(tmp.glob('report*.json')))}.json"
    result = CliRunner().invoke(
        main, ["evaluate", str(model), *map(str, args), "--threads", "1", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


@pytest.mark.slow
def test_each_folder_and_the_pool(
    tiny_model_dir: Path, folders: dict[str, Path], tmp_path: Path
) -> None:
    pooled = _evaluate(tiny_model_dir, tmp_path, folders["a"], folders["b"])
    assert pooled["data"] == "a+b" and set(pooled["sets"]) == {"a", "b"}
    for name in ("a", "b"):
        alone = _evaluate(tiny_model_dir, tmp_path, folders[name])
        assert alone["data"] == name
        assert pooled["sets"][name] == alone["sets"][name]
        assert alone["overall"] == alone["sets"][name]["overall"]
    # the pool counts every frame of every file once: the same as one folder holding them all
    assert pooled["overall"] == _evaluate(tiny_model_dir, tmp_path, folders["both"])["overall"]
    assert pooled["worst_file"] in {
        f"{n}/{f}" for n, s in pooled["sets"].items() for f in s["files"]
    }
    assert set(pooled["by_condition"]) >= {"snr", "music in recording", "speaker"}


@pytest.mark.slow
def test_tuning_on_the_pool_reports_what_the_tuned_values_score(
    tiny_model_dir: Path, folders: dict[str, Path], tmp_path: Path
) -> None:
    args = (folders["a"], folders["b"])
    report = _evaluate(tiny_model_dir, tmp_path, *args, "--tune", "--by-condition")
    tuned = report["tuned"]
    assert set(tuned["sets"]) == {"a", "b"} and "by_condition" in tuned
    assert set(tuned["params"]) - {"snap_db", "snap_max"} == {
        "threshold",
        "neg_threshold",
        "min_speech",
        "min_silence",
        "pad_before",
        "pad_after",
    }
    params = [arg for k, v in tuned["params"].items() for arg in ("--param", f"{k}={v}")]
    again = _evaluate(tiny_model_dir, tmp_path, *args, *params)
    assert again["sets"] == tuned["sets"] and again["overall"] == tuned["overall"]


def _run(speech: list[tuple[float, float]], probs: np.ndarray, dataset: str = "s") -> FileRun:
    item = Item(Path(f"{dataset}-{len(speech)}.flac"), Labels(speech, len(probs) / 100))
    return FileRun(item, probs.astype(np.float32), len(probs) / 100, [], dataset, CFG)


def _noisy_run(seed: int) -> FileRun:
    rng = np.random.default_rng(seed)
    speech = segments(seed)
    n = int(SECONDS * 100)
    ref = np.zeros(n)
    for s, e in speech:
        ref[int(s * 100) : int(e * 100)] = 1
    probs = np.clip(0.35 * ref + 0.3 + rng.normal(0, 0.2, n), 0, 1)
    return _run(speech, probs, dataset=f"s{seed}")


def test_tune_finds_the_best_grid_point_scored_the_plain_way() -> None:
    runs = [_noisy_run(seed) for seed in (1, 2, 3)]
    grid = {
        "threshold": (0.4, 0.5, 0.6),
        "neg_threshold_ratio": (0.8, 1.0),
        "min_speech": (0.05, 0.25),
        "min_silence": (0.1, 0.5),
        "pad": (0.0, 0.1),
    }
    chosen, metrics = tune_params(runs, SegmentParams(), grid=grid)

    def objective(params: dict[str, float]) -> float:
        p = SegmentParams.from_mapping(params)
        counts = [
            compare(r.item.labels.speech, r.binarize(p), len(r.probabilities), CFG) for r in runs
        ]
        m = pool(counts).metrics()
        return m["f1"] - m["der_collar"]

    best = max(
        objective(
            {
                "threshold": t,
                "neg_threshold": round(t * q, 3),
                "min_speech": ms,
                "min_silence": mi,
                "pad": pad,
            }
        )
        for t in grid["threshold"]
        for q in grid["neg_threshold_ratio"]
        for ms in grid["min_speech"]
        for mi in grid["min_silence"]
        for pad in grid["pad"]
    )
    assert objective(chosen) == pytest.approx(best)
    assert metrics == pool(rescore(runs, SegmentParams.from_mapping(chosen))).metrics()
    with pytest.raises(ValueError, match="min_silence"):
        tune_params(runs, SegmentParams(), grid={k: v for k, v in grid.items() if k != "pad"})


def _late_run(dataset: str, *, energy: bool) -> FileRun:
    """Decisions that run 80 ms past every utterance into frames 40 dB quieter than the voice."""
    speech = [(1.0 + 2.0 * k, 2.0 + 2.0 * k) for k in range(5)]
    t = CFG.grid.times(1200)
    voice = np.zeros(len(t), bool)
    late = np.zeros(len(t), bool)
    for a, b in speech:
        voice |= (t >= a) & (t < b)
        late |= (t >= a) & (t < b + 0.08)
    run = _run(speech, np.where(late, 0.9, 0.05), dataset)
    run.energy = np.where(voice, 0.0, -40.0).astype(np.float32) if energy else None
    return run


def test_tuning_snaps_edges_when_the_energy_is_kept_and_it_scores_higher() -> None:
    grid = {
        "threshold": (0.5,),
        "neg_threshold_ratio": (1.0,),
        "min_speech": (0.05,),
        "min_silence": (0.1,),
        "pad": (0.0,),
    }
    chosen, metrics = tune_params([_late_run("a", energy=True)], SegmentParams(), grid=grid)
    assert chosen["snap_db"] == 20.0 and chosen["snap_max"] == 0.1
    assert metrics["f1"] == pytest.approx(1.0, abs=0.005)
    plain, before = tune_params([_late_run("a", energy=False)], SegmentParams(), grid=grid)
    assert "snap_db" not in plain and before["f1"] == pytest.approx(2 / 2.08, abs=0.003)


def test_metrics_by_condition_on_paper() -> None:
    # 10 s; main speaker 1–2 s, second speaker 5–6 s; music 3–4 s; a click at 8–8.5 s.
    speech = [(1.0, 2.0), (5.0, 6.0)]
    n = 1000
    run = _run(speech, np.zeros(n))
    hypothesis = [(1.0, 2.0), (3.0, 3.5)]  # finds the main speaker, misses the second, music FA
    entry = {
        "snr_db": 12,
        "rt60": 0.9,
        "level": "quiet",
        "music": [{"start": 3.0, "end": 4.0}],
        "events": [{"kind": "click", "start": 8.0, "end": 8.5}],
        "utterances": [{"start": 1.0, "role": "main"}, {"start": 5.0, "role": "second"}],
    }
    table = by_condition([run], [hypothesis], {run.key: entry})
    assert list(table["snr"]) == ["10–19 dB"] and list(table["reverberation"]) == ["RT60 ≥ 0.8 s"]
    whole = table["level"]["quiet"]
    assert whole["seconds"] == 10.0 and whole["speech_seconds"] == 2.0
    assert whole["recall"] == 0.5 and whole["precision"] == pytest.approx(100 / 150, abs=1e-4)
    music = table["during music"]["music playing"]
    assert music["false_alarm_rate"] == 0.5 and music["f1"] is None and music["recall"] is None
    assert table["events"]["click"]["false_alarm_rate"] == 0.0
    # frames within 1 s of a segment belong to its speaker: main 0–3 s, second 4–7 s
    main, second = table["speaker"]["main speaker"], table["speaker"]["second speaker"]
    assert main["seconds"] == pytest.approx(3.0, abs=0.02) and main["recall"] == 1.0
    assert main["false_alarm_rate"] == 0.0
    assert second["seconds"] == pytest.approx(3.0, abs=0.02) and second["recall"] == 0.0
    assert second["miss_rate"] == 1.0
    assert table["speaker"]["> 1 s from speech"]["seconds"] == pytest.approx(4.0, abs=0.02)
    text = format_conditions(table)
    assert "second speaker" in text and "RT60 ≥ 0.8 s" in text


def test_segment_roles_follow_the_utterance_that_starts_them() -> None:
    utterances = [{"start": 1.0, "role": "main"}, {"start": 4.0, "role": "second"}]
    # an utterance with an inner pause gives two segments; both are its speaker's
    speech = [(1.0, 2.0), (2.5, 3.0), (4.0, 4.5), (4.9, 5.2)]
    assert segment_roles(speech, utterances) == ["main", "main", "second", "second"]
    assert segment_roles([(0.5, 0.8)], utterances) == ["unknown"]


def test_plots_of_each_folder_and_the_worst_files(
    tiny_model_dir: Path, folders: dict[str, Path], tmp_path: Path
) -> None:
    plots = tmp_path / "plots"
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            str(tiny_model_dir),
            str(folders["a"]),
            str(folders["b"]),
            "--plots",
            str(plots),
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in (plots / "a").iterdir()} == {"a31.png", "a32.png"}
    worst = sorted(p.name.split("-")[1] for p in plots.glob("worst-*.png"))
    assert worst == ["a", "b", "pool"]
    assert all(p.stat().st_size > 10_000 for p in plots.glob("worst-*.png"))


def test_error_rows_refuse_a_bad_row_length(tmp_path: Path) -> None:
    from ocml.models.plots import error_rows

    run = _run([(1.0, 2.0)], np.zeros(500))
    with pytest.raises(ValueError, match="seconds_per_row must be a positive number, got 0"):
        error_rows(
            run,
            CFG,
            tmp_path / "x.png",
            decisions=[],
            params=SegmentParams(),
            title="t",
            seconds_per_row=0,
        )
    path = error_rows(
        run, CFG, tmp_path / "y.png", decisions=[(1.0, 1.5)], params=SegmentParams(), title="t"
    )
    assert path.stat().st_size > 5_000


def test_a_folder_given_twice_is_refused_and_same_names_are_told_apart(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="given twice"):
        load_data_sets([folders["a"], folders["b"], folders["a"] / ".." / "a"])
    write_recording(tmp_path / "a", "other", 35)
    sets = load_data_sets([folders["a"], tmp_path / "a"])
    assert [s.name for s in sets] == ["a", "a-2"]
    with pytest.raises(ValueError, match="at least one"):
        load_data_sets([])


def test_hypothesis_frames_match_spans_to_frames() -> None:
    rng = np.random.default_rng(7)
    run = _run([(1.0, 2.0)], np.zeros(2000))
    for _ in range(50):
        cuts = np.sort(rng.choice(np.round(np.arange(0, 20.5, 0.005), 3), 12, replace=False))
        spans = [(float(a), float(b)) for a, b in cuts.reshape(-1, 2)]
        expected = spans_to_frames(spans, 2000, CFG) > 0
        np.testing.assert_array_equal(run.hypothesis(spans), expected)
    assert not run.hypothesis([]).any()


def test_manifest_recordings_are_keyed_by_their_audio_file_or_name(tmp_path: Path) -> None:
    """synth writes ``audio``; older manifests only ``name``: both key the conditions."""
    manifest = {"recordings": [{"audio": "synth-00000.flac", "snr_db": 5.0}, {"name": "old"}]}
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert sorted(read_manifest(tmp_path)) == ["old.flac", "synth-00000.flac"]


def test_a_synth_manifest_that_counts_utterances_groups_by_channel_and_noise() -> None:
    speech = [(1.0, 2.0)]
    run = _run(speech, np.zeros(1000))
    channel = {"seed": 1, "steps": [{"kind": "codec", "name": "opus"}]}
    entry = {"utterances": 1, "channel": channel, "noise": "recorded", "snr_db": 5}
    table = by_condition([run], [speech], {run.key: entry})
    assert list(table["noise"]) == ["recorded background"]
    assert list(table["channel"]) == ["codec opus"]
    assert table["speaker"]["unknown speaker"]["recall"] == 1.0


def test_a_described_noise_mix_is_not_a_background_kind() -> None:
    run = _run([(1.0, 2.0)], np.zeros(1000))
    table = by_condition([run], [[(1.0, 2.0)]], {run.key: {"noise": [["hum50", 0]]}})
    assert "noise" not in table
