"""`ocml-train spectrograms`: recordings → fixed-size log-mel windows with per-frame labels, as npz shards.

Features come from the pipeline's own chunked generator (``pipeline.decode.stream`` →
``pipeline.features.stream_logmel``), so training sees exactly what inference sees. A shard holds
``x`` float16 ``[windows, frames, n_mels]``, ``y`` uint8 ``[windows, frames]`` (255 where the
recording is unlabelled) and ``source`` (the recording each window came from); training streams
them back one shard at a time (``load_shard`` in ``models.train.Examples``, fed to ``tf.data``), so
data sets larger than memory work.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocml.models.datasets import Item, check_against_audio, frame_labels
from ocml.models.errors import TrainingInputError
from ocml.pipeline.checks import check_int
from ocml.pipeline.features import FeatureConfig, stream_logmel

log = logging.getLogger(__name__)

UNLABELLED = 255


@dataclass(frozen=True)
class ShardSpec:
    """Window length and hop in frames, and how many windows go into one shard."""

    window: int = 1000
    hop: int = 1000
    per_shard: int = 64

    def __post_init__(self) -> None:
        for name in ("window", "hop", "per_shard"):
            check_int(getattr(self, name), name=name)


def recording_features(path: Path, cfg: FeatureConfig) -> np.ndarray:
    """Log-mel ``[frames, n_mels]`` of one recording through the pipeline's streaming path."""
    from ocml.pipeline.decode import stream

    chunks = list(stream_logmel(stream(str(path), sample_rate=cfg.sample_rate), cfg))
    return np.concatenate(chunks) if chunks else np.zeros((0, cfg.n_mels), np.float32)


def windows(
    x: np.ndarray, y: np.ndarray, spec: ShardSpec
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Windows of ``spec.window`` frames every ``spec.hop`` frames, plus one aligned to the end."""
    n = len(x)
    if n < spec.window:
        return
    starts = list(range(0, n - spec.window + 1, spec.hop))
    if starts[-1] != n - spec.window:
        starts.append(n - spec.window)
    for s in starts:
        yield x[s : s + spec.window], y[s : s + spec.window]


def write_shards(
    items: list[Item],
    out: Path,
    cfg: FeatureConfig,
    spec: ShardSpec,
    *,
    png: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, object]:
    """Write ``shard-NNNNN.npz`` files and ``index.json`` (feature config, spec, counts) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    buf_x: list[np.ndarray] = []
    buf_y: list[np.ndarray] = []
    buf_src: list[str] = []
    shards: list[str] = []
    skipped: list[str] = []
    frames = speech = 0

    def flush() -> None:
        if not buf_x:
            return
        name = f"shard-{len(shards):05d}.npz"
        np.savez_compressed(
            out / name,
            x=np.stack(buf_x).astype(np.float16),
            y=np.stack(buf_y),
            source=np.array(buf_src),
        )
        shards.append(name)
        buf_x.clear()
        buf_y.clear()
        buf_src.clear()

    for i, item in enumerate(items):
        x = recording_features(item.audio, cfg)
        if item.labels is not None:
            check_against_audio(item.labels, _duration(item.audio), item.audio)
            y = frame_labels(item.labels.speech, len(x), cfg)
            speech += int(y.sum())
        else:
            y = np.full(len(x), UNLABELLED, np.uint8)
        if len(x) < spec.window:
            log.warning(
                "%s: %d frames, shorter than one window of %d; skipped",
                item.audio,
                len(x),
                spec.window,
            )
            skipped.append(str(item.audio))
            continue
        frames += len(x)
        for k, (wx, wy) in enumerate(windows(x, y, spec)):
            buf_x.append(wx)
            buf_y.append(wy)
            buf_src.append(item.audio.name)
            if png:
                write_png(out / "png" / f"{item.audio.stem}-{k:04d}.png", wx, wy)
            if len(buf_x) == spec.per_shard:
                flush()
        if progress:
            progress(i + 1, len(items))
    flush()
    if not shards:
        raise TrainingInputError(
            f"no recording in the dataset is at least {spec.window} frames long"
        )
    index = {
        "features": cfg.to_dict(),
        "window": spec.window,
        "hop": spec.hop,
        "shards": shards,
        "recordings": len(items) - len(skipped),
        "skipped": skipped,
        "frames": frames,
        "hours": round(frames * cfg.hop_length / cfg.sample_rate / 3600, 4),
        "speech_fraction": round(speech / max(frames, 1), 4),
        "labels": dict(Counter(item.label_kind for item in items)),
    }
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return index


def _duration(path: Path) -> float:
    """The recording's duration as the pipeline's decoder reports it."""
    from ocml.pipeline.decode import probe

    return probe(str(path)).duration


def write_png(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """A window as an image a person can look at: the spectrogram with the labels as a bar below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (a, b) = plt.subplots(
        2, 1, figsize=(8, 3), sharex=True, gridspec_kw={"height_ratios": [6, 1]}
    )
    a.imshow(x.T.astype(np.float32), origin="lower", aspect="auto", cmap="magma")
    a.set_ylabel("mel band")
    b.imshow(
        np.where(y == UNLABELLED, 0.5, y)[None, :].astype(np.float32),
        aspect="auto",
        cmap="Greens",
        vmin=0,
        vmax=1,
    )
    b.set_yticks([])
    b.set_xlabel("frame (10 ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def read_index(folder: Path) -> dict[str, object]:
    """The shard folder's ``index.json``; ``ValueError`` naming the folder when it is missing."""
    index = folder / "index.json"
    if not index.is_file():
        raise TrainingInputError(
            f"{folder}: not a spectrogram folder (no index.json); run `ocml-train spectrograms` first"
        )
    return json.loads(index.read_text())


def load_shard(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One shard's windows (float32) and labels."""
    with np.load(path) as data:
        return data["x"].astype(np.float32), data["y"]
