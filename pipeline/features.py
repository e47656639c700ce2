"""Log-mel features: the one feature contract shared by training and inference.

``logmel`` computes a whole recording; ``stream_logmel`` computes the same frames block by block,
carrying the unconsumed samples between blocks, so memory does not grow with the recording.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ocml.pipeline.checks import check_int, check_number

SUB_BLOCK_FRAMES = 512
"""Frames transformed at a time, so the FFT, power and filterbank buffers stay in cache."""

WINDOWS = ("hann",)
MEL_SCALES = ("htk",)


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel parameters; a model stores these in its metadata and the pipeline checks them.

    ``window`` is the periodic Hann window of ``win_length`` samples, zero-padded to ``n_fft``;
    the mel filters are triangles on the HTK mel scale with unit peak (no area normalisation)
    applied to the power spectrum; the log is ``ln(mel_power + log_offset)``.
    """

    sample_rate: int = 16000
    win_length: int = 400
    window: str = "hann"
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 60.0
    fmax: float = 7800.0
    mel_scale: str = "htk"
    log_offset: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("sample_rate", "win_length", "n_fft", "hop_length", "n_mels"):
            check_int(getattr(self, name), name=f"feature {name}")
        for name in ("fmin", "fmax", "log_offset"):
            check_number(getattr(self, name), name=f"feature {name}")
        if self.window not in WINDOWS:
            raise ValueError(f"feature window must be one of {WINDOWS}, got {self.window!r}")
        if self.mel_scale not in MEL_SCALES:
            raise ValueError(
                f"feature mel_scale must be one of {MEL_SCALES}, got {self.mel_scale!r}"
            )
        if self.win_length > self.n_fft:
            raise ValueError(
                f"feature win_length {self.win_length!r} is longer than n_fft {self.n_fft!r}"
            )
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(
                f"feature fmin {self.fmin!r} and fmax {self.fmax!r} must satisfy "
                f"0 <= fmin < fmax <= sample_rate/2 ({self.sample_rate / 2})"
            )
        if not self.log_offset > 0:
            raise ValueError(f"feature log_offset must be > 0, got {self.log_offset!r}")
        empty = int(np.count_nonzero(~_filterbank(self).any(axis=0)))
        if empty:
            raise ValueError(
                f"feature n_mels {self.n_mels!r} between {self.fmin!r} and {self.fmax!r} Hz leaves "
                f"{empty} mel band(s) without an FFT bin at n_fft {self.n_fft!r}: use fewer mels or "
                "a longer n_fft"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureConfig:
        """Build from a metadata mapping; unknown keys and bad values raise ``ValueError``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"feature configuration must be a mapping, got {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown feature keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form stored in a model's ``assets/ocml.json``."""
        return dataclasses.asdict(self)

    def mismatches(
        self, other: FeatureConfig, *, names: tuple[str, str] = ("model", "pipeline")
    ) -> list[str]:
        """One line per differing field, e.g. ``"n_mels: model 40, pipeline 64"``."""
        mine, theirs = names
        return [
            f"{f.name}: {mine} {getattr(self, f.name)!r}, {theirs} {getattr(other, f.name)!r}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]

    @property
    def grid(self) -> FrameGrid:
        """Where this configuration's frames lie in time (hop and centre of frame 0)."""
        return FrameGrid(
            hop_length=self.hop_length, centre=self.win_length / 2, sample_rate=self.sample_rate
        )

    def frames(self, n_samples: int) -> int:
        """Number of whole windows in ``n_samples`` samples (0 when shorter than one window)."""
        return (
            0
            if n_samples < self.win_length
            else 1 + (n_samples - self.win_length) // self.hop_length
        )


@dataclass(frozen=True)
class FrameGrid:
    """The time of every frame: frame i starts at sample i × hop_length, its time is its centre.

    With the pipeline's features that is i × 10 ms + 12.5 ms. Post-processing, evaluation, the
    player and the plots all place frames with this one definition, taken from ``FeatureConfig``.
    """

    hop_length: int
    centre: float
    """Samples from a frame's first sample to its centre (half the window)."""
    sample_rate: int

    @property
    def hop(self) -> float:
        """Seconds between frames."""
        return self.hop_length / self.sample_rate

    @property
    def offset(self) -> float:
        """Seconds from the start of the recording to the centre of frame 0."""
        return self.centre / self.sample_rate

    def times(self, n_frames: int, *, first: int = 0) -> np.ndarray:
        """Centre time in seconds of each of ``n_frames`` frames, starting with frame ``first``."""
        return (
            np.arange(first, first + n_frames) * self.hop_length + self.centre
        ) / self.sample_rate

    def seconds(self, n_frames: int) -> float:
        """How long ``n_frames`` frames last (``n_frames`` hops)."""
        return n_frames * self.hop

    def count(self, seconds: float) -> int:
        """Whole frames (hops) in ``seconds``."""
        return max(math.floor(seconds / self.hop + 1e-9), 0)

    def index(self, t: float) -> int:
        """The frame whose centre is nearest to time ``t`` (0 before the first centre)."""
        return max(round((t - self.offset) / self.hop), 0)

    def covering(self, t0: float, t1: float, n_frames: int) -> slice:
        """The frames that draw ``t0..t1`` edge to edge, within ``n_frames``.

        From the last frame centred at or before ``t0`` to the first centred at or after ``t1``,
        so a curve through the frame centres spans the whole window.
        """
        first = min(max(math.floor((t0 - self.offset) / self.hop), 0), n_frames)
        last = min(math.ceil((t1 - self.offset) / self.hop) + 1, n_frames)
        return slice(first, max(last, first))


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    """HTK-scale triangular filters, float32 ``[n_fft // 2 + 1, n_mels]`` (power spectrum → mel)."""
    return _filterbank(cfg).copy()


@lru_cache(maxsize=8)
def _filterbank(cfg: FeatureConfig) -> np.ndarray:
    bins = np.arange(cfg.n_fft // 2 + 1) * cfg.sample_rate / cfg.n_fft
    edges = _mel_to_hz(
        np.linspace(
            _hz_to_mel(np.float64(cfg.fmin)), _hz_to_mel(np.float64(cfg.fmax)), cfg.n_mels + 2
        )
    )
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    out = np.ascontiguousarray(weights.T, dtype=np.float32)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=8)
def _window(cfg: FeatureConfig) -> np.ndarray:
    """The periodic Hann window of ``win_length`` samples, float32."""
    n = np.arange(cfg.win_length)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.win_length)).astype(np.float32)
    window.flags.writeable = False
    return window


