"""The pygame PlayerUI: draws a ``PlayerState`` and turns pygame events into its actions.

Behaviour lives in ``player.state`` and ``player.labels``; this module only draws and routes
events, and ``screenshot`` renders one frame headless (SDL dummy drivers) for reports and tests.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pygame

from ocml.pipeline.errors import OcmlError
from ocml.pipeline.features import PIPELINE_FEATURES, logmel
from ocml.player.audio import SAMPLE_RATE, AudioSource, MixerFeed, SilentFeed
from ocml.player.labels import save_labels
from ocml.player.session import Session
from ocml.player.state import PlayerState, action_for, format_time
from ocml.player.timeline import Axis, Layout, Rect, curve, pipeline_grid, pool

SPEECH = (40, 170, 70)
NON_SPEECH = (190, 50, 50)
BACKGROUND = (24, 24, 28)
PANEL = (14, 14, 18)
TEXT = (230, 230, 230)
DIM = (140, 140, 150)
CURVE = (250, 210, 60)
THRESHOLD = (250, 140, 40)
WAVE = (110, 150, 210)
CURSOR = (255, 255, 255)
HELP = (
    "space play/pause   Left/Right 5 s (shift 1 s)   n/p boundary   +/- zoom   v wave/spectrogram   "
    "f flip   x split   drag boundary   s save   q quit"
)
DRAG_PIXELS = 6
FPS = 30
HEADLESS_DRIVERS = ("offscreen", "dummy")
"""SDL video drivers that show nothing: used by choice (``SDL_VIDEODRIVER``) or not at all."""


def headless() -> None:
    """Use SDL's dummy video and audio drivers unless a driver was chosen already."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


class NoDisplay(OcmlError):
    """There is no display to open the player window on."""

    code = "no_display"


