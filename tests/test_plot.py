"""``ocml plot``: streamed, pooled spectrogram, detail windows, and the PNG it writes."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner

from ocml.cli.player import plot
from ocml.pipeline.features import FeatureConfig, logmel, stream_logmel
from ocml.player.plot import detail_windows, spectrograms
from ocml.player.session import Session
from tests.media import speechlike, write_wav
from tests.results import write_result

SR = 16000


def recording(
    folder: Path, duration: float, speech: list[tuple[float, float]]
) -> tuple[Path, Path]:
    media = write_wav(folder / "talk.wav", speechlike(SR, duration, speech), SR)
    result = write_result(folder / "talk.json", speech, duration=duration, media=media)
    probs = np.full(int(duration * 100), 0.1, np.float16)
    for start, end in speech:
        probs[int(start * 100) : int(end * 100)] = 0.9
    np.save(folder / "talk.probs.npy", probs)
    return media, result


def test_plot_writes_png_with_reference(tmp_path) -> None:
    media, result = recording(tmp_path, 30.0, [(3.0, 12.0), (18.0, 25.0)])
    reference = tmp_path / "ref.txt"
    reference.write_text("2.5\t12.0\tspeech\n19.0\t27.0\tspeech\n")
    out = tmp_path / "plot.png"
    run = CliRunner().invoke(
        plot, [str(media), "-r", str(result), "--reference", str(reference), "-o", str(out)]
    )
    assert run.exit_code == 0, run.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        matplotlib.image.imread(str(out)).shape[0] == 2 * 180
    )  # one panel pair: 3.6 in at 100 dpi


def test_long_recording_gets_overview_and_detail_panels(tmp_path) -> None:
    media, result = recording(tmp_path, 120.0, [(10.0, 20.0), (70.0, 80.0)])
    out = tmp_path / "long.png"
    run = CliRunner().invoke(plot, [str(media), "-r", str(result), "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert matplotlib.image.imread(str(out)).shape[0] == 3 * 2 * 180  # overview + two 60 s details


def test_detail_windows_follow_errors_then_uncertainty() -> None:
    probs = np.full(60000, 0.05, np.float16)  # 600 s
    probs[40000:40500] = 0.5  # uncertain frames in the window 400–460 s
    session = Session(
        media=Path("x.wav"),
        duration=600.0,
        segments=[(100.0, 200.0)],
        probabilities=probs,
        threshold=0.5,
        model_name="m",
    )
    assert detail_windows(session, [(100.0, 200.0), (310.0, 330.0)]) == [(300.0, 360.0)]
    assert detail_windows(session, None) == [(360.0, 420.0)]
    flat = Session(
        media=Path("x.wav"),
        duration=600.0,
        segments=[],
        probabilities=None,
        threshold=0.5,
        model_name="m",
    )
    assert detail_windows(flat, None) == [(0.0, 60.0), (240.0, 300.0), (540.0, 600.0)]


def test_spectrograms_pool_and_keep_exact_detail_frames() -> None:
    cfg = FeatureConfig()
    samples = speechlike(SR, 50.0, [(5.0, 20.0)])
    blocks = [samples[i : i + 37_000] for i in range(0, len(samples), 37_000)]
    full = logmel(samples, cfg)
    specs = spectrograms(stream_logmel(blocks, cfg), n_frames=len(full), windows=[(10.0, 12.0)])
    assert specs.frames_per_column == 3 and len(specs.overview) == -(-len(full) // 3)
    np.testing.assert_allclose(specs.overview[5], full[15:18].mean(axis=0), rtol=1e-5)
    first = int((10.0 - 0.0125) / 0.01)
    np.testing.assert_allclose(
        specs.details[(10.0, 12.0)], full[first : first + len(specs.details[(10.0, 12.0)])]
    )
    assert len(specs.details[(10.0, 12.0)]) == pytest.approx(200, abs=2)


def test_bad_reference_is_a_clear_error(tmp_path) -> None:
    media, result = recording(tmp_path, 10.0, [(1.0, 5.0)])
    reference = tmp_path / "ref.json"
    reference.write_text('{"speech": "all of it"}')
    run = CliRunner().invoke(
        plot,
        [
            str(media),
            "-r",
            str(result),
            "--reference",
            str(reference),
            "-o",
            str(tmp_path / "x.png"),
        ],
    )
    assert (
        run.exit_code == 1
        and "ref.json" in run.output
        and "must be a list of [start, end] pairs" in run.output
    )
    assert not (tmp_path / "x.png").exists()


def test_a_result_of_another_recording_is_drawn_only_with_force(tmp_path) -> None:
    media, _ = recording(tmp_path, 30.0, [(3.0, 12.0)])
    other = write_wav(tmp_path / "other.wav", speechlike(SR, 45.0, [(5.0, 40.0)], seed=4), SR)
    result = write_result(tmp_path / "other.json", [(5.0, 40.0)], duration=45.0, media=other)
    out = tmp_path / "plot.png"
    run = CliRunner().invoke(plot, [str(media), "-r", str(result), "-o", str(out)])
    assert run.exit_code == 2 and not out.exists()
    assert "is a result of another recording" in run.output and "other.json" in run.output
    assert "other.wav (45.0 s" in run.output and "talk.wav (30.0 s" in run.output
    run = CliRunner().invoke(plot, [str(media), "-r", str(result), "-o", str(out), "--force"])
    assert run.exit_code == 0, run.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
