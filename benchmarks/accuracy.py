"""Accuracy of our model against the peers on the labelled validation sets, each and pooled, in one run.

Systems, all scored by ``models.scoring.compare`` on the same 10 ms frame grid (F1, precision,
recall, DER with no collar and with a 0.25 s collar), on every folder and on the pool of all:

- our model through the whole pipeline with its shipped post-processing (``ocml segment``'s
  default), and with the pipeline's generic defaults (``SegmentParams()``, threshold 0.5);
- Silero VAD (its ONNX model from the installed ``silero-vad`` package, run with onnxruntime the
  way its ``OnnxWrapper`` does), thresholded at 0.5, through the defaults of its own
  ``get_speech_timestamps`` (``SILERO_OWN``, applied by our post-processing) and through our
  generic post-processing;
- TEN VAD (``ten-vad``, hops of 256 samples) the same three ways: thresholded at 0.5 (exactly its
  own flag), through Silero's ``get_speech_timestamps`` defaults (``SILERO_OWN``: it has no
  post-processing of its own, so these are the fair comparison) and through our generic one;
- WebRTC VAD (``webrtcvad-wheels``) modes 0–3, raw and through our generic post-processing; the
  table shows the best mode by pooled F1, the JSON all of them;
- FFmpeg ``silencedetect`` with Opencast's shipped settings (−40 dB, 10 s silences, voice under
  60 s dropped, 2 s kept before speech).

× real time is audio seconds ÷ processing seconds over each folder, one thread each. Our rows
include decoding (the whole ``segment_file``); the peers get decoded 16 kHz samples (decoding is
outside their timed region), except ffmpeg, which decodes for itself.

Run:  python benchmarks/accuracy.py [DATA ...] [--model PATH] [--markdown OUT.md] [--json OUT.json]
      (default DATA: ../shared/data/dev, ../shared/data/val and data/realset, the
      real-recordings yardstick that `make realset` builds from held-out catalogue sources)
Needs: ``pip install webrtcvad-wheels onnxruntime imageio-ffmpeg ten-vad`` (or an ``ffmpeg`` on
PATH; ``ten-vad`` needs Debian's ``libc++1``) and ``silero-vad`` installed with ``--no-deps`` (its
torch code is never imported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.peers import (  # noqa: E402
    CFG,
    SR,
    Spans,
    load_audio,
    opencast_silencedetect,
    silero_probabilities,
    ten_vad_probabilities,
    webrtc_probabilities,
)
from ocml.models.conditions import by_condition, load_conditions  # noqa: E402
from ocml.models.evaluate import DataSet, load_data_sets  # noqa: E402
from ocml.models.scoring import COLLAR, Counts, FileRun, pool  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REALSET = "realset"
"""The real-recordings yardstick's folder name (``make realset`` builds it in ``data/``)."""
DEFAULT_DATA = (SHARED / "dev", SHARED / "val", ROOT / "data" / REALSET)
COLUMNS = ("f1", "precision", "recall", "der", "der_collar", "x_realtime")


