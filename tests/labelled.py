"""Small labelled folders of speech-like recordings with validation-set style manifests.

Shared by the tests of multi-folder evaluation and calibration; nothing here is a test itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.media import speechlike

SR = 16000
SECONDS = 20.0


def segments(seed: int) -> list[tuple[float, float]]:
    """Speech spans of 0.6–2 s with pauses of 0.4–2 s, deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    out, t = [], float(rng.uniform(1.0, 2.0))
    while t < SECONDS - 2.0:
        end = t + float(rng.uniform(0.6, 2.0))
        out.append((round(t, 3), round(end, 3)))
        t = end + float(rng.uniform(0.4, 2.0))
    return out


def write_recording(folder: Path, name: str, seed: int) -> dict:
    """NAME.flac and NAME.json in ``folder``; returns the manifest entry of the recording."""
    folder.mkdir(parents=True, exist_ok=True)
    speech = segments(seed)
    samples = speechlike(SR, SECONDS, speech, seed=seed, noise_db=-45.0 + 3 * (seed % 4))
    sf.write(folder / f"{name}.flac", samples, SR)
    (folder / f"{name}.json").write_text(
        json.dumps({"duration": SECONDS, "speech": [list(s) for s in speech]})
    )
    return {
        "name": name,
        "audio": f"{name}.flac",
        "snr_db": 5 + 10 * (seed % 3),
        "rt60": None if seed % 2 else 0.6,
        "level": "normal",
        "music": [{"start": 0.0, "end": 0.8}] if seed % 2 else [],
        "events": [{"kind": "click", "start": SECONDS - 1.0, "end": SECONDS - 0.7}],
        "utterances": [
            {"start": s, "role": "second" if i % 3 == 2 else "main"}
            for i, (s, _) in enumerate(speech)
        ],
    }


def labelled_folders(root: Path) -> dict[str, Path]:
    """Folders ``a`` and ``b`` (two recordings each, with manifests) and ``both`` (all four)."""
    for folder, seeds in (("a", (31, 32)), ("b", (33, 34))):
        entries = [write_recording(root / folder, f"{folder}{seed}", seed) for seed in seeds]
        (root / folder / "manifest.json").write_text(json.dumps({"recordings": entries}))
        for seed in seeds:
            write_recording(root / "both", f"{folder}{seed}", seed)
    return {name: root / name for name in ("a", "b", "both")}
