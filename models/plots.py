"""Evaluation plots: a timeline per file and a precision/recall curve over thresholds (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ocml.models.datasets import frame_labels
from ocml.pipeline.features import FeatureConfig

POOLED_COLUMNS = 2000
"""Spectrogram columns drawn per timeline: long files are max-pooled down to this (fast, small)."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _spans(mask: np.ndarray, hop: float) -> list[tuple[float, float]]:
    """(start, width) pairs of the runs of ones in ``mask``, for ``broken_barh``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(a * hop, (b - a) * hop) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def timeline(run: Any, cfg: FeatureConfig, path: Path) -> Path:
    """Spectrogram, speech probability, predicted and reference speech of one evaluated file."""
    from ocml.models.spectrograms import recording_features

    plt = _pyplot()
    hop = cfg.hop_length / cfg.sample_rate
    x = recording_features(run.item.audio, cfg)
    step = max(1, len(x) // POOLED_COLUMNS)
    pooled = x[: len(x) // step * step].reshape(-1, step, x.shape[1]).max(axis=1)
    n = len(run.probabilities)
    ref = frame_labels(run.item.labels.speech, n, cfg)
    hyp = frame_labels(run.segments, n, cfg)
    t = np.arange(n) * hop
    fig, axes = plt.subplots(
        3, 1, figsize=(14, 6), sharex=True, gridspec_kw={"height_ratios": [4, 2, 1]}
    )
    axes[0].imshow(
        pooled.T,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0, len(x) * hop, 0, x.shape[1]),
    )
    axes[0].set_ylabel("mel band")
    axes[0].set_title(run.item.audio.name)
    axes[1].plot(t, run.probabilities, lw=0.6)
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("P(speech)")
    axes[2].broken_barh(_spans(hyp, hop), (1.1, 0.8), color="tab:blue")
    axes[2].broken_barh(_spans(ref, hop), (0.1, 0.8), color="tab:green")
    axes[2].set_yticks([0.5, 1.5], ["reference", "predicted"])
    axes[2].set_xlabel("seconds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def pr_curve(runs: list[Any], cfg: FeatureConfig, path: Path) -> Path:
    """Frame precision/recall of the raw probabilities thresholded at 0.01 … 0.99, pooled over files."""
    plt = _pyplot()
    probs = np.concatenate([r.probabilities for r in runs])
    ref = np.concatenate(
        [frame_labels(r.item.labels.speech, len(r.probabilities), cfg) for r in runs]
    ).astype(bool)
    thresholds = np.linspace(0.01, 0.99, 99)
    precision, recall = [], []
    for th in thresholds:
        hyp = probs >= th
        tp = np.sum(hyp & ref)
        precision.append(tp / max(1, hyp.sum()))
        recall.append(tp / max(1, ref.sum()))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(recall, precision)
    for th in (0.3, 0.5, 0.7):
        i = int(np.argmin(np.abs(thresholds - th)))
        ax.annotate(f"{th}", (recall[i], precision[i]))
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("frame precision/recall over thresholds")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_plots(runs: list[Any], cfg: FeatureConfig, out: Path) -> list[Path]:
    """One timeline per file plus the precision/recall curve; returns the written paths."""
    paths = [timeline(r, cfg, out / f"{r.item.audio.stem}.png") for r in runs]
    paths.append(pr_curve(runs, cfg, out / "precision_recall.png"))
    return paths