def raw_spans(probs: np.ndarray, threshold: float = 0.5) -> Spans:
    """Frames at or above ``threshold`` as intervals (each frame covers its 10 ms)."""
    mask = np.concatenate([[0], (probs >= threshold).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(mask))
    hop, off = CFG.grid.hop, CFG.grid.offset - CFG.grid.hop / 2
    return [(off + a * hop, off + b * hop) for a, b in zip(edges[::2], edges[1::2], strict=True)]


SILERO_OWN = {
    "threshold": 0.5,
    "neg_threshold": 0.35,
    "min_speech": 0.25,
    "min_silence": 0.1,
    "pad": 0.03,
}
"""The defaults of Silero's own ``get_speech_timestamps`` (threshold 0.5, neg_threshold
threshold − 0.15, min_speech_duration_ms 250, min_silence_duration_ms 100, speech_pad_ms 30) as
our post-processing parameters; applied to Silero's and TEN VAD's probabilities."""


def smoothed_spans(probs: np.ndarray, duration: float, params: Any = None) -> Spans:
    """Post-processing (default: our generic defaults) applied to a peer's probabilities."""
    from ocml.pipeline.postprocess import Binarize, SegmentParams

    segs = Binarize(SegmentParams() if params is None else params)(
        probs, duration=duration, grid=CFG.grid
    )
    return [(s.start, s.end) for s in segs]


class Bench:
    """Frame counts, decisions and seconds of every system on every file, per data set."""

    def __init__(self, sets: Sequence[DataSet]) -> None:
        from ocml.pipeline.decode import probe

        self.sets = list(sets)
        self.duration = {i.audio: probe(str(i.audio)).duration for ds in sets for i in ds.items}
        self.runs = {
            i.audio: FileRun(i, np.zeros(self.frames(i)), self.duration[i.audio], [], ds.name, CFG)
            for ds in sets
            for i in ds.items
        }
        self.counts: dict[str, dict[str, list[Counts]]] = {}
        self.spans: dict[str, dict[Path, Spans]] = {}
        self.seconds: dict[str, dict[str, float]] = {}

    def frames(self, item: Any) -> int:
        """Frames of the pipeline's grid in ``item``'s recording."""
        return CFG.frames(int(round(self.duration[item.audio] * SR)))

    def add(self, system: str, item: Any, spans: Spans, seconds: float) -> None:
        """Score ``spans`` of ``item`` for ``system`` and count ``seconds`` of processing."""
        run = self.runs[item.audio]
        self.counts.setdefault(system, {}).setdefault(run.dataset, []).append(run.score(spans))
        self.spans.setdefault(system, {})[item.audio] = spans
        per_set = self.seconds.setdefault(system, {})
        per_set[run.dataset] = per_set.get(run.dataset, 0.0) + seconds

    def by_condition(self, system: str, conditions: dict[str, Any]) -> dict[str, Any]:
        """Pooled metrics of ``system`` by recording condition (``models.conditions``)."""
        runs = list(self.runs.values())
        return by_condition(runs, [self.spans[system][r.item.audio] for r in runs], conditions)

    def audio_seconds(self, dataset: str | None = None) -> float:
        """Seconds of audio in one data set (None: in all)."""
        return sum(
            self.duration[i.audio]
            for ds in self.sets
            if dataset in (None, ds.name)
            for i in ds.items
        )

    def row(self, system: str) -> dict[str, Any]:
        """Metrics and × real time of ``system`` per data set and pooled."""
        out: dict[str, Any] = {"system": system, "sets": {}}
        for ds in self.sets:
            seconds = self.seconds[system][ds.name]
            out["sets"][ds.name] = {
                **pool(self.counts[system][ds.name]).metrics(),
                "x_realtime": round(self.audio_seconds(ds.name) / max(seconds, 1e-9), 1),
            }
        total = sum(self.seconds[system].values())
        out["pool"] = {
            **pool(c for cs in self.counts[system].values() for c in cs).metrics(),
            "x_realtime": round(self.audio_seconds() / max(total, 1e-9), 1),
        }
        return out


def run(sets: Sequence[DataSet], model_path: str | None) -> dict[str, Any]:
    """Every system on every file of ``sets``; the report with one row per system."""
    from ocml.pipeline.model import load_model
    from ocml.pipeline.postprocess import SegmentParams
    from ocml.pipeline.segment import segment_file, tuned_params
    from ocml.pipeline.threads import set_inference_threads

    set_inference_threads(1)
    model = load_model(model_path)
    shipped, generic = tuned_params(model), SegmentParams()
    silero_own = SegmentParams.from_mapping(SILERO_OWN)
    bench = Bench(sets)
    ours = f"opencast-ml {model.name} {model.version}"
    names = {
        "shipped": f"{ours}, shipped post-processing",
        "generic": f"{ours}, generic defaults (threshold 0.5)",
        "silero": "Silero VAD (ONNX), threshold 0.5",
        "silero_pp": "Silero VAD (ONNX) + our generic post-processing",
        "silero_own": "Silero VAD (ONNX) + its own get_speech_timestamps defaults",
        "tenvad": "TEN VAD raw (its flag: threshold 0.5)",
        "tenvad_pp": "TEN VAD + our generic post-processing",
        "tenvad_own": "TEN VAD + Silero's get_speech_timestamps defaults",
        "ffmpeg": "ffmpeg silencedetect (Opencast defaults)",
    }
    peers: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "silero": silero_probabilities,
        "tenvad": ten_vad_probabilities,
        **{f"webrtc{m}": (lambda x, m=m: webrtc_probabilities(x, m)) for m in range(4)},
    }
    for m in range(4):
        names[f"webrtc{m}"] = f"WebRTC VAD mode {m}"
        names[f"webrtc{m}_pp"] = f"WebRTC VAD mode {m} + our generic post-processing"
    for ds in sets:
        for item in ds.items:
            duration = bench.duration[item.audio]
            print(f"  {ds.name}/{item.audio.name}: {duration:.1f} s", file=sys.stderr)
            for key, params in (("shipped", shipped), ("generic", generic)):
                t = time.perf_counter()
                result = segment_file(item.audio, model, params)
                spans = [(s.start, s.end) for s in result.segments]
                bench.add(names[key], item, spans, time.perf_counter() - t)
            t = time.perf_counter()
            spans = opencast_silencedetect(item.audio, duration)
            bench.add(names["ffmpeg"], item, spans, time.perf_counter() - t)
            audio = load_audio(item.audio)
            for key, peer in peers.items():
                t = time.perf_counter()
                probs = peer(audio)
                seconds = time.perf_counter() - t
                bench.add(names[key], item, raw_spans(probs), seconds)
                t = time.perf_counter()
                spans = smoothed_spans(probs, duration)
                pp_seconds = seconds + time.perf_counter() - t
                bench.add(names[f"{key}_pp"], item, spans, pp_seconds)
                if key in ("silero", "tenvad"):
                    t = time.perf_counter()
                    spans = smoothed_spans(probs, duration, silero_own)
                    own_seconds = seconds + time.perf_counter() - t
                    bench.add(names[f"{key}_own"], item, spans, own_seconds)
    rows = {key: bench.row(name) for key, name in names.items()}
    for key, short in SHORT.items():
        rows[key]["short"] = short
    conditions = load_conditions(sets)
    if conditions:
        for key, row in rows.items():
            row["by_condition"] = bench.by_condition(names[key], conditions)
    best = max(range(4), key=lambda m: rows[f"webrtc{m}"]["pool"]["f1"])
    rows["webrtc_best"] = {
        **rows[f"webrtc{best}"],
        "system": f"WebRTC VAD, best mode ({best})",
        "short": f"WebRTC mode {best}",
    }
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end",
        "model": {
            "name": model.name,
            "version": model.version,
            "architecture": model.architecture,
            "sha256": model.sha256,
            "calibration": model.metadata.get("calibration"),
        },
        "data": {
            ds.name: {
                "folder": str(ds.path),
                "files": len(ds.items),
                "minutes": round(bench.audio_seconds(ds.name) / 60, 2),
            }
            for ds in sets
        },
        "collar": COLLAR,
        "params": {
            "shipped": shipped.to_dict(),
            "generic": generic.to_dict(),
            "silero_own": silero_own.to_dict(),
        },
        "table": [
            "shipped",
            "generic",
            "silero",
            "silero_own",
            "silero_pp",
            "tenvad",
            "tenvad_own",
            "webrtc_best",
            "ffmpeg",
        ],
        "systems": rows,
        "targets": targets(rows),
    }


