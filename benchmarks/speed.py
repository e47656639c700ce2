"""Speed and memory of ``ocml segment`` against the peers, on the same files, in one run.

Every tool runs as its own fresh process on the same synthesised lecture recordings (cached in
benchmarks/.cache/): a 60-minute 16 kHz mono FLAC and a 60-minute 48 kHz stereo mp4/AAC. For each
process the table shows x-real-time (recording seconds / wall seconds), wall and CPU seconds and
peak RSS (the child's own ru_maxrss from wait4). Tools:

  ocml segment      the installed .venv/bin/ocml, default model or --model; writes JSON + SMIL;
                    the whole process (start-up, model loading in the background, the file).
  ocml pipeline     segment_file in a process whose model is loaded, run twice on the file; the
                    second run counts (a worker's steady state: decode → features → inference →
                    post-processing, sha256 in the same pass).
  (onnx) (tensorflow) (litert)
                    each of the two on each runtime (--runtime): ONNX Runtime when the model has
                    its ONNX asset, TensorFlow, and LiteRT with a copy of the model that has a
                    TFLite asset (benchmarks/litert_model.py makes it; --skip-litert leaves it out).
  ffmpeg silence    ffmpeg -i IN -vn -filter:a silencedetect=noise=-40dB:duration=10 -f null -
                    (Opencast's silence operation; system ffmpeg or imageio-ffmpeg's).
  WebRTC VAD        webrtcvad-wheels, mode 3, 30 ms frames at 16 kHz.
  Silero VAD        silero_vad.onnx with onnxruntime, 512-sample chunks + 64 context, 1 thread.
  TEN VAD           ten-vad's TenVad, 256-sample hops of 16-bit PCM, one call per hop.
WebRTC, Silero and TEN VAD decode through pipeline.decode.stream, exactly like ocml.

The memory check runs ocml segment on a 10-minute and a 3-hour 16 kHz FLAC and compares peak RSS.
Inference alone: frames per second of each runtime on one thread, the model's own batch of
windows (random log-mels), alternating in fresh processes.
Targets (PASS/FAIL, issue 13, the default runtime: the one `--runtime auto` picks for the model,
ONNX Runtime for the shipped one): the whole ocml segment process ≥ 700× real time on the FLAC,
the pipeline ≥ 850× on the FLAC and ≥ 700× on the mp4; ocml segment faster than Silero's process
on each file; peak RSS ≤ 750 MB, and on 3 h within 5 % of 10 min. Other runtimes' memory lines
are printed too, for comparison.
--profile then samples ocml segment on the 60-minute files with py-spy and says where time goes,
and times each pipeline stage alone (CPU seconds), with soxr's resampling qualities for the mp4.

    python benchmarks/speed.py [--minutes 60] [--only flac|mp4|memory] [--skip-peers]
                               [--skip-litert] [--model PATH] [--repeat N] [--profile]
                               [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.media import Recording, ensure  # noqa: E402
from benchmarks.peers import silencedetect_command  # noqa: E402

PEERS_SCRIPT = ROOT / "benchmarks" / "peers.py"
DEFAULT_MODEL = ROOT / "models" / "pretrained" / "default"
TARGET_FLAC = 850.0
TARGET_FLAC_PROCESS = 700.0
TARGET_MP4 = 700.0
TARGET_MEMORY = 0.05
TARGET_RSS_MB = 750.0
LITERT_MODEL = ROOT / "benchmarks" / ".cache" / "default-litert"
LITERT_SCRIPT = ROOT / "benchmarks" / "litert_model.py"
PIPELINE_CODE = """
import json, sys
from ocml.pipeline.model import load_model
from ocml.pipeline.threads import set_inference_threads
from ocml.pipeline.segment import segment_file, tuned_params
set_inference_threads(1)
path, model_path, runtime = sys.argv[1], sys.argv[2] or None, sys.argv[3]
model = load_model(model_path, runtime=runtime)
params = tuned_params(model)
runs = [segment_file(path, model, params) for _ in range(2)]
print(json.dumps({"duration": runs[-1].input.duration,
                  "seconds": [r.processing_seconds for r in runs]}))
