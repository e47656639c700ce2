"""Evaluation plots: a timeline per file and a precision/recall curve over thresholds (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ocml.models.datasets import frame_labels
from ocml.models.errors import TrainingInputError
from ocml.pipeline.features import FeatureConfig
from ocml.pipeline.postprocess import SegmentParams

if TYPE_CHECKING:  # scoring imports the plots' caller; the type alone is needed here
    from ocml.models.scoring import FileRun

POOLED_COLUMNS = 2000
"""Spectrogram columns drawn per timeline: long files are max-pooled down to this (fast, small)."""
ROW_SECONDS = 30.0
"""Seconds of recording per row of the worst-file error figure."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _spans(mask: np.ndarray, hop: float) -> list[tuple[float, float]]:
    """(start, width) pairs of the runs of ones in ``mask``, for ``broken_barh``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(a * hop, (b - a) * hop) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def timeline(
    run: FileRun,
    cfg: FeatureConfig,
    path: Path,
    *,
    decisions: list[tuple[float, float]] | None = None,
) -> Path:
    """Spectrogram, speech probability, predicted (``decisions``, default: the run's segments) and
    reference speech of one evaluated file."""
    from ocml.models.spectrograms import recording_features

    plt = _pyplot()
    hop = cfg.grid.hop
    x = recording_features(run.item.audio, cfg)
    step = max(1, len(x) // POOLED_COLUMNS)
    pooled = x[: len(x) // step * step].reshape(-1, step, x.shape[1]).max(axis=1)
    n = len(run.probabilities)
    ref = frame_labels(run.item.labels.speech, n, cfg)
    hyp = frame_labels(run.segments if decisions is None else decisions, n, cfg)
    t = cfg.grid.times(n)
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


def pr_curve(runs: list[FileRun], cfg: FeatureConfig, path: Path) -> Path:
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


def error_rows(
    run: FileRun,
    cfg: FeatureConfig,
    path: Path,
    *,
    decisions: list[tuple[float, float]],
    params: SegmentParams,
    title: str,
    seconds_per_row: float = ROW_SECONDS,
) -> Path:
    """The whole file in rows of ``seconds_per_row``: speech probability against the thresholds,
    reference, decisions, false alarms and misses — for reading where a file goes wrong."""
    if not (isinstance(seconds_per_row, (int, float)) and seconds_per_row > 0):
        raise TrainingInputError(
            f"seconds_per_row must be a positive number, got {seconds_per_row!r}"
        )
    plt = _pyplot()
    hop = cfg.grid.hop
    n = len(run.probabilities)
    ref = frame_labels(run.item.labels.speech, n, cfg).astype(bool)
    hyp = frame_labels(decisions, n, cfg).astype(bool)
    t = cfg.grid.times(n)
    rows = max(1, int(np.ceil(n * hop / seconds_per_row)))
    fig, axes = plt.subplots(rows, 1, figsize=(16, 1.9 * rows + 0.6), squeeze=False)
    bars = (
        ("reference", ref, "tab:green"),
        ("decision", hyp, "tab:blue"),
        ("false alarm", hyp & ~ref, "tab:red"),
        ("miss", ref & ~hyp, "tab:orange"),
    )
    for row, ax in enumerate(axes[:, 0]):
        lo, hi = row * seconds_per_row, (row + 1) * seconds_per_row
        sel = (t >= lo) & (t < hi)
        ax.plot(t[sel], run.probabilities[sel], lw=0.7, color="black")
        ax.axhline(params.threshold, lw=0.6, ls="--", color="tab:purple")
        ax.axhline(params.neg_threshold, lw=0.6, ls=":", color="tab:purple")
        start = t[sel][0] - hop / 2 if sel.any() else lo
        for k, (_, mask, color) in enumerate(bars):
            spans = [(start + a, w) for a, w in _spans(mask[sel], hop)]
            ax.broken_barh(spans, (-0.14 * (k + 1), 0.11), color=color)
        ax.set_xlim(lo, hi)
        ax.set_ylim(-0.14 * len(bars) - 0.02, 1.02)
        ax.set_yticks(
            [0, 0.5, 1, *(-0.14 * (k + 1) + 0.055 for k in range(len(bars)))],
            ["0", "0.5", "1", *(label for label, _, _ in bars)],
            fontsize=6,
        )
        ax.margins(x=0)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("seconds")
    handles = [
        plt.Line2D([], [], color="black", lw=0.7, label="P(speech)"),
        plt.Line2D([], [], color="tab:purple", ls="--", lw=0.6, label="threshold"),
        plt.Line2D([], [], color="tab:purple", ls=":", lw=0.6, label="neg_threshold"),
        *(plt.Rectangle((0, 0), 1, 1, color=c, label=label) for label, _, c in bars),
    ]
    fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_plots(
    runs: list[FileRun], cfg: FeatureConfig, out: Path, *, params: SegmentParams
) -> list[Path]:
    """A timeline per file (in a folder per data set), the precision/recall curve over all files,
    and for the worst file by F1 of each set (and of the pool) the error rows; decisions are
    ``params`` applied to the stored probabilities. Returns the written paths."""
    decisions = [r.binarize(params) for r in runs]
    scores = [r.score(d).metrics() for r, d in zip(runs, decisions, strict=True)]
    paths = [
        timeline(r, cfg, out / r.dataset / f"{r.item.audio.stem}.png", decisions=d)
        for r, d in zip(runs, decisions, strict=True)
    ]
    paths.append(pr_curve(runs, cfg, out / "precision_recall.png"))
    worst: dict[str, int] = {}
    for i, (r, m) in enumerate(zip(runs, scores, strict=True)):
        for group in (r.dataset, "pool"):
            if group not in worst or m["f1"] < scores[worst[group]]["f1"]:
                worst[group] = i
    for group, i in worst.items():
        if group == "pool" and len({r.dataset for r in runs}) < 2:
            continue
        r, m = runs[i], scores[i]
        paths.append(
            error_rows(
                r,
                cfg,
                out / f"worst-{group}-{r.item.audio.stem}.png",
                decisions=decisions[i],
                params=params,
                title=f"worst file of {group}: {r.key} — F1 {m['f1']:.3f}, precision "
                f"{m['precision']:.3f}, recall {m['recall']:.3f}, DER (collar) "
                f"{m['der_collar']:.3f}",
            )
        )
    return paths