def targets(rows: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 20's accuracy targets checked on these rows: on the real-recordings yardstick F1 at
    least the best peer's + 0.01 and DER@0.25 at most the best peer's; val F1 ≥ 0.955 and
    DER@0.25 ≤ 0.035; dev F1 ≥ 0.965; on every other set F1 above every peer variant (Silero,
    TEN VAD, WebRTC, ffmpeg); the generic defaults within 0.01 F1 of the shipped (tuned)
    post-processing on the pool. A target whose set is not in the run is left out."""
    ours = rows["shipped"]
    peers = [k for k in rows if k not in ("shipped", "generic")]
    out = []

    def check(what: str, value: float, op: str, limit: float) -> None:
        ok = value >= limit if op == "≥" else value <= limit
        out.append({"target": what, "value": round(value, 4), "op": op, "limit": limit, "pass": ok})

    def best(name: str, key: str, pick: Callable[..., str]) -> str:
        return pick(peers, key=lambda k: rows[k]["sets"][name][key])

    if "val" in ours["sets"]:
        check("val F1 (shipped)", ours["sets"]["val"]["f1"], "≥", 0.955)
        check("val DER@0.25 (shipped)", ours["sets"]["val"]["der_collar"], "≤", 0.035)
    if "dev" in ours["sets"]:
        check("dev F1 (shipped)", ours["sets"]["dev"]["f1"], "≥", 0.965)
    for name, metrics in ours["sets"].items():
        peer = best(name, "f1", max)
        margin = metrics["f1"] - rows[peer]["sets"][name]["f1"]
        if name == REALSET:
            check(f"{name} F1 above the best peer ({peer})", margin, "≥", 0.01)
            low = best(name, "der_collar", min)
            gap = metrics["der_collar"] - rows[low]["sets"][name]["der_collar"]
            check(f"{name} DER@0.25 minus the best peer's ({low})", gap, "≤", 0.0)
        else:
            check(f"{name} F1 above every peer ({peer})", margin, "≥", 0.0)
    gap = ours["pool"]["f1"] - rows["generic"]["pool"]["f1"]
    check("pool F1, shipped minus generic defaults", gap, "≤", 0.01)
    return out


SHORT = {
    "shipped": "ours, shipped",
    "generic": "ours, generic",
    "silero": "Silero 0.5",
    "silero_own": "Silero, own defaults",
    "silero_pp": "Silero + ours",
    "tenvad": "TEN VAD 0.5",
    "tenvad_own": "TEN VAD, Silero's rules",
    "ffmpeg": "ffmpeg",
}
"""Column headings of the by-condition table."""


def _cell(value: float, column: str) -> str:
    return f"{value:,.0f}" if column == "x_realtime" else f"{value:.3f}"


def markdown(report: dict[str, Any]) -> str:
    """The summary table (F1 and DER@0.25 s per set and pooled, × real time) and the details."""
    sets = list(report["data"])
    parts = [*sets, "pool"]
    data = ", ".join(
        f"`{name}` ({d['files']} files, {d['minutes']:.1f} min)"
        for name, d in report["data"].items()
    )
    m = report["model"]
    lines = [
        f"# Accuracy: {m['name']} {m['version']} ({m['architecture']}) and the peers",
        "",
        f"Run {report['created']} on {report['machine']} by `benchmarks/accuracy.py`; data {data}, "
        "scored on 10 ms frames; DER@0.25 = (false alarm + miss) / reference speech outside a "
        f"{report['collar']} s collar (±{report['collar'] / 2} s) around reference boundaries; "
        "pool = all files of all sets together. × real time over the pool, one thread each; it "
        "moves with the machine's load, so compare systems within this run only.",
        "",
        f"Shipped post-processing: `{_params(report['params']['shipped'])}`; generic defaults: "
        f"`{_params(report['params']['generic'])}`."
        + (f" Calibration: `{m['calibration']}`." if m.get("calibration") else ""),
        "",
        "| system | " + " | ".join(f"{p} F1 | {p} DER@0.25" for p in parts) + " | × real time |",
        "| --- | " + " | ".join("---: | ---:" for _ in parts) + " | ---: |",
    ]
    for key in report["table"]:
        row = report["systems"][key]
        cells = [row["sets"][p] if p in sets else row["pool"] for p in parts]
        lines.append(
            f"| {row['system']} | "
            + " | ".join(f"{c['f1']:.3f} | {c['der_collar']:.3f}" for c in cells)
            + f" | {_cell(row['pool']['x_realtime'], 'x_realtime')} |"
        )
    lines += ["", "Targets (issue 9; realset and val: issue 20):", ""]
    lines += [
        f"- {'PASS' if t['pass'] else 'FAIL'}: {t['target']} = {t['value']:.3f} "
        f"({t['op']} {t['limit']})"
        for t in report["targets"]
    ]
    lines += _condition_table(report)
    lines += ["", "All systems, every set and the pool:", ""]
    lines.append("| system | set | " + " | ".join(COLUMNS) + " |")
    lines.append("| --- | --- | " + " | ".join("---:" for _ in COLUMNS) + " |")
    for key, row in report["systems"].items():
        if key == "webrtc_best":
            continue
        for p in parts:
            c = row["sets"][p] if p in sets else row["pool"]
            lines.append(
                f"| {row['system']} | {p} | "
                + " | ".join(_cell(c[col], col) for col in COLUMNS)
                + " |"
            )
    return "\n".join(lines) + "\n"


def _condition_table(report: dict[str, Any]) -> list[str]:
    """F1 by recording condition on the pool for the systems of the summary table; in groups
    without speech the false-alarm rate instead (``FA``)."""
    keys = [k for k in report["table"] if "by_condition" in report["systems"][k]]
    if not keys:
        return []
    first = report["systems"][keys[0]]["by_condition"]
    lines = [
        "",
        "F1 by recording condition on the pool (`models/conditions.py`; FA: false-alarm rate "
        "where a group has no speech):",
        "",
        "| condition | group | minutes | "
        + " | ".join(report["systems"][k]["short"] for k in keys)
        + " |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in keys) + " |",
    ]
    for axis, groups in first.items():
        for group, m in groups.items():
            cells = []
            for k in keys:
                g = report["systems"][k]["by_condition"][axis][group]
                cells.append(
                    f"FA {g['false_alarm_rate']:.3f}" if g["f1"] is None else f"{g['f1']:.3f}"
                )
            lines.append(
                f"| {axis} | {group} | {m['seconds'] / 60:.1f} | " + " | ".join(cells) + " |"
            )
    return lines


def _params(params: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in params.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "data",
        nargs="*",
        type=Path,
        help="labelled folders (default: the shared dev and val sets and data/realset)",
    )
    parser.add_argument("--model", help="SavedModel (default: the shipped default model)")
    parser.add_argument("--markdown", type=Path, help="also write the tables as markdown here")
    parser.add_argument("--json", type=Path, help="also write the full report as JSON here")
    args = parser.parse_args(argv)
    data = args.data or [d for d in DEFAULT_DATA if d.is_dir()]
    if not args.data and not (ROOT / "data" / REALSET).is_dir():
        print("data/realset missing (make realset builds it): scoring dev and val only")
    report = run(load_data_sets(data), args.model)
    text = markdown(report)
    print(text)
    for path, content in ((args.markdown, text), (args.json, json.dumps(report, indent=1))):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content if content.endswith("\n") else content + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
