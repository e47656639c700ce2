"""Audio for the player: decoded blocks on demand, streamed to ``pygame.mixer`` in short chunks.

The recording is never held whole: ``AudioSource`` keeps a few fixed-size blocks from
``pipeline.decode.stream`` (reopening the stream at the wanted block for a seek backwards or far
ahead), and ``MixerFeed`` keeps
one chunk playing and one queued on a mixer channel. ``AudioClock`` turns "which chunk is
playing" into a sample position, so the cursor follows the samples the mixer consumed.
``SilentFeed`` stands in for ``MixerFeed`` where there is no sound device: the same clock, run
by the wall clock alone.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
CHUNK_SECONDS = 0.25  # mixer chunk: one playing, one queued → ~0.5 s of audio in the mixer


def fixed_blocks(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Re-cut a stream of sample blocks into blocks of exactly ``size`` samples (last may be short)."""
    pending: list[np.ndarray] = []
    have = 0
    for block in blocks:
        pending.append(np.asarray(block, dtype=np.float32))
        have += len(block)
        while have >= size:
            joined = np.concatenate(pending)
            yield joined[:size]
            pending, have = [joined[size:]], have - size
    if have:
        yield np.concatenate(pending)


class AudioSource:
    """Random access to a recording's mono samples, decoding forward and keeping a few blocks.

    ``open_stream(start_seconds)`` returns a fresh block iterator from that time on
    (``pipeline.decode.stream`` bound to the file); a read behind the decoder, or more than the
    cache ahead of it, reopens the stream at the wanted block, so seeks cost one block's decoding.
    """

    def __init__(
        self,
        open_stream: Callable[[float], Iterable[np.ndarray]],
        *,
        sample_rate: int = SAMPLE_RATE,
        block_seconds: float = 10.0,
        cache_blocks: int = 8,
    ) -> None:
        self.open_stream = open_stream
        self.sample_rate = sample_rate
        self.block = int(block_seconds * sample_rate)
        self.cache_blocks = cache_blocks
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._blocks: Iterator[np.ndarray] | None = None
        self._next = 0
        self._end: int | None = None  # index of the first block past the end, once known

    @classmethod
    def for_file(cls, path: str, *, sample_rate: int = SAMPLE_RATE, **kwargs: float) -> AudioSource:
        """A source decoding ``path`` with the pipeline's decoder."""
        from ocml.pipeline.decode import stream

        return cls(
            lambda start: stream(path, sample_rate=sample_rate, block_seconds=10.0, start=start),
            sample_rate=sample_rate,
            **kwargs,
        )

    def _get(self, index: int) -> np.ndarray | None:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        if self._end is not None and index >= self._end:
            return None
        if self._blocks is None or not self._next <= index <= self._next + self.cache_blocks:
            start = index * self.block / self.sample_rate
            self._blocks, self._next = fixed_blocks(self.open_stream(start), self.block), index
        for block in self._blocks:
            self._next += 1
            if self._next - 1 >= index - self.cache_blocks // 2:
                self._cache[self._next - 1] = block
                while len(self._cache) > self.cache_blocks:
                    self._cache.popitem(last=False)
            if self._next - 1 == index:
                return block
        self._end, self._blocks = self._next, None
        return None

    def samples(self, start: int, count: int) -> np.ndarray:
        """``count`` samples from sample ``start`` (shorter at the end of the recording)."""
        out = []
        pos, end = max(start, 0), max(start, 0) + count
        while pos < end:
            block = self._get(pos // self.block)
            if block is None:
                break
            offset = pos - (pos // self.block) * self.block
            piece = block[offset : offset + end - pos]
            if len(piece) == 0:
                break
            out.append(piece)
            pos += len(piece)
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def seconds(self, t0: float, t1: float) -> np.ndarray:
        """Samples between ``t0`` and ``t1`` seconds."""
        start = int(round(t0 * self.sample_rate))
        return self.samples(start, int(round(t1 * self.sample_rate)) - start)


@dataclass
class AudioClock:
    """Sample position of playback from the chunk the mixer is playing and when it began.

    A chunk begins exactly where the previous one ended (the mixer plays them back to back), so
    only the first chunk after a seek is anchored to the wall clock.
    """

    sample_rate: int
    chunk_start: int = 0
    chunk_len: int = 0
    began: float = 0.0

    def begin(self, sample: int, length: int, now: float) -> None:
        """Playback (re)started at ``sample`` with a chunk of ``length`` samples at time ``now``."""
        self.chunk_start, self.chunk_len, self.began = sample, length, now

    def next_chunk(self, length: int) -> None:
        """The mixer moved on to the following chunk, of ``length`` samples."""
        self.began += self.chunk_len / self.sample_rate
        self.chunk_start += self.chunk_len
        self.chunk_len = length

    def position(self, now: float) -> int:
        """The sample being played at time ``now``."""
        elapsed = round((now - self.began) * self.sample_rate)
        return self.chunk_start + min(max(elapsed, 0), self.chunk_len)


class MixerFeed:
    """Plays an ``AudioSource`` on one ``pygame.mixer`` channel, a chunk at a time.

    Call ``update()`` at least every ``CHUNK_SECONDS``; it keeps one chunk queued and advances the
    clock. ``pygame.mixer`` must be initialised mono 16-bit at the source's rate.
    """

    def __init__(
        self,
        source: AudioSource,
        *,
        chunk_seconds: float = CHUNK_SECONDS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import pygame

        self.pygame = pygame
        self.source = source
        self.chunk = int(chunk_seconds * source.sample_rate)
        self.now = clock or time.perf_counter
        self.channel = pygame.mixer.Channel(0)
        self.audio_clock = AudioClock(source.sample_rate)
        self.playing = False
        self._next_sample = 0
        self._current = None
        self._queued = None

    def _sound(self) -> tuple[object, int] | None:
        data = self.source.samples(self._next_sample, self.chunk)
        if len(data) == 0:
            return None
        pcm = np.clip(np.round(data * 32767), -32768, 32767).astype(np.int16)
        self._next_sample += len(data)
        return self.pygame.mixer.Sound(buffer=pcm.tobytes()), len(data)

    def play(self, seconds: float) -> None:
        """Start playing at ``seconds``."""
        self.stop()
        self._next_sample = int(round(seconds * self.source.sample_rate))
        first = self._sound()
        if first is None:
            self.audio_clock.begin(self._next_sample, 0, self.now())
            return
        self._current = first
        self.channel.play(first[0])
        self.audio_clock.begin(self._next_sample - first[1], first[1], self.now())
        self.playing = True
        self._queue_next()

    def _queue_next(self) -> None:
        self._queued = self._sound()
        if self._queued is not None:
            self.channel.queue(self._queued[0])

    def stop(self) -> None:
        """Stop playback; the position stays where it was."""
        if self.playing:
            pos = self.position()
            self.channel.stop()
            self.audio_clock.begin(pos, 0, self.now())
        self.playing = False
        self._current = self._queued = None

    def update(self) -> None:
        """Keep the queue filled and the clock on the chunk the mixer is playing."""
        if not self.playing:
            return
        playing = self.channel.get_sound()
        if self._queued is not None and playing is self._queued[0]:
            self._current = self._queued
            self.audio_clock.next_chunk(self._current[1])
            self._queue_next()
        elif playing is None:
            if self._queued is not None:  # both chunks ran out before we looked: go on from there
                self.play(self._next_sample / self.source.sample_rate)
                return
            self.audio_clock.begin(self.audio_clock.position(self.now()), 0, self.now())
            self.playing = False

    def position(self) -> float:
        """Playback position in seconds."""
        return self.audio_clock.position(self.now()) / self.source.sample_rate


class SilentFeed:
    """Plays nothing but keeps time as ``MixerFeed`` does: where no sound device opens, the cursor
    still moves at real speed from where playback started to ``duration`` seconds."""

    def __init__(
        self,
        duration: float,
        *,
        sample_rate: int = SAMPLE_RATE,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.end = int(round(duration * sample_rate))
        self.now = clock or time.perf_counter
        self.audio_clock = AudioClock(sample_rate)
        self.playing = False

    def play(self, seconds: float) -> None:
        """Start "playing" at ``seconds``."""
        start = min(max(int(round(seconds * self.sample_rate)), 0), self.end)
        self.audio_clock.begin(start, self.end - start, self.now())
        self.playing = start < self.end

    def stop(self) -> None:
        """Stop; the position stays where it was."""
        if self.playing:
            self.audio_clock.begin(self.audio_clock.position(self.now()), 0, self.now())
        self.playing = False

    def update(self) -> None:
        """Stop at the end of the recording."""
        if self.playing and self.audio_clock.position(self.now()) >= self.end:
            self.stop()

    def position(self) -> float:
        """Playback position in seconds."""
        return self.audio_clock.position(self.now()) / self.sample_rate