@dataclass(frozen=True)
class _Bands:
    """The filterbank's non-zero weights grouped by mel band: band m sums
    ``power[:, bins[starts[m]:starts[m + 1]]] * weights[...]``."""

    bins: np.ndarray
    weights: np.ndarray
    starts: np.ndarray


@lru_cache(maxsize=8)
def _bands(cfg: FeatureConfig) -> _Bands:
    """The non-zero entries of ``_filterbank(cfg)`` sorted by band (``FeatureConfig`` ensures
    every band has some, so ``reduceat`` never meets an empty band)."""
    fb = _filterbank(cfg)
    band, bins = np.nonzero(fb.T)
    return _Bands(bins, fb[bins, band], np.searchsorted(band, np.arange(cfg.n_mels)))


def _mel_power(power: np.ndarray, bands: _Bands, out: np.ndarray) -> None:
    """``power @ filterbank`` into ``out``, summed band by band in a fixed order per frame.

    Not a BLAS product: BLAS kernels round a row differently by its place in the matrix, so a
    frame's features would depend on how the recording was cut into blocks (seen: 1e-7 apart on
    an AMD EPYC with OpenBLAS 0.3.31). Here a frame's value depends on that frame alone.
    """
    np.add.reduceat(power[:, bands.bins] * bands.weights, bands.starts, axis=1, out=out)


def _as_samples(samples: np.ndarray) -> np.ndarray:
    """A 1-D contiguous float32 view or copy of ``samples``."""
    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise ValueError(f"samples must be 1-D (mono), got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _frames_logmel(samples: np.ndarray, n_frames: int, cfg: FeatureConfig) -> np.ndarray:
    """Log-mel of the first ``n_frames`` frames of a float32 ``samples`` array."""
    out = np.empty((n_frames, cfg.n_mels), dtype=np.float32)
    if n_frames == 0:
        return out
    window, bands = _window(cfg), _bands(cfg)
    stride = samples.strides[0]
    for start in range(0, n_frames, SUB_BLOCK_FRAMES):
        count = min(SUB_BLOCK_FRAMES, n_frames - start)
        frames = np.lib.stride_tricks.as_strided(
            samples[start * cfg.hop_length :],
            shape=(count, cfg.win_length),
            strides=(cfg.hop_length * stride, stride),
            writeable=False,
        )
        spectrum = np.fft.rfft(frames * window, n=cfg.n_fft, axis=1)
        power = np.square(spectrum.real)
        power += np.square(spectrum.imag)
        block = out[start : start + count]
        _mel_power(power, bands, block)
        block += np.float32(cfg.log_offset)
        np.log(block, out=block)
    return out


def logmel(samples: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Log-mel of a whole recording: float32 ``[frames, n_mels]``, frame i starting at i × hop."""
    data = _as_samples(samples)
    return _frames_logmel(data, cfg.frames(len(data)), cfg)


def frame_energy_db(logmel_frames: np.ndarray) -> np.ndarray:
    """Each frame's energy in dB (its mel band powers summed), from ``[frames, n_mels]`` log-mel.

    What post-processing's ``snap_db`` compares a segment's edges with (``pipeline.postprocess``).
    """
    power = np.exp(np.asarray(logmel_frames, np.float32)).sum(axis=1)
    return np.float32(10.0) * np.log10(power)


def stream_logmel(blocks: Iterable[np.ndarray], cfg: FeatureConfig) -> Iterator[np.ndarray]:
    """Log-mel block by block; the chunks concatenate to ``logmel`` of the concatenated blocks.

    Blocks may have any length (empty or shorter than a window included); the samples not yet
    covered by a whole frame are carried to the next block. Only non-empty chunks are yielded.
    """
    tail = np.zeros(0, dtype=np.float32)
    for block in blocks:
        data = _as_samples(block)
        if len(data) == 0:
            continue
        buffer = np.concatenate([tail, data]) if len(tail) else data
        n_frames = cfg.frames(len(buffer))
        if n_frames:
            yield _frames_logmel(buffer, n_frames, cfg)
        tail = buffer[n_frames * cfg.hop_length :].copy()


PIPELINE_FEATURES = FeatureConfig()
"""The features this pipeline computes (a model trained on others is refused): the one place
the player, the plots, post-processing, scoring and training take them from."""
