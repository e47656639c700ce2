"""Pure player logic: label editing, label files, timeline geometry, key actions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ocml.pipeline.labels import (
    LabelError,
    merge_intervals,
    read_labels,
    render_audacity_labels,
    render_labels_json,
)
from ocml.player.labels import Labels, difference, save_labels
from ocml.player.state import PlayerState, action_for, format_time
from ocml.player.timeline import Axis, Layout, curve, detail_window, pipeline_grid, pool


def labels() -> Labels:
    return Labels.from_intervals([(2.0, 4.0), (6.0, 7.5)], duration=10.0)


def test_from_intervals_builds_a_partition() -> None:
    lab = labels()
    assert lab.edges == [0.0, 2.0, 4.0, 6.0, 7.5, 10.0]
    assert lab.speech == [False, True, False, True, False]
    assert lab.intervals() == [(2.0, 4.0), (6.0, 7.5)]
    full = Labels.from_intervals([(0.0, 3.0), (3.0, 10.0)], duration=10.0)
    assert full.edges == [0.0, 10.0] and full.speech == [True]


def test_flip_split_move() -> None:
    lab = labels()
    lab.flip(5.0)  # the gap between the two segments becomes speech: they merge
    assert lab.intervals() == [(2.0, 7.5)] and lab.dirty
    lab.flip(5.0)
    lab.split(3.0)
    lab.flip(3.5)
    assert lab.intervals() == [(2.0, 3.0), (6.0, 7.5)]
    index = lab.nearest_boundary(6.05, tolerance=0.1)
    assert lab.edges[index] == 6.0
    assert lab.move_boundary(index, 5.5) == 5.5
    assert lab.move_boundary(index, 100.0) == pytest.approx(7.49)
    assert lab.intervals() == [(2.0, 3.0), (pytest.approx(7.49), 7.5)]
    assert lab.nearest_boundary(9.0, tolerance=0.1) is None


def test_boundary_navigation() -> None:
    lab = labels()
    assert lab.next_boundary(0.0) == 2.0
    assert lab.next_boundary(2.0) == 4.0
    assert lab.next_boundary(8.0) == 10.0
    assert lab.previous_boundary(6.0) == 4.0
    assert lab.previous_boundary(1.0) == 0.0


def test_label_files(tmp_path) -> None:
    lab = labels()
    lab.flip(6.5)
    txt, js = save_labels(lab, tmp_path / "lecture")
    assert txt.name == "lecture.labels.txt" and js.name == "lecture.labels.json"
    assert txt.read_text() == "2.000000\t4.000000\tspeech\n"
    assert json.loads(js.read_text()) == {"duration": 10.0, "speech": [[2.0, 4.0]]}
    assert not lab.dirty
    assert read_labels(txt).speech == read_labels(js).speech == [(2.0, 4.0)]
    assert render_audacity_labels([]) == b""
    assert json.loads(render_labels_json([], duration=1.5)) == {"duration": 1.5, "speech": []}


def test_reference_skips_non_speech_and_reports_bad_lines(tmp_path) -> None:
    path = tmp_path / "ref.txt"
    path.write_text("0.5\t1.0\tspeech\n1.0\t1.5\tsilence\n1.5\t3\ttalk\n")
    assert read_labels(path).speech == [(0.5, 1.0), (1.5, 3.0)]
    path.write_text("zero\tone\tspeech\n")
    with pytest.raises(LabelError, match="line 1"):
        read_labels(path)


def test_interval_arithmetic() -> None:
    assert merge_intervals([(3, 4), (0, 1), (0.5, 2), (2, 2.5)]) == [(0, 2.5), (3, 4)]
    assert difference([(0, 10)], [(2, 3), (5, 6)]) == [(0, 2), (3, 5), (6, 10)]
    assert difference([(2, 3)], [(0, 10)]) == []
    assert difference([(0, 1), (4, 6)], [(0.5, 5)]) == [(0, 0.5), (5, 6)]


def test_geometry() -> None:
    axis = Axis(t0=0.0, t1=100.0, x0=10, width=1000)
    assert axis.x(50.0) == 510 and axis.t(510) == 50.0 and axis.t(-5) == 0.0
    layout = Layout(1280, 720)
    assert layout.overview.contains(640, layout.overview.y + 1)
    assert layout.detail.y > layout.overview.y + layout.overview.h
    assert detail_window(1.0, 10.0, 100.0) == (0.0, 10.0)
    assert detail_window(50.0, 30.0, 100.0) == (40.0, 70.0)
    assert detail_window(99.0, 30.0, 100.0) == (70.0, 100.0)
    assert detail_window(5.0, 30.0, 8.0) == (0.0, 8.0)
    grid = pipeline_grid()
    assert grid.index(0.0125) == 0 and grid.index(1.0125) == 100


def test_the_player_and_the_plots_draw_the_same_frames_of_a_window() -> None:
    probs = np.linspace(0, 1, 1000, dtype=np.float32)
    times, values = curve(probs, pipeline_grid(), 1.0, 2.0, points=1000)
    assert times[0] <= 1.0 < times[1] and times[-2] < 2.0 <= times[-1]
    np.testing.assert_allclose(values, probs[(times * 100 - 1.25).round().astype(int)])
    pooled_times, pooled = curve(probs, pipeline_grid(), 0.0, 10.0, points=100)
    assert len(pooled) == len(pooled_times) == 100
    assert pooled_times[0] == pytest.approx(0.0575) and pooled[-1] == pytest.approx(0.995, abs=1e-3)


def test_pool() -> None:
    v = np.arange(10, dtype=np.float32)
    np.testing.assert_allclose(pool(v, 5), [0.5, 2.5, 4.5, 6.5, 8.5])
    np.testing.assert_allclose(pool(v, 2, how="max"), [4, 9])
    assert pool(np.ones(1_080_000, np.float16), 1248).shape == (1248,)
    assert pool(v, 20).shape == (20,)


def state() -> PlayerState:
    probs = np.full(1000, 0.2, np.float32)
    probs[200:400] = 0.9
    return PlayerState(duration=10.0, labels=labels(), probabilities=probs, cursor=3.0)


def test_keys_move_cursor_and_play_state() -> None:
    s = state()
    assert s.handle(action_for("space")) == "play" and s.playing
    assert s.handle(action_for("right")) == "seek" and s.cursor == 8.0
    s.handle(action_for("left", shift=True))
    assert s.cursor == 7.0
    s.handle(action_for("right"))
    assert s.cursor == 10.0 and not s.playing
    s.handle(action_for("home"))
    assert s.cursor == 0.0
    s.handle(action_for("n"))
    assert s.cursor == 2.0
    s.handle(action_for("n"))
    assert s.cursor == 4.0
    s.handle(action_for("p"))
    assert s.cursor == 2.0
    span = s.span
    s.handle(action_for("+"))
    assert s.span < span
    s.handle(action_for("-"))
    s.handle(action_for("-"))
    assert s.span > span
    s.handle(action_for("end"))
    assert s.cursor == 10.0
    assert s.handle(action_for("space")) == "play" and s.cursor == 0.0


def test_decision_and_certainty() -> None:
    s = state()
    assert s.decision() == (True, pytest.approx(0.9))
    s.seek(5.0)
    assert s.decision() == (False, pytest.approx(0.8))
    assert format_time(3725.5) == "1:02:05.500" and format_time(65.25) == "01:05.250"


def test_quit_prompts_when_labels_changed() -> None:
    s = state()
    assert s.handle(action_for("q")) == "quit"
    s.handle(action_for("f"))
    assert s.handle(action_for("escape")) == "pause" and s.prompting
    assert action_for("space", prompting=True) is None
    assert s.handle(action_for("escape", prompting=True)) is None and not s.prompting
    s.handle(action_for("q"))
    assert s.handle(action_for("d", prompting=True)) == "quit"
    s.handle(action_for("q"))
    assert s.handle(action_for("s", prompting=True)) == "save_and_quit"