class PlayerUI:
    """Draws one session's ``PlayerState`` onto a surface and applies pygame events to it."""

    def __init__(
        self,
        session: Session,
        *,
        source: AudioSource | None = None,
        feed: MixerFeed | SilentFeed | None = None,
    ) -> None:
        self.session = session
        self.state = PlayerState(
            duration=session.duration,
            labels=session.labels(),
            probabilities=session.probabilities,
            threshold=session.threshold,
        )
        self.source = source
        self.feed = feed
        self.fonts = {size: pygame.font.Font(None, size) for size in (20, 26, 36, 56)}
        self._overview: tuple[tuple, pygame.Surface] | None = None
        self._detail: tuple[tuple, pygame.Surface] | None = None
        self._drag: int | None = None
        self.running = True
        self.saved: tuple[Path, Path] | None = None

    # --- drawing -------------------------------------------------------------------------------

    def draw(self, surface: pygame.Surface) -> None:
        """Render the whole window for the current state."""
        layout = Layout(*surface.get_size())
        surface.fill(BACKGROUND)
        self._draw_header(surface, layout.header)
        self._draw_status(surface, layout.status)
        self._draw_overview(surface, layout.overview)
        self._draw_detail(surface, layout.detail, layout.lane)
        self._draw_footer(surface, layout.footer)

    def _text(self, surface: pygame.Surface, text: str, size: int, color: tuple, pos: tuple) -> int:
        image = self.fonts[size].render(text, True, color)
        surface.blit(image, pos)
        return pos[0] + image.get_width()

    def _draw_header(self, surface: pygame.Surface, r: Rect) -> None:
        n = len(self.state.labels.intervals())
        dirty = "   (unsaved changes)" if self.state.labels.dirty else ""
        if not self.session.writable:
            dirty += "   (result of another recording: read-only)"
        line = (
            f"{self.session.media.name}   model {self.session.model_name}   "
            f"{n} speech segments   {format_time(self.session.duration)}{dirty}"
        )
        self._text(surface, line, 26, TEXT, (r.x, r.y))

    def _draw_status(self, surface: pygame.Surface, r: Rect) -> None:
        speech, certainty = self.state.decision()
        size = 56 if r.w >= 1100 else 36
        x = self._text(surface, format_time(self.state.cursor), size, TEXT, (r.x, r.y))
        x = self._text(
            surface,
            "SPEECH" if speech else "NON-SPEECH",
            size,
            SPEECH if speech else NON_SPEECH,
            (x + size * 3 // 4, r.y),
        )
        sure = "certainty —" if certainty is None else f"certainty {certainty * 100:.0f} %"
        x = self._text(surface, sure, size, TEXT, (x + size * 3 // 4, r.y))
        self._text(
            surface,
            ("PLAYING" if self.state.playing else "PAUSED")
            + (" (no sound device)" if isinstance(self.feed, SilentFeed) else ""),
            26,
            DIM,
            (x + 30, r.y + size // 3),
        )

    def _overview_surface(self, r: Rect) -> pygame.Surface:
        """Labels in green/red over the whole recording, probability strip below; cached."""
        key = (r.w, r.h, tuple(self.state.labels.edges), tuple(self.state.labels.speech))
        if self._overview is not None and self._overview[0] == key:
            return self._overview[1]
        image = pygame.Surface((r.w, r.h))
        image.fill(PANEL)
        axis = Axis(0.0, self.session.duration, 0, r.w)
        band = r.h * 2 // 3
        labels = self.state.labels
        for i, is_speech in enumerate(labels.speech):
            x0, x1 = axis.x(labels.edges[i]), axis.x(labels.edges[i + 1])
            image.fill(SPEECH if is_speech else NON_SPEECH, (x0, 0, max(x1 - x0, 1), band))
        probs = self.session.probabilities
        if probs is not None and len(probs):
            columns = pool(probs, r.w, how="mean")
            strip = r.h - band - 2
            points = [(x, r.h - 1 - int(p * strip)) for x, p in enumerate(columns)]
            if len(points) > 1:
                pygame.draw.lines(image, CURVE, False, points)
        self._overview = (key, image)
        return image

    def _draw_overview(self, surface: pygame.Surface, r: Rect) -> None:
        surface.blit(self._overview_surface(r), (r.x, r.y))
        axis = Axis(0.0, self.session.duration, r.x, r.w)
        t0, t1 = self.state.window()
        pygame.draw.rect(
            surface, DIM, (axis.x(t0), r.y - 2, max(axis.x(t1) - axis.x(t0), 2), r.h + 4), 1
        )
        x = axis.x(self.state.cursor)
        pygame.draw.line(surface, CURSOR, (x, r.y - 4), (x, r.y + r.h + 3), 2)

    def _detail_surface(self, r: Rect, t0: float, t1: float) -> pygame.Surface:
        """Waveform or spectrogram of ``t0..t1`` with the probability curve; cached per window."""
        key = (r.w, r.h, t0, t1, self.state.view)
        if self._detail is not None and self._detail[0] == key:
            return self._detail[1]
        image = pygame.Surface((r.w, r.h))
        image.fill(PANEL)
        samples = (
            self.source.seconds(t0, t1) if self.source is not None else np.zeros(0, np.float32)
        )
        width = max(int(r.w * min(len(samples) / SAMPLE_RATE / max(t1 - t0, 1e-9), 1.0)), 1)
        if self.state.view == "spectrogram":
            self._spectrogram(image, samples, width)
        else:
            self._waveform(image, samples, width)
        self._curve(image, Axis(t0, t1, 0, r.w))
        self._detail = (key, image)
        return image

    def _waveform(self, image: pygame.Surface, samples: np.ndarray, width: int) -> None:
        if len(samples) < 2:
            return
        h = image.get_height()
        low, high = pool(samples, width, how="min"), pool(samples, width, how="max")
        scale = (h / 2 - 2) / max(float(np.abs(samples).max()), 1e-4)
        for x in range(width):
            pygame.draw.line(
                image, WAVE, (x, h // 2 - int(high[x] * scale)), (x, h // 2 - int(low[x] * scale))
            )

    def _spectrogram(self, image: pygame.Surface, samples: np.ndarray, width: int) -> None:
        cfg = PIPELINE_FEATURES
        mel = logmel(samples, cfg)
        if len(mel) < 2:
            return
        lo, hi = np.percentile(mel, [5, 99.5])
        level = np.clip((mel - lo) / max(hi - lo, 1e-6), 0, 1)[:, ::-1]
        rgb = np.stack(
            [
                np.interp(level, [0, 0.5, 1], c)
                for c in ((10, 150, 255), (10, 40, 230), (40, 90, 120))
            ],
            axis=-1,
        ).astype(np.uint8)
        picture = pygame.transform.smoothscale(
            pygame.surfarray.make_surface(rgb), (width, image.get_height())
        )
        image.blit(picture, (0, 0))

    def _curve(self, image: pygame.Surface, axis: Axis) -> None:
        h = image.get_height()
        y_threshold = h - 1 - int(self.state.threshold * (h - 2))
        for x in range(0, image.get_width(), 12):
            pygame.draw.line(image, THRESHOLD, (x, y_threshold), (x + 6, y_threshold))
        probs = self.session.probabilities
        if probs is None or len(probs) == 0:
            return
        times, values = curve(
            probs, pipeline_grid(), axis.t0, axis.t1, points=2 * image.get_width()
        )
        if len(values) < 2:
            return
        points = [(axis.x(t), h - 1 - int(p * (h - 2))) for t, p in zip(times, values)]
        pygame.draw.lines(image, CURVE, False, points, 2)

    def _draw_detail(self, surface: pygame.Surface, r: Rect, lane: Rect) -> None:
        t0, t1 = self.state.window()
        surface.blit(self._detail_surface(r, t0, t1), (r.x, r.y))
        axis = Axis(t0, t1, r.x, r.w)
        labels = self.state.labels
        for i, is_speech in enumerate(labels.speech):
            a, b = max(labels.edges[i], t0), min(labels.edges[i + 1], t1)
            if b > a:
                surface.fill(
                    SPEECH if is_speech else NON_SPEECH,
                    (axis.x(a), lane.y, max(axis.x(b) - axis.x(a), 1), lane.h),
                )
        for edge in labels.boundaries():
            if t0 <= edge <= t1:
                pygame.draw.line(
                    surface, TEXT, (axis.x(edge), lane.y - 6), (axis.x(edge), lane.y + lane.h), 2
                )
        self._text(surface, format_time(t0), 20, DIM, (r.x, lane.y + lane.h + 3))
        end_label = format_time(t1)
        self._text(
            surface,
            end_label,
            20,
            DIM,
            (r.x + r.w - self.fonts[20].size(end_label)[0], lane.y + lane.h + 3),
        )
        x = axis.x(self.state.cursor)
        pygame.draw.line(surface, CURSOR, (x, r.y), (x, lane.y + lane.h), 2)

    def _draw_footer(self, surface: pygame.Surface, r: Rect) -> None:
        if self.state.prompting:
            text, color = (
                "Unsaved label changes:  s save and quit   d discard and quit   Esc keep working",
                CURVE,
            )
        else:
            text, color = (self.state.message or HELP), DIM
        self._text(surface, text, 20, color, (r.x, r.y))

    # --- events --------------------------------------------------------------------------------

    def handle_event(self, event: pygame.event.Event, size: tuple[int, int]) -> None:
        """Apply one pygame event to the state and carry out the effect."""
        if event.type == pygame.QUIT:
            self.apply(self.state.handle("quit"))
        elif event.type == pygame.KEYDOWN:
            action = action_for(
                pygame.key.name(event.key),
                shift=bool(event.mod & pygame.KMOD_SHIFT),
                prompting=self.state.prompting,
            )
            self.apply(self.state.handle(action))
        elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            self._press(event.pos, Layout(*size))
        elif event.type == pygame.MOUSEMOTION and self._drag is not None:
            t0, t1 = self.state.window()
            detail = Layout(*size).detail
            self.state.labels.move_boundary(
                self._drag, Axis(t0, t1, detail.x, detail.w).t(event.pos[0])
            )
        elif event.type == pygame.MOUSEBUTTONUP and event.button == 1:
            self._drag = None

    def _press(self, pos: tuple[int, int], layout: Layout) -> None:
        """A click on the overview seeks; on the detail view it grabs a boundary or seeks."""
        if layout.overview.contains(*pos):
            self.apply(
                self.state.seek(
                    Axis(0.0, self.session.duration, layout.overview.x, layout.overview.w).t(pos[0])
                )
            )
            return
        detail, lane = layout.detail, layout.lane
        if detail.contains(*pos) or lane.contains(*pos):
            t0, t1 = self.state.window()
            axis = Axis(t0, t1, detail.x, detail.w)
            t = axis.t(pos[0])
            self._drag = self.state.labels.nearest_boundary(
                t, tolerance=DRAG_PIXELS * (t1 - t0) / detail.w
            )
            if self._drag is None:
                self.apply(self.state.seek(t))

    def apply(self, effect: str | None) -> None:
        """Carry out an effect returned by ``PlayerState.handle``."""
        if effect in ("save", "save_and_quit") and not self.save():
            return  # nothing written: the edits stay, unsaved, and the player stays open
        if effect in ("quit", "save_and_quit"):
            self.running = False
        if self.feed is None:
            return
        if effect in ("play",) or (effect == "seek" and self.state.playing):
            self.feed.play(self.state.cursor)
        elif effect in ("pause", "quit", "save_and_quit") or (
            effect == "seek" and not self.state.playing
        ):
            self.feed.stop()

    def save(self) -> bool:
        """Write the corrected labels beside the recording, where training looks for them; a
        failure is shown in the status line and the edits are kept."""
        if not self.session.writable:
            self.state.message = (
                "cannot save: this result belongs to another recording (shown with --force)"
            )
            return False
        try:
            self.saved = save_labels(self.state.labels, self.session.stem)
        except (OcmlError, OSError) as exc:
            self.state.message = f"cannot save: {exc}"
            return False
        txt, js = self.saved
        self.state.message = f"saved {txt.name} and {js.name} beside {self.session.media.name}"
        return True

    def step(self, surface: pygame.Surface) -> None:
        """One frame: apply the pending events, follow the audio, draw."""
        for event in pygame.event.get():
            self.handle_event(event, surface.get_size())
        self.tick()
        self.draw(surface)

    def tick(self) -> None:
        """Follow the audio: the cursor is the mixer's sample position while playing."""
        if self.feed is None or not self.state.playing:
            return
        self.feed.update()
        self.state.cursor = min(self.feed.position(), self.session.duration)
        if not self.feed.playing:
            self.state.playing = False


def start_audio(
    session: Session, *, no_sound: Callable[[str], None] | None = None
) -> tuple[AudioSource, MixerFeed | SilentFeed]:
    """A streaming feed of the session's media on the mixer (mono 16-bit at 16 kHz); where no
    sound device opens, a ``SilentFeed`` that keeps time instead, and ``no_sound`` is told why."""
    source = AudioSource.for_file(str(session.media))
    problem = open_mixer()
    if problem is None:
        return source, MixerFeed(source)
    if no_sound is not None:
        no_sound(problem)
    return source, SilentFeed(session.duration)


def open_mixer() -> str | None:
    """Open ``pygame.mixer`` mono 16-bit at 16 kHz; SDL's reason when no sound device opens.

    libasound prints lines of its own while SDL probes for a device; they are passed on only if
    the mixer opened (else SDL's reason says what failed).
    """
    pygame.mixer.pre_init(frequency=SAMPLE_RATE, size=-16, channels=1, buffer=1024)
    with held_stderr() as printed:
        try:
            pygame.mixer.init()
            problem = None
        except pygame.error as exc:
            problem = str(exc) or "SDL opened no audio device"
    if problem is None:
        os.write(2, printed[0])
    return problem


def open_window(size: tuple[int, int]) -> pygame.Surface:
    """The player's window; ``NoDisplay`` when there is no display to open it on.

    Without ``SDL_VIDEODRIVER``, SDL falls back to its invisible ``offscreen`` driver where no
    display answers, so that is refused too: a player nobody can see would wait for ever. What
    the display libraries print while SDL probes them is passed on only if a window opens.
    """
    shown = ", ".join(
        f"{name}={os.environ[name]!r}" if os.environ.get(name) else f"{name} not set"
        for name in ("DISPLAY", "WAYLAND_DISPLAY")
    )
    advice = "run it on a desktop or over ssh -X, or draw one frame with --screenshot"
    with held_stderr() as printed:
        try:
            pygame.display.init()
        except pygame.error as exc:
            problem: str | None = f"{exc}; {shown}"
        else:
            invisible = pygame.display.get_driver() in HEADLESS_DRIVERS
            problem = shown if invisible and not os.environ.get("SDL_VIDEODRIVER") else None
    if problem is not None:
        raise NoDisplay(f"no display to open the player window on ({problem}): {advice}")
    os.write(2, printed[0])
    try:
        return pygame.display.set_mode(size, pygame.RESIZABLE)
    except pygame.error as exc:
        raise NoDisplay(f"cannot open the player window: {exc} ({shown}): {advice}") from None


@contextmanager
def held_stderr() -> Iterator[list[bytes]]:
    """File descriptor 2 into a temporary file for the block; what reached it is in the list
    afterwards. SDL's drivers (libasound, libwayland) print there, not to ``sys.stderr``."""
    sys.stderr.flush()
    printed: list[bytes] = []
    with tempfile.TemporaryFile() as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield printed
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            printed.append(held.read())


def run(
    session: Session,
    *,
    size: tuple[int, int] = (1280, 720),
    at: float = 0.0,
    max_frames: int | None = None,
    no_sound: Callable[[str], None] | None = None,
) -> PlayerUI:
    """Open the window at ``at`` seconds and run until the user quits (or ``max_frames`` frames).

    ``no_sound`` is told, once, why no sound device opened; playback then keeps time silently.
    """
    try:
        open_window(size)
        pygame.font.init()
        source, feed = start_audio(session, no_sound=no_sound)
        pygame.display.set_caption(f"ocml play — {session.media.name}")
        ui = PlayerUI(session, source=source, feed=feed)
        ui.state.seek(at)
        clock = pygame.time.Clock()
        frames = 0
        while ui.running and (max_frames is None or frames < max_frames):
            ui.step(pygame.display.get_surface())
            pygame.display.flip()
            clock.tick(FPS)
            frames += 1
        feed.stop()
        return ui
    finally:
        pygame.quit()


def screenshot(
    session: Session, out: Path, *, at: float = 0.0, size: tuple[int, int] = (1280, 720)
) -> Path:
    """Render one frame with the cursor at ``at`` seconds to ``out`` (PNG), without a display."""
    headless()
    pygame.display.init()
    pygame.font.init()
    try:
        surface = pygame.display.set_mode(size)
        ui = PlayerUI(session, source=AudioSource.for_file(str(session.media)))
        ui.state.seek(at)
        ui.draw(surface)
        out.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(surface, str(out))
        return out
    finally:
        pygame.quit()