"""
"""A process that loads the model, then segments the file twice (the second: steady state)."""
INFERENCE_CODE = """
import json, sys, time
import numpy as np
from ocml.pipeline.model import load_model
from ocml.pipeline.threads import set_inference_threads
set_inference_threads(1)
model = load_model(sys.argv[1] or None, runtime=sys.argv[2])
shape = (model.inference["batch_size"], model.inference["chunk_frames"], model.features.n_mels)
batch = np.random.default_rng(0).normal(-5.0, 3.0, shape).astype(np.float32)
model.predict(batch)
cpu, wall = time.process_time(), time.perf_counter()
for _ in range(int(sys.argv[3])):
    model.predict(batch)
frames = int(sys.argv[3]) * shape[0] * shape[1]
print(json.dumps({"shape": shape, "cpu": frames / (time.process_time() - cpu),
                  "wall": frames / (time.perf_counter() - wall)}))
"""
"""A process that times ``Model.predict`` on one thread: frames per CPU and per wall second."""
PROFILE_RATE = 50
# Where a py-spy stack's time goes: the first rule matching a frame, from the leaf upwards.
_CATEGORIES = (
    ("waiting (prefetch queue, locks)", ("threading.py", "queue.py")),
    ("hashing", ("file_sha256", "hashlib", "file_digest")),
    ("writing", ("pipeline/writers.py", "pipeline/result.py")),
    ("post-processing", ("pipeline/postprocess.py",)),
    ("features", ("pipeline/features.py",)),
    ("decode", ("pipeline/decode.py",)),
    (
        "inference",
        ("pipeline/inference.py", "predict (pipeline/model.py", "__call__ (pipeline/runtimes/"),
    ),
    ("start-up (imports)", ("importlib", "_find_and_load")),
    (
        "model loading",
        (
            "load_model",
            "pipeline/model.py",
            "pipeline/model_metadata.py",
            "pipeline/runtimes/",
            "pipeline/threads.py",
            "pipeline/native_noise.py",
        ),
    ),
    (
        "orchestration (segment_file, prefetch, CLI)",
        ("pipeline/segment.py", "pipeline/prefetch.py", "worker/", "click/"),
    ),
    ("start-up (imports)", ("<module>",)),
)


@dataclass(frozen=True)
class Run:
    """One process: what ran on which file and what it cost."""

    file: str
    tool: str
    duration: float
    wall: float
    cpu: float
    rss_mb: float
    pipeline_seconds: float | None = None

    @property
    def xrt(self) -> float:
        return self.duration / self.wall

    @property
    def pipeline_xrt(self) -> float | None:
        return self.duration / self.pipeline_seconds if self.pipeline_seconds else None


def measure(cmd: list[str], *, cwd: Path) -> tuple[float, float, float, str]:
    """Run ``cmd``; its wall seconds, CPU seconds, peak RSS in MB (its own, via wait4), stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{stderr[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout


def ocml_exe() -> str:
    """The project's installed ``ocml`` console script."""
    local = ROOT / ".venv" / "bin" / "ocml"
    found = str(local) if local.exists() else shutil.which("ocml")
    if not found:
        raise SystemExit("no ocml console script: run `make demo` or `pip install -e .` first")
    return found


def tool_name(tool: str, runtime: str) -> str:
    """A row's tool: ``ocml segment (onnx)``, ``ocml pipeline (tensorflow)``, ..."""
    return f"{tool} ({runtime})"


def run_ocml(rec: Recording, model: Path | None, out_dir: Path, *, runtime: str) -> Run:
    """``ocml segment`` on ``rec`` in a fresh process (JSON + SMIL, as Opencast would use it)."""
    cmd = [ocml_exe(), "segment", str(rec.path), "-o", str(out_dir), "-q", "--format", "json,smil"]
    cmd += ["--model", str(model)] if model else []
    cmd += ["--runtime", runtime]
    wall, cpu, rss, _ = measure(cmd, cwd=ROOT)
    result = json.loads((out_dir / (rec.path.stem + ".json")).read_text())
    duration = result["input"]["duration"]
    return Run(rec.name, tool_name("ocml segment", runtime), duration, wall, cpu, rss)


def run_pipeline(rec: Recording, model: Path | None, *, runtime: str) -> Run:
    """``segment_file`` with the model loaded: the second of two runs in one process."""
    cmd = [sys.executable, "-c", PIPELINE_CODE, str(rec.path), str(model or ""), runtime]
    wall, cpu, rss, out = measure(cmd, cwd=ROOT)
    report = json.loads(out)
    return Run(
        rec.name,
        tool_name("ocml pipeline", runtime),
        report["duration"],
        wall,
        cpu,
        rss,
        pipeline_seconds=report["seconds"][-1],
    )


def runtimes(model: Path | None, lite: Path | None) -> dict[str, Path | None]:
    """Each runtime measured and the model it runs: ONNX Runtime if the model has the asset,
    TensorFlow, LiteRT on ``lite`` if given."""
    from ocml.pipeline.model_metadata import read_metadata

    found: dict[str, Path | None] = {}
    if read_metadata(model).get("onnx"):
        found["onnx"] = model
    found["tensorflow"] = model
    if lite is not None:
        found["litert"] = lite
    return found


def default_runtime(model: Path | None) -> str:
    """The runtime ``ocml segment --runtime auto`` (the default setting) picks for an hour."""
    from ocml.pipeline.model_metadata import read_metadata
    from ocml.pipeline.runtimes.choice import choose_runtime

    return choose_runtime("auto", read_metadata(model), 3600.0)


def inference_rates(model: Path | None, names: list[str], *, rounds: int = 3, calls: int = 4):
    """Frames per CPU second and per wall second of ``Model.predict`` on each runtime, one
    thread, fresh processes alternating; the best of ``rounds`` each."""
    best_rates: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for runtime in names:
            cmd = [sys.executable, "-c", INFERENCE_CODE, str(model or ""), runtime, str(calls)]
            rates = json.loads(measure(cmd, cwd=ROOT)[3])
            seen = best_rates.setdefault(runtime, rates)
            for key in ("cpu", "wall"):
                seen[key] = max(seen[key], rates[key])
    return best_rates


def print_inference(rates: dict[str, dict[str, float]]) -> None:
    shape = next(iter(rates.values()))["shape"]
    print(f"Inference alone, one thread, batch {shape[0]} x {shape[1]} frames (best of rounds):")
    print("| runtime | frames per CPU second | frames per wall second | x real time (CPU) |")
    print("|---|---:|---:|---:|")
    for runtime, r in rates.items():
        print(f"| {runtime} | {r['cpu']:,.0f} | {r['wall']:,.0f} | {r['cpu'] / 100:,.0f} |")


def litert_model(model: Path | None) -> Path:
    """A copy of ``model`` (default: the shipped one) with a TFLite asset, made once."""
    if model is not None:
        return model
    if not (LITERT_MODEL / "assets" / "model.tflite").is_file():
        print(f"  making {LITERT_MODEL} (benchmarks/litert_model.py)", file=sys.stderr)
        subprocess.run([sys.executable, str(LITERT_SCRIPT)], check=True, cwd=ROOT)
    return LITERT_MODEL


def run_peer(rec: Recording, peer: str) -> Run:
    """One peer on ``rec`` in a fresh process."""
    if peer == "ffmpeg silencedetect":
        wall, cpu, rss, _ = measure(silencedetect_command(rec.path), cwd=ROOT)
        return Run(rec.name, peer, rec.duration, wall, cpu, rss)
    name = {"WebRTC VAD": "webrtc", "Silero VAD": "silero", "TEN VAD": "tenvad"}[peer]
    wall, cpu, rss, out = measure(
        [sys.executable, str(PEERS_SCRIPT), name, str(rec.path)], cwd=ROOT
    )
    return Run(rec.name, peer, json.loads(out)["duration"], wall, cpu, rss)


PEERS = ("ffmpeg silencedetect", "WebRTC VAD", "Silero VAD", "TEN VAD")


def best(runs: list[Run]) -> Run:
    """The fastest of repeated runs, with the highest peak RSS seen in any of them."""
    fastest = min(runs, key=lambda r: r.pipeline_seconds or r.wall)
    return Run(
        fastest.file,
        fastest.tool,
        fastest.duration,
        fastest.wall,
        fastest.cpu,
        max(r.rss_mb for r in runs),
        fastest.pipeline_seconds,
    )


def speed_table(
    recs: list[Recording],
    *,
    models: dict[str, Path | None],
    peers: bool,
    repeat: int,
    work: Path,
) -> list[Run]:
    """Every tool on every file, ``repeat`` rounds interleaved so load drift hits all alike;
    ``models``: each runtime and the model it runs (`runtimes`)."""
    ours = {}
    for runtime, path in models.items():
        ours[tool_name("ocml pipeline", runtime)] = lambda rec, m=path, r=runtime: run_pipeline(
            rec, m, runtime=r
        )
        ours[tool_name("ocml segment", runtime)] = lambda rec, m=path, r=runtime: run_ocml(
            rec, m, work, runtime=r
        )
    tools = tuple(ours) + (PEERS if peers else ())
    runs: dict[tuple[str, str], list[Run]] = {}
    for rec in recs:
        for round_ in range(repeat):
            for tool in tools:
                print(f"  {rec.name}: {tool} (round {round_ + 1}/{repeat})", file=sys.stderr)
                run = ours[tool](rec) if tool in ours else run_peer(rec, tool)
                runs.setdefault((rec.name, tool), []).append(run)
    return [best(r) for r in runs.values()]


def memory_check(recs: list[Recording], *, models: dict[str, Path | None], work: Path) -> list[Run]:
    """``ocml segment`` on the short and the long file (same synthesis, different length), on
    each runtime."""
    return [run_ocml(rec, m, work, runtime=r) for r, m in models.items() for rec in recs]


def print_speed(runs: list[Run], default: str) -> list[tuple[str, bool]]:
    """The speed table as Markdown (ratios against ``ocml segment`` on the ``default`` runtime);
    returns the targets it checks, on that runtime."""
    print(
        "| file | tool | x real time | wall s | CPU s | x real time per CPU s | peak RSS MB |"
        " ocml ÷ this (speed) | ocml ÷ this (RSS) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    verdicts: list[tuple[str, bool]] = []
    for file in dict.fromkeys(r.file for r in runs):
        rows = [r for r in runs if r.file == file]
        ocml = next(r for r in rows if r.tool == tool_name("ocml segment", default))
        for r in rows:
            if r.pipeline_seconds:
                print(
                    f"| {file} | {r.tool} (model loaded, 2nd run) | {r.pipeline_xrt:.0f} | "
                    f"{r.pipeline_seconds:.2f} | | | | | |"
                )
                continue
            ratio = "" if r is ocml else f"{ocml.xrt / r.xrt:.2f}"
            rss = "" if r is ocml else f"{ocml.rss_mb / r.rss_mb:.2f}"
            print(
                f"| {file} | {r.tool} | {r.xrt:.0f} | {r.wall:.2f} | {r.cpu:.2f} | "
                f"{r.duration / r.cpu:.0f} | {r.rss_mb:.0f} | {ratio} | {rss} |"
            )
        pipeline = tool_name("ocml pipeline", default)
        pipe = next(r for r in rows if r.tool == pipeline).pipeline_xrt or 0.0
        target = TARGET_MP4 if file.endswith(".mp4") else TARGET_FLAC
        verdicts.append((f"{file}: {pipeline} {pipe:.0f}x >= {target:.0f}x", pipe >= target))
        if not file.endswith(".mp4"):
            verdicts.append(
                (
                    f"{file}: {ocml.tool} process {ocml.xrt:.0f}x "
                    f">= {TARGET_FLAC_PROCESS:.0f}x ({ocml.wall:.1f} s)",
                    ocml.xrt >= TARGET_FLAC_PROCESS,
                )
            )
        silero = next((r for r in rows if r.tool == "Silero VAD"), None)
        if silero:
            verdicts.append(
                (
                    f"{file}: {ocml.tool} process {ocml.wall:.1f} s < Silero VAD "
                    f"{silero.wall:.1f} s",
                    ocml.wall < silero.wall,
                )
            )
    return verdicts


def print_memory(runs: list[Run]) -> list[tuple[str, bool]]:
    """Peak RSS of ocml segment per recording length; returns the memory targets."""
    print("| file | tool | minutes | peak RSS MB | wall s | x real time |")
    print("|---|---|---:|---:|---:|---:|")
    for r in runs:
        print(
            f"| {r.file} | {r.tool} | {r.duration / 60:.0f} | {r.rss_mb:.0f} | {r.wall:.1f} | "
            f"{r.xrt:.0f} |"
        )
    verdicts = []
    for tool in dict.fromkeys(r.tool for r in runs):  # each runtime's; the default's is the target
        short, long_ = [r for r in runs if r.tool == tool]
        growth = long_.rss_mb / short.rss_mb - 1
        peak = max(short.rss_mb, long_.rss_mb)
        verdicts += [
            (
                f"{tool}: peak RSS {long_.duration / 3600:.0f} h {long_.rss_mb:.0f} MB vs "
                f"{short.duration / 60:.0f} min {short.rss_mb:.0f} MB: {100 * growth:+.1f} % "
                f"(within {100 * TARGET_MEMORY:.0f} %)",
                abs(growth) <= TARGET_MEMORY,
            ),
            (f"{tool}: peak RSS {peak:.0f} MB <= {TARGET_RSS_MB:.0f} MB", peak <= TARGET_RSS_MB),
        ]
    return verdicts


def profile(rec: Recording, *, model: Path | None, work: Path) -> tuple[Counter, Counter, int]:
    """py-spy samples of ``ocml segment`` on ``rec``: seconds per category and per leaf frame."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not spy:
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    raw = work / f"{rec.path.stem}.pyspy.txt"
    cmd = [
        spy,
        "record",
        "--format",
        "raw",
        "--rate",
        str(PROFILE_RATE),
        "--output",
        str(raw),
        "--",
        ocml_exe(),
        "segment",
        str(rec.path),
        "-o",
        str(work),
        "-q",
        "--format",
        "json,smil",
    ] + (["--model", str(model)] if model else [])
    measure(cmd, cwd=ROOT)
    categories: Counter = Counter()
    leaves: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        total += n
        categories[_category(frames)] += n / PROFILE_RATE
        leaves[frames[-1]] += n / PROFILE_RATE
    return categories, leaves, total


def _category(frames: list[str]) -> str:
    if frames == [""]:
        return "threads without a Python frame"
    for frame in reversed(frames):
        for name, needles in _CATEGORIES:
            if any(needle in frame for needle in needles):
                return name
    return "other"


def print_profile(rec: Recording, categories: Counter, leaves: Counter, total: int) -> None:
    seconds = sum(categories.values())
    print(
        f"\nProfile of ocml segment on {rec.name} (py-spy, {PROFILE_RATE} Hz, all threads, "
        f"{total} samples = {seconds:.1f} thread-seconds on CPU):"
    )
    print("| where | seconds | share |")
    print("|---|---:|---:|")
    for name, value in categories.most_common():
        print(f"| {name} | {value:.2f} | {100 * value / seconds:.0f} % |")
    print("\nHottest leaf frames:")
    for frame, value in leaves.most_common(12):
        print(f"  {value:7.2f} s  {100 * value / seconds:4.1f} %  {frame}")


def stage_costs(
    rec: Recording, *, model_path: Path | None, models: dict[str, Path | None], work: Path
) -> list[tuple[str, float, float]]:
    """Each pipeline stage on ``rec`` run alone, in this process: (stage, CPU s, wall s).

    Stages run one after another without overlap, so their CPU seconds say what each costs on a
    loaded machine better than wall time; the last row is segment_file itself (overlapped).
    """
    import numpy as np
    import soxr

    from ocml.pipeline.decode import stream
    from ocml.pipeline.features import frame_energy_db, stream_logmel
    from ocml.pipeline.inference import Inference
    from ocml.pipeline.model import load_model
    from ocml.pipeline.postprocess import Binarize
    from ocml.pipeline.segment import file_sha256, segment_file, tuned_params
    from ocml.pipeline.threads import set_inference_threads
    from ocml.pipeline.writers import write_outputs

    set_inference_threads(1)
    rows: list[tuple[str, float, float]] = []

    def timed(name: str, work_fn):
        cpu, wall = time.process_time(), time.perf_counter()
        value = work_fn()
        rows.append((name, time.process_time() - cpu, time.perf_counter() - wall))
        return value

    path = str(rec.path)
    model = timed(
        "import TensorFlow + load model", lambda: load_model(model_path, runtime="tensorflow")
    )
    cfg = model.features
    params = tuned_params(model)
    timed(
        "decode (pipeline.decode.stream → 16 kHz mono)",
        lambda: sum(len(b) for b in stream(path, sample_rate=cfg.sample_rate)),
    )
    feats = timed(
        "decode + features (stream_logmel)",
        lambda: list(stream_logmel(stream(path, sample_rate=cfg.sample_rate), cfg)),
    )
    probs = timed(
        "inference (Inference, from features in memory)",
        lambda: np.concatenate(list(Inference(model)(iter(feats)))),
    )
    for runtime, model_dir in models.items():
        if runtime == "tensorflow":
            continue
        other = timed(
            f"  import + load model on {runtime} (after TensorFlow's)",
            lambda p=model_dir, r=runtime: load_model(p, runtime=r),
        )
        other_probs = timed(
            f"  inference on {runtime} (from features in memory)",
            lambda m=other: np.concatenate(list(Inference(m)(iter(feats)))),
        )
        print(
            f"  {runtime} vs tensorflow: largest probability difference "
            f"{np.abs(other_probs - probs).max():.2g}",
            file=sys.stderr,
        )
    energy = timed(
        "frame energy for edge snapping (frame_energy_db)",
        lambda: np.concatenate([frame_energy_db(f) for f in feats]),
    )
    timed(
        "post-processing (Binarize)",
        lambda: Binarize(params)(probs, duration=rec.duration, grid=cfg.grid, energy=energy),
    )
    timed("a separate sha256 pass (what Recording saves)", lambda: file_sha256(path))
    result = timed("segment_file, all overlapped", lambda: segment_file(path, model, params))
    timed("writing JSON + SMIL", lambda: write_outputs(result, work, "stages", ("json", "smil")))
    if rec.sample_rate != cfg.sample_rate:
        block = np.random.default_rng(0).standard_normal(30 * rec.sample_rate).astype(np.float32)
        for quality in ("HQ", "MQ", "LQ", "QQ"):

            def resample(q: str = quality) -> None:
                res = soxr.ResampleStream(
                    rec.sample_rate, cfg.sample_rate, 1, dtype="float32", quality=q
                )
                for _ in range(int(rec.duration // 30)):
                    res.resample_chunk(block)

            timed(
                f"  soxr {rec.sample_rate // 1000}→{cfg.sample_rate // 1000} kHz mono, "
                f"{quality}{' (current)' if quality == 'HQ' else ''}",
                resample,
            )
    return rows


def print_stages(rec: Recording, rows: list[tuple[str, float, float]]) -> None:
    print(f"\nStages of the pipeline on {rec.name}, each alone in one process:")
    print("| stage | CPU s | wall s | x real time (CPU) |")
    print("|---|---:|---:|---:|")
    for name, cpu, wall in rows:
        print(f"| {name} | {cpu:.2f} | {wall:.2f} | {rec.duration / max(cpu, 1e-9):.0f} |")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=60.0,
        help="length of the FLAC and mp4 speed files (default 60)",
    )
    parser.add_argument(
        "--only",
        choices=("flac", "mp4", "memory"),
        help="run only the FLAC row, the mp4 row or the memory check",
    )
    parser.add_argument(
        "--skip-peers",
        action="store_true",
        help="time ocml segment only (no ffmpeg, WebRTC, Silero, TEN VAD)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="SavedModel for ocml segment (default: the shipped default model)",
    )
    parser.add_argument(
        "--skip-litert",
        action="store_true",
        help="leave out the LiteRT rows (--runtime litert)",
    )
    parser.add_argument(
        "--litert-model",
        type=Path,
        help="SavedModel with a TFLite asset for the LiteRT rows (default: a copy of --model's "
        "made by benchmarks/litert_model.py; needed with --model)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per tool and file; the fastest counts (default 1)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, profile ocml segment on the speed files with py-spy "
        "and time each pipeline stage alone",
    )
    parser.add_argument("--json", type=Path, help="also write every measured run as JSON")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.repeat < 1:
        parser.error(f"--minutes must be > 0 and --repeat >= 1, got {args.minutes}, {args.repeat}")
    if args.model is None and not (DEFAULT_MODEL / "assets" / "ocml.json").is_file():
        parser.error(f"no default model at {DEFAULT_MODEL}; pass --model PATH to a SavedModel")
    if args.model is not None and not (args.model / "assets" / "ocml.json").is_file():
        parser.error(f"--model {args.model}: no assets/ocml.json, not an opencast-ml SavedModel")
    return args


def synthesise_apart(rec: Recording) -> None:
    """``ensure(rec)`` in a fresh process: Linux counts the RSS a child had before its exec (this
    process's, at fork) in the child's ru_maxrss, so synthesising here would inflate every tool's
    peak RSS up to this process's size."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(ensure, rec).result()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    speed_recs = {
        "flac": Recording(args.minutes, 16000, 1, "flac"),
        "mp4": Recording(args.minutes, 48000, 2, "mp4"),
    }
    memory_recs = [Recording(10, 16000, 1, "flac"), Recording(180, 16000, 1, "flac")]
    wanted = (
        [speed_recs[args.only]]
        if args.only in speed_recs
        else ([] if args.only == "memory" else list(speed_recs.values()))
    )
    check_memory = args.only in (None, "memory")
    for rec in wanted + (memory_recs if check_memory else []):
        if not rec.path.exists():
            print(f"synthesising {rec.path} ...", file=sys.stderr)
            started = time.perf_counter()
            synthesise_apart(rec)
            print(f"  done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    load = os.getloadavg()
    print(
        f"Machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} at start; model {args.model or DEFAULT_MODEL}"
    )
    verdicts: list[tuple[str, bool]] = []
    runs: list[Run] = []
    lite = None
    if not args.skip_litert:
        if args.model is not None and args.litert_model is None:
            raise SystemExit("--model needs --litert-model (or --skip-litert)")
        lite = litert_model(args.litert_model)
    models = runtimes(args.model, lite)
    default = default_runtime(args.model)
    print(f"Runtimes: {', '.join(models)}; the default (auto) for this model: {default}\n")
    with tempfile.TemporaryDirectory(prefix="ocml-bench-") as tmp:
        work = Path(tmp)
        if wanted:
            inference = [r for r in models if r != "litert"]
            print_inference(inference_rates(args.model, inference))
            runs += speed_table(
                wanted,
                models=models,
                peers=not args.skip_peers,
                repeat=args.repeat,
                work=work,
            )
            print()
            verdicts += print_speed(runs, default)
        if check_memory:
            memory = memory_check(memory_recs, models=models, work=work)
            runs += memory
            print()
            verdicts += print_memory(memory)
        load = os.getloadavg()
        print(f"\nLoad average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        for text, ok in verdicts:
            print(f"{'PASS' if ok else 'FAIL'}  {text}")
        if args.profile:
            for rec in wanted:
                print_profile(rec, *profile(rec, model=args.model, work=work))
                print_stages(rec, stage_costs(rec, model_path=args.model, models=models, work=work))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) | {"xrt": r.xrt} for r in runs], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
