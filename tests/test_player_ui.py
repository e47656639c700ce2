"""The pygame PlayerUI, driven headless: posted events, screenshots, label files, bad results."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.update(SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", PYGAME_HIDE_SUPPORT_PROMPT="1")

import numpy as np  # noqa: E402
import pygame  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from ocml.cli.player import play  # noqa: E402
from ocml.pipeline.decode import stream  # noqa: E402
from ocml.player import ui  # noqa: E402
from ocml.player.audio import AudioClock, AudioSource, SilentFeed, fixed_blocks  # noqa: E402
from ocml.player.session import from_result  # noqa: E402
from ocml.player.timeline import Axis, Layout  # noqa: E402
from tests.media import speechlike, write_wav  # noqa: E402
from tests.results import write_result  # noqa: E402

SR = 16000
DURATION = 60.0
SPEECH = [(5.0, 20.0), (30.0, 45.0)]
SIZE = (1280, 720)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> tuple[Path, Path]:
    """A 60 s WAV with speech at 5–20 s and 30–45 s, its result and its probabilities."""
    folder = tmp_path_factory.mktemp("player")
    media = write_wav(folder / "lecture.wav", speechlike(SR, DURATION, SPEECH), SR)
    result = write_result(folder / "lecture.json", SPEECH, duration=DURATION, media=media)
    probs = np.full(int(DURATION * 100), 0.1, np.float16)
    for start, end in SPEECH:
        probs[int(start * 100) : int(end * 100)] = 0.9
    np.save(folder / "lecture.probs.npy", probs)
    return media, result


@pytest.fixture
def player(recording, tmp_path):
    """A PlayerUI on a dummy display with the mixer streaming a copy of the recording (corrected
    labels are saved beside it)."""
    media, result = recording
    for source in (media, result):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    session = from_result(
        tmp_path / media.name,
        tmp_path / result.name,
        probabilities=result.with_name("lecture.probs.npy"),
    )
    pygame.display.init()
    pygame.font.init()
    surface = pygame.display.set_mode(SIZE)
    source, feed = ui.start_audio(session)
    yield ui.PlayerUI(session, source=source, feed=feed), surface
    feed.stop()
    pygame.quit()


def press(key: int, mod: int = 0) -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=mod, unicode=""))


def test_keys_move_cursor_and_play_state(player) -> None:
    view, surface = player
    press(pygame.K_RIGHT)
    press(pygame.K_RIGHT)
    press(pygame.K_LEFT, pygame.KMOD_LSHIFT)
    view.step(surface)
    assert view.state.cursor == 9.0 and not view.state.playing
    press(pygame.K_n)
    view.step(surface)
    assert view.state.cursor == 20.0
    press(pygame.K_p)
    press(pygame.K_p)
    view.step(surface)
    assert view.state.cursor == 0.0
    press(pygame.K_END)
    view.step(surface)
    assert view.state.cursor == DURATION
    press(pygame.K_HOME)
    span = view.state.span
    press(pygame.K_PLUS)
    view.step(surface)
    assert view.state.cursor == 0.0 and view.state.span < span
    press(pygame.K_SPACE)
    view.step(surface)
    assert view.state.playing and view.feed.playing
    started = time.perf_counter()
    time.sleep(0.3)
    view.step(surface)
    elapsed = time.perf_counter() - started
    assert 0.0 < view.state.cursor <= elapsed + 0.05
    press(pygame.K_SPACE)
    view.step(surface)
    paused_at = view.state.cursor
    assert not view.state.playing and not view.feed.playing
    view.step(surface)
    assert view.state.cursor == paused_at


def test_click_on_overview_seeks_and_dragging_moves_a_boundary(player) -> None:
    view, surface = player
    layout = Layout(*SIZE)
    overview = Axis(0.0, DURATION, layout.overview.x, layout.overview.w)
    pygame.event.post(
        pygame.event.Event(
            pygame.MOUSEBUTTONDOWN, button=1, pos=(overview.x(30.0), layout.overview.y + 5)
        )
    )
    pygame.event.post(
        pygame.event.Event(
            pygame.MOUSEBUTTONUP, button=1, pos=(overview.x(30.0), layout.overview.y + 5)
        )
    )
    view.step(surface)
    assert view.state.cursor == pytest.approx(30.0, abs=DURATION / layout.overview.w)
    t0, t1 = view.state.window()
    detail = Axis(t0, t1, layout.detail.x, layout.detail.w)
    y = layout.lane.y + 5
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=(detail.x(30.0), y)))
    pygame.event.post(
        pygame.event.Event(
            pygame.MOUSEMOTION, pos=(detail.x(31.5), y), rel=(1, 0), buttons=(1, 0, 0)
        )
    )
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, button=1, pos=(detail.x(31.5), y)))
    view.step(surface)
    assert view.state.labels.intervals()[1] == (pytest.approx(31.5, abs=0.05), 45.0)
    assert view.state.labels.dirty


def test_flip_and_save_write_label_files(player, tmp_path) -> None:
    view, surface = player
    view.state.seek(35.0)
    press(pygame.K_f)
    press(pygame.K_s)
    view.step(surface)
    assert (tmp_path / "lecture.labels.txt").read_text() == "5.000000\t20.000000\tspeech\n"
    assert json.loads((tmp_path / "lecture.labels.json").read_text()) == {
        "duration": 60.0,
        "speech": [[5.0, 20.0]],
    }
    view.state.seek(10.0)
    press(pygame.K_x)  # split 5–20 at 10, then flip 10–20 to non-speech
    press(pygame.K_RIGHT)
    press(pygame.K_f)
    press(pygame.K_q)
    view.step(surface)
    assert view.state.prompting and view.running  # unsaved changes: asked, not quit
    press(pygame.K_s)
    view.step(surface)
    assert not view.running
    assert (tmp_path / "lecture.labels.txt").read_text() == "5.000000\t10.000000\tspeech\n"


def test_a_failed_save_keeps_the_edits_and_the_window(player, tmp_path) -> None:
    view, surface = player
    (tmp_path / "lecture.labels.txt").mkdir()  # nothing can be renamed onto a directory
    press(pygame.K_f)
    press(pygame.K_s)
    view.step(surface)
    assert view.state.message.startswith("cannot save: ") and "lecture.labels.txt" in (
        view.state.message
    )
    assert view.state.labels.dirty and view.running and view.saved is None
    press(pygame.K_q)
    press(pygame.K_s)  # "save and quit" in the prompt: the save fails, so the player stays
    view.step(surface)
    assert view.running and view.state.labels.dirty


def test_window_close_with_unsaved_changes_prompts(player, tmp_path) -> None:
    view, surface = player
    press(pygame.K_f)
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    view.step(surface)
    assert view.state.prompting and view.running
    press(pygame.K_ESCAPE)
    view.step(surface)
    assert not view.state.prompting and view.running
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    press(pygame.K_d)
    view.step(surface)
    assert not view.running and not (tmp_path / "lecture.labels.txt").exists()


def test_screenshot_colours_speech_green_and_silence_red(recording, tmp_path) -> None:
    media, result = recording
    out = tmp_path / "shot.png"
    run = CliRunner().invoke(
        play, [str(media), "--result", str(result), "--screenshot", str(out), "--at", "19"]
    )
    assert run.exit_code == 0, run.output
    image = pygame.image.load(str(out))
    assert image.get_size() == SIZE
    layout = Layout(*SIZE)
    axis = Axis(0.0, DURATION, layout.overview.x, layout.overview.w)
    y = layout.overview.y + 10
    for t in (10.0, 15.0, 35.0, 44.0):
        assert tuple(image.get_at((axis.x(t), y)))[:3] == ui.SPEECH, t
    for t in (2.0, 25.0, 50.0, 59.0):
        assert tuple(image.get_at((axis.x(t), y)))[:3] == ui.NON_SPEECH, t
    lane_y = layout.lane.y + 5
    t0, t1 = 19.0 - 10.0 / 3, 19.0 + 20.0 / 3  # the default 10 s detail window, cursor at 1/3
    detail = Axis(t0, t1, layout.detail.x, layout.detail.w)
    assert tuple(image.get_at((detail.x(17.0), lane_y)))[:3] == ui.SPEECH
    assert tuple(image.get_at((detail.x(22.0), lane_y)))[:3] == ui.NON_SPEECH
    assert tuple(image.get_at((detail.x(19.0), lane_y)))[:3] == ui.CURSOR


def test_play_without_result_runs_the_pipeline_first(tiny_model_dir, tmp_path) -> None:
    media = write_wav(tmp_path / "talk.wav", speechlike(SR, 20.0, [(4.0, 12.0)], seed=3), SR)
    out = tmp_path / "shot.png"
    run = CliRunner().invoke(
        play, [str(media), "--model", str(tiny_model_dir), "--screenshot", str(out), "--at", "8"]
    )
    assert run.exit_code == 0, run.output
    assert "segmenting talk.wav" in run.output and str(out) in run.output
    image = pygame.image.load(str(out))
    layout = Layout(*SIZE)
    axis = Axis(0.0, 20.0, layout.overview.x, layout.overview.w)
    assert tuple(image.get_at((axis.x(6.0), layout.overview.y + 10)))[:3] == ui.SPEECH
    assert tuple(image.get_at((axis.x(10.0), layout.overview.y + 10)))[:3] == ui.SPEECH
    assert tuple(image.get_at((axis.x(16.0), layout.overview.y + 10)))[:3] == ui.NON_SPEECH


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(schema="something/else"), "schema"),
        (lambda d: d["segments"][1].update(end=61.0), "beyond the input duration"),
        (lambda d: d.pop("input"), "input"),
    ],
)
def test_bad_result_fails_before_a_window_opens(recording, tmp_path, change, message) -> None:
    media, result = recording
    doc = json.loads(result.read_text())
    change(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    run = CliRunner().invoke(play, [str(media), "--result", str(bad)])
    assert run.exit_code == 1
    assert "bad.json" in run.output and message in run.output
    assert not pygame.display.get_init()


def test_not_json_and_short_probabilities_are_refused(recording, tmp_path) -> None:
    media, result = recording
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    run = CliRunner().invoke(play, [str(media), "--result", str(bad)])
    assert run.exit_code == 1 and "not a JSON result file" in run.output
    short = tmp_path / "short.npy"
    np.save(short, np.zeros(100, np.float16))
    run = CliRunner().invoke(
        play, [str(media), "--result", str(result), "--probabilities", str(short)]
    )
    assert (
        run.exit_code == 1 and "100 frames cover 1.00 s but the result says 60.00 s" in run.output
    )


def test_audio_source_reads_across_blocks_and_seeks_back(recording) -> None:
    media, _ = recording
    whole, _ = sf.read(str(media), dtype="float32")
    source = AudioSource.for_file(str(media), block_seconds=2.0, cache_blocks=2)
    np.testing.assert_allclose(source.samples(50_000, 10_000), whole[50_000:60_000])
    np.testing.assert_allclose(source.samples(900_000, 20_000), whole[900_000:920_000])
    np.testing.assert_allclose(source.samples(1000, 40_000), whole[1000:41_000])
    assert len(source.samples(len(whole) - 10, 100)) == 10
    assert len(source.samples(len(whole) + 10, 100)) == 0
    assert [len(b) for b in fixed_blocks([np.zeros(3), np.zeros(9), np.zeros(1)], 4)] == [
        4,
        4,
        4,
        1,
    ]


def test_audio_source_seeks_by_reopening_at_the_block(recording) -> None:
    """A far seek decodes from the wanted block on, not from the start of the recording."""
    media, _ = recording
    whole, _ = sf.read(str(media), dtype="float32")
    opened: list[float] = []

    def open_stream(start: float):
        opened.append(start)
        return stream(str(media), sample_rate=16000, block_seconds=2.0, start=start)

    source = AudioSource(open_stream, block_seconds=2.0, cache_blocks=2)
    np.testing.assert_allclose(source.samples(900_000, 20_000), whole[900_000:920_000])
    np.testing.assert_allclose(source.samples(40_000, 1_000), whole[40_000:41_000])
    np.testing.assert_allclose(source.samples(72_000, 1_000), whole[72_000:73_000])
    assert opened == [56.0, 2.0]


def test_audio_clock_follows_chunks() -> None:
    clock = AudioClock(sample_rate=1000)
    clock.begin(5000, 250, now=10.0)
    assert clock.position(10.1) == 5100
    assert clock.position(11.0) == 5250  # never past the chunk the mixer holds
    clock.next_chunk(250)
    assert clock.position(10.3) == 5300  # the second chunk began where the first ended, at 10.25


def test_silent_feed_keeps_time_from_where_it_starts_to_the_end() -> None:
    now = [100.0]
    feed = SilentFeed(60.0, clock=lambda: now[0])
    feed.play(58.0)
    now[0] += 1.5
    feed.update()
    assert feed.playing and feed.position() == 59.5
    feed.stop()
    now[0] += 5.0
    assert not feed.playing and feed.position() == 59.5
    feed.play(59.5)
    now[0] += 3.0
    feed.update()
    assert not feed.playing and feed.position() == 60.0
