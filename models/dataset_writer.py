"""A synthetic data set on disk: ``synth-NNNNN.flac`` recordings, their labels and the manifest."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import soundfile as sf

from ocml.models.pools import SynthConfig, build_pools
from ocml.models.synth import mix


def speech_minutes(metas: list[dict[str, Any]], key: str) -> dict[str, float]:
    """Minutes of labelled speech per source (or language) over a data set's recordings,
    most first: what the model card reports as the training data's make-up."""
    total: dict[str, float] = {}
    for meta in metas:
        for name, seconds in meta[key].items():
            total[name] = total.get(name, 0.0) + seconds
    return {k: round(v / 60, 1) for k, v in sorted(total.items(), key=lambda kv: -kv[1])}


def write_dataset(
    cfg: SynthConfig, out: Path, *, progress: Callable[[int, int], None] | None = None
) -> dict[str, object]:
    """Build the pools, write ``synth-NNNNN.flac`` + ``.json`` labels and ``manifest.json``."""
    out.mkdir(parents=True, exist_ok=True)
    pools = build_pools(cfg)
    metas, speech_s, total_s = [], 0.0, 0.0
    for i in range(cfg.recordings):
        m = mix(pools, i, cfg)
        name = f"synth-{i:05d}"
        sf.write(out / f"{name}.flac", m.samples, cfg.sample_rate, subtype="PCM_16")
        duration = m.samples.size / cfg.sample_rate
        (out / f"{name}.json").write_text(json.dumps({"duration": duration, "speech": m.speech}))
        metas.append(m.meta)
        speech_s += sum(e - s for s, e in m.speech)
        total_s += duration
        if progress:
            progress(i + 1, cfg.recordings)
    manifest = {
        "config": asdict(cfg),
        "pools": pools.summary(),
        "hours": round(total_s / 3600, 3),
        "speech_fraction": round(speech_s / max(total_s, 1e-9), 4),
        "speech_minutes_by_source": speech_minutes(metas, "speech_seconds_by_source"),
        "speech_minutes_by_language": speech_minutes(metas, "speech_seconds_by_language"),
        "recordings": metas,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
