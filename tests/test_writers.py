"""Writers: atomic writes, the five text renderings, Opencast SMIL, and all-or-nothing output sets."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ocml.pipeline.errors import NameTooLong, OutputError, PathChanged, TrackError
from ocml.pipeline.postprocess import Segment
from ocml.pipeline.result import Result, TrackIdentity, validate
from ocml.pipeline.writers import (
    FORMATS,
    OpenDir,
    Track,
    atomic_write,
    check_writable,
    ensure_output_dir,
    open_file_beneath,
    output_paths,
    render_audacity,
    render_cutmarks,
    render_json,
    render_rttm,
    render_smil,
    write_outputs,
    write_result_set,
)
from tests.results import make_result

SMIL = "{http://www.w3.org/ns/SMIL}"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
PREFIXES = {
    "smil": "s",
    "head": "h",
    "body": "b",
    "meta": "meta",
    "paramGroup": "pg",
    "param": "param",
    "par": "par",
    "audio": "a",
    "video": "v",
}


def mask_ids(text: str) -> str:
    return re.sub(UUID, "UUID", text)


def leftovers(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


# --- the text renderings, against hand-written expectations -------------------------------------


def test_render_json_matches_the_expected_text():
    expected = """{
  "schema": "opencast-ml/segments/v1",
  "input": {
    "path": "/srv/media/lecture 17.flac",
    "duration": 10.0,
    "sample_rate": 48000,
    "channels": 2,
    "sha256": "abababababababababababababababababababababababababababababababab",
    "has_video": false
  },
  "model": {
    "name": "default",
    "version": "1.0.0",
    "architecture": "crnn",
    "sha256": "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
  },
  "params": {
    "threshold": 0.5,
    "neg_threshold": 0.35,
    "min_speech": 0.25,
    "min_silence": 0.1,
    "min_voice": 0.0,
    "pad_before": 0.03,
    "pad_after": 0.03,
    "trim_min_speech": 0.0,
    "trim_window": 0.0,
    "trim_bridge": 0.0,
    "snap_db": 0.0,
    "snap_max": 0.0
  },
  "segments": [
    {
      "start": 0.5,
      "end": 2.25,
      "label": "speech",
      "confidence": 0.91
    },
    {
      "start": 4.0,
      "end": 7.125,
      "label": "speech",
      "confidence": 0.8765
    }
  ],
  "summary": {
    "speech_seconds": 4.875,
    "speech_ratio": 0.4875,
    "segments": 2,
    "no_speech": false,
    "dropped_voice": {
      "stretches": 0,
      "seconds": 0.0
    }
  },
  "timing": {
    "processing_seconds": 2.5,
    "realtime_factor": 0.25
  },
  "created": "2026-11-25T12:00:00Z"
}
"""
    assert render_json(make_result()).decode("utf-8") == expected


def test_render_json_refuses_an_invalid_result():
    with pytest.raises(ValueError, match=r"segments\[1\]: end 12\.0 is beyond the input duration"):
        render_json(make_result(segments=[Segment(0.5, 2.25, 0.9), Segment(4.0, 12.0, 0.9)]))


def test_render_cutmarks_matches_the_opencast_form():
    assert render_cutmarks(make_result()).decode() == (
        '[\n  {\n    "begin": 500,\n    "duration": 1750\n  },\n'
        '  {\n    "begin": 4000,\n    "duration": 3125\n  }\n]\n'
    )
    assert render_cutmarks(make_result(segments=[])).decode() == "[]\n"


def test_render_audacity_labels():
    assert render_audacity(make_result()).decode() == (
        "0.500000\t2.250000\tspeech\n4.000000\t7.125000\tspeech\n"
    )


def test_render_rttm():
    assert render_rttm(make_result()).decode() == (
        "SPEAKER lecture_17 1 0.500 1.750 <NA> <NA> speech <NA> <NA>\n"
        "SPEAKER lecture_17 1 4.000 3.125 <NA> <NA> speech <NA> <NA>\n"
    )


def test_render_smil_matches_the_expected_text():
    expected = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<smil xmlns="http://www.w3.org/ns/SMIL" xmlns:oc="http://smil.opencastproject.org" version="3.0" baseProfile="Language" xml:id="s-UUID">
  <head xml:id="h-UUID">
    <meta name="track-duration" content="10000ms" xml:id="meta-UUID"/>
    <paramGroup xml:id="pg-UUID">
      <param valuetype="data" name="track-id" value="UUID" xml:id="param-UUID"/>
      <param valuetype="data" name="track-src" value="file:///srv/media/lecture%2017.flac" xml:id="param-UUID"/>
      <param valuetype="data" name="track-flavor" value="presenter/source" xml:id="param-UUID"/>
    </paramGroup>
  </head>
  <body xml:id="b-UUID">
    <par xml:id="par-UUID">
      <audio clipBegin="500ms" clipEnd="2250ms" paramGroup="pg-UUID" src="file:///srv/media/lecture%2017.flac" xml:id="a-UUID"/>
    </par>
    <par xml:id="par-UUID">
      <audio clipBegin="4000ms" clipEnd="7125ms" paramGroup="pg-UUID" src="file:///srv/media/lecture%2017.flac" xml:id="a-UUID"/>
    </par>
  </body>
</smil>
"""
    assert mask_ids(render_smil(make_result()).decode("utf-8")) == expected


# --- SMIL structure -----------------------------------------------------------------------------


def parse_smil(data: bytes) -> ET.Element:
    root = ET.fromstring(data)
    assert root.tag == f"{SMIL}smil"
    assert (root.get("version"), root.get("baseProfile")) == ("3.0", "Language")
    ids = [el.get(XML_ID) for el in root.iter()]
    assert all(ids) and len(set(ids)) == len(ids)
    for el in root.iter():
        local = el.tag.removeprefix(SMIL)
        assert re.fullmatch(f"{PREFIXES[local]}-{UUID}", el.get(XML_ID)), (local, el.get(XML_ID))
    return root


def test_smil_structure_for_a_video_input_with_two_tracks_and_a_segment_past_the_end():
    result = make_result(
        segments=[Segment(0.0, 1.0, 0.9), Segment(3.0, 9.8765, 0.8), Segment(9.9, 10.5, 0.7)],
        duration=9.95,
        has_video=True,
    )
    tracks = [
        Track(
            id="t-1",
            src="https://oc.example/presenter.mp4",
            flavor="presenter/source",
            kind="video",
        ),
        Track(
            id="t-2",
            src="https://oc.example/slides.mp4?a=1&b=2",
            flavor="presentation/source",
            kind="video",
        ),
    ]
    root = parse_smil(render_smil(result, tracks=tracks))
    head, body = root.find(f"{SMIL}head"), root.find(f"{SMIL}body")
    (meta,) = head.findall(f"{SMIL}meta")
    assert (meta.get("name"), meta.get("content")) == ("track-duration", "9950ms")
    groups = head.findall(f"{SMIL}paramGroup")
    assert [[(p.get("name"), p.get("value"), p.get("valuetype")) for p in g] for g in groups] == [
        [
            (n, v, "data")
            for n, v in (("track-id", t.id), ("track-src", t.src), ("track-flavor", t.flavor))
        ]
        for t in tracks
    ]
    pars = body.findall(f"{SMIL}par")
    assert len(pars) == len(result.segments)
    clips = []
    for par in pars:
        videos = par.findall(f"{SMIL}video")
        assert [v.get("paramGroup") for v in videos] == [g.get(XML_ID) for g in groups]
        assert [v.get("src") for v in videos] == [t.src for t in tracks]
        for v in videos:
            begin, end = (re.fullmatch(r"(\d+)ms", v.get(a)) for a in ("clipBegin", "clipEnd"))
            assert begin and end
            assert 0 <= int(begin[1]) < int(end[1]) <= 9950
        clips.append((videos[0].get("clipBegin"), videos[0].get("clipEnd")))
    # the milliseconds the JSON shows (round(9.8765, 3) == 9.877), cut at the track duration
    assert clips == [("0ms", "1000ms"), ("3000ms", "9877ms"), ("9900ms", "9950ms")]


def test_smil_ids_are_deterministic_and_depend_on_the_input():
    assert render_smil(make_result()) == render_smil(make_result())
    other = render_smil(make_result(sha="ef" * 32))
    assert mask_ids(other.decode()) == mask_ids(render_smil(make_result()).decode())
    assert other != render_smil(make_result())


def test_no_speech_keeps_everything_in_every_format():
    result = make_result(segments=[], duration=9.95)
    root = parse_smil(render_smil(result))
    (par,) = root.find(f"{SMIL}body").findall(f"{SMIL}par")
    (clip,) = list(par)
    assert (clip.get("clipBegin"), clip.get("clipEnd")) == ("0ms", "9950ms")
    assert render_cutmarks(result) == b"[]\n"
    document = json.loads(render_json(result))
    assert document["segments"] == []
    assert document["summary"] == {
        "speech_seconds": 0.0,
        "speech_ratio": 0.0,
        "segments": 0,
        "no_speech": True,
        "dropped_voice": {"stretches": 0, "seconds": 0.0},
    }
    assert render_audacity(result) == b"" and render_rttm(result) == b""


def test_a_segment_shorter_than_a_millisecond_counts_as_no_speech_in_the_smil():
    root = parse_smil(
        render_smil(make_result(segments=[Segment(9.9504, 9.9506, 0.9)], duration=9.95))
    )
    (par,) = root.find(f"{SMIL}body").findall(f"{SMIL}par")
    assert (par[0].get("clipBegin"), par[0].get("clipEnd")) == ("0ms", "9950ms")


def test_track_identity_given_for_the_result_goes_into_the_smil():
    src = "https://oc.example/files/mediapackage/mp-1/track-7/presenter.mp4"
    result = replace(
        make_result(has_video=True),
        track=TrackIdentity(id="track-7", flavor="presenter/source", src=src),
    )
    root = parse_smil(render_smil(result))
    (group,) = root.find(f"{SMIL}head").findall(f"{SMIL}paramGroup")
    assert {p.get("name"): p.get("value") for p in group} == {
        "track-id": "track-7",
        "track-src": src,
        "track-flavor": "presenter/source",
    }
    videos = root.find(f"{SMIL}body").iter(f"{SMIL}video")
    assert {(v.get("src"), v.get("paramGroup")) for v in videos} == {(src, group.get(XML_ID))}
    partly = replace(make_result(), track=TrackIdentity(flavor="presentation/source"))
    (group,) = parse_smil(render_smil(partly)).find(f"{SMIL}head").findall(f"{SMIL}paramGroup")
    values = {p.get("name"): p.get("value") for p in group}
    assert values["track-flavor"] == "presentation/source"
    assert values["track-src"] == "file:///srv/media/lecture%2017.flac"
    assert re.fullmatch(UUID, values["track-id"])


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"id": ""}, r"track id must be a non-empty string, got ''"),
        ({"flavor": "presenter"}, r"track flavor must look like 'type/subtype', got 'presenter'"),
        ({"flavor": "a/b/c"}, r"got 'a/b/c'"),
        ({"src": "/srv/media/x.mp4"}, r"absolute URI .* got '/srv/media/x.mp4'"),
        ({"src": "https://oc.example/a b.mp4"}, r"got 'https://oc.example/a b.mp4'"),
    ],
)
def test_a_malformed_track_identity_is_refused_quoting_it(given, message):
    with pytest.raises(TrackError, match=message) as caught:
        TrackIdentity(**given)
    assert caught.value.code == "bad_track"


def test_track_kind_is_checked():
    with pytest.raises(ValueError, match=r"'subtitle'"):
        Track(id="x", src="x", flavor="captions/source", kind="subtitle")


# --- atomic writes ------------------------------------------------------------------------------


def test_atomic_write_creates_and_replaces(tmp_path):
    target = tmp_path / "out.json"
    atomic_write(target, b"first")
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second"
    assert leftovers(tmp_path) == ["out.json"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_atomic_write_into_a_missing_directory_names_it(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(OutputError, match=r"nope: output directory does not exist") as info:
        atomic_write(missing / "out.json", b"x")
    assert info.value.path == str(missing)
    assert leftovers(tmp_path) == []


def test_atomic_write_failing_at_the_rename_leaves_no_temporary_file(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(OutputError, match=re.escape(str(tmp_path)) + r": cannot write out.json"):
        atomic_write(tmp_path / "out.json", b"x")
    assert leftovers(tmp_path) == ["out.json"]


@pytest.fixture
def readonly_dir(tmp_path):
    """A directory with one old file that the test process cannot write to.

    Root writes anywhere, so as root the attempt runs as ``nobody`` (see ``unprivileged``) and
    the directory lies where ``nobody`` can reach it.
    """
    base = Path(tempfile.mkdtemp(prefix="ocml-ro-")) if os.geteuid() == 0 else tmp_path
    base.chmod(0o755)
    directory = base / "ro"
    directory.mkdir()
    (directory / "old.json").write_bytes(b"old")
    directory.chmod(0o555)
    yield directory
    directory.chmod(0o755)
    if base != tmp_path:
        shutil.rmtree(base)


def unprivileged(check) -> None:
    """Runs ``check()`` as this user, or in a child process as ``nobody`` when running as root."""
    if os.geteuid() != 0:
        check()
        return
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            check()
            code = 0
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the check failed in the unprivileged child"


def test_atomic_write_into_a_read_only_directory_fails_cleanly(readonly_dir):
    def check():
        with pytest.raises(
            OutputError, match=re.escape(str(readonly_dir)) + r": cannot create files"
        ):
            atomic_write(readonly_dir / "new.json", b"x")
        with pytest.raises(OutputError, match=re.escape(str(readonly_dir))):
            check_writable(readonly_dir)

    unprivileged(check)
    assert leftovers(readonly_dir) == ["old.json"]


def test_check_writable(tmp_path):
    check_writable(tmp_path)
    assert leftovers(tmp_path) == []
    with pytest.raises(OutputError, match=r"missing: output directory does not exist"):
        check_writable(tmp_path / "missing")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OutputError, match=r"file: output directory is not a directory"):
        check_writable(tmp_path / "file")


def test_ensure_output_dir_creates_missing_parents_and_checks_the_result(tmp_path):
    ensure_output_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    ensure_output_dir(tmp_path / "a" / "b")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OutputError, match=r"file: output directory is not a directory"):
        ensure_output_dir(tmp_path / "file")


# --- output sets --------------------------------------------------------------------------------


def test_output_paths_and_names():
    assert FORMATS == ("json", "smil", "cutmarks", "audacity", "rttm", "probabilities")
    assert {f: p.name for f, p in output_paths("/out", "talk", FORMATS).items()} == {
        "json": "talk.json",
        "smil": "talk.smil",
        "cutmarks": "talk.cutmarks.json",
        "audacity": "talk.txt",
        "rttm": "talk.rttm",
        "probabilities": "talk.probs.npy",
    }
    with pytest.raises(ValueError, match=r"unknown output format\(s\) 'srt'; known: json, smil"):
        output_paths("/out", "talk", ["json", "srt"])
    with pytest.raises(ValueError, match=r"plain file name, got '../x'"):
        output_paths("/out", "../x", ["json"])


def test_write_outputs_writes_every_format(tmp_path):
    result = make_result()
    paths = write_outputs(result, tmp_path, "lecture", FORMATS)
    assert leftovers(tmp_path) == sorted(p.name for p in paths.values())
    document = json.loads(paths["json"].read_bytes())
    validate(document)
    assert Result.from_dict(document) == result
    assert json.loads(paths["cutmarks"].read_bytes()) == [
        {"begin": 500, "duration": 1750},
        {"begin": 4000, "duration": 3125},
    ]
    assert paths["smil"].read_bytes() == render_smil(result)
    probs = np.load(paths["probabilities"])
    assert probs.dtype == np.float16
    np.testing.assert_array_equal(probs, [0.0, 0.25, 0.5, 1.0])


def test_write_outputs_removes_what_it_wrote_when_a_later_format_fails(tmp_path):
    (tmp_path / "lecture.rttm").mkdir()
    with pytest.raises(OutputError, match=r"cannot write lecture\.rttm"):
        write_outputs(
            make_result(), tmp_path, "lecture", ["json", "smil", "cutmarks", "audacity", "rttm"]
        )
    assert leftovers(tmp_path) == ["lecture.rttm"]


def test_write_outputs_renders_everything_before_writing_anything(tmp_path):
    with pytest.raises(OutputError, match=r"no probabilities"):
        write_outputs(
            make_result(probabilities=None), tmp_path, "lecture", ["json", "probabilities"]
        )
    assert leftovers(tmp_path) == []


def test_write_outputs_into_a_read_only_directory_leaves_it_unchanged(readonly_dir):
    def check():
        with pytest.raises(OutputError, match=re.escape(str(readonly_dir))):
            write_outputs(make_result(), readonly_dir, "lecture", ["json", "smil"])

    unprivileged(check)
    assert leftovers(readonly_dir) == ["old.json"]


def test_a_name_of_254_bytes_can_be_written_atomically(tmp_path):
    target = tmp_path / ("n" * 240 + ".cutmarks.json")
    atomic_write(target, b"x")
    assert leftovers(tmp_path) == [target.name]


def test_output_names_beyond_the_filesystem_limit_are_refused_with_the_limit():
    with pytest.raises(NameTooLong, match=r"is 256 bytes long; the limit is 255 bytes"):
        output_paths("/out", "s" * 242, ["json", "cutmarks"])


def _fail_writes_beyond(limit: int, action) -> None:
    """Runs ``action()`` in a child process whose writes fail past ``limit`` bytes per file
    (RLIMIT_FSIZE, EFBIG), as a disk filling up mid-job would; asserts it raised OutputError."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            try:
                action()
            except OutputError:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the write did not fail with OutputError"


def test_a_rerun_that_fails_part_way_leaves_the_previous_complete_set(tmp_path):
    old = make_result()
    new = make_result(probabilities=np.linspace(0, 1, 50_000, dtype=np.float32))
    formats = ["json", "smil", "probabilities"]
    paths = write_outputs(old, tmp_path, "lecture", formats)
    before = {p.name: p.read_bytes() for p in paths.values()}

    # json and smil fit under the limit, the probabilities do not: the set fails part-way.
    _fail_writes_beyond(20_000, lambda: write_outputs(new, tmp_path, "lecture", formats))

    assert {p.name: p.read_bytes() for p in paths.values()} == before
    assert leftovers(tmp_path) == sorted(before)


def test_a_complete_rerun_replaces_the_whole_set(tmp_path):
    formats = ["json", "probabilities"]
    write_outputs(make_result(), tmp_path, "lecture", formats)
    new = make_result(probabilities=np.linspace(0, 1, 500, dtype=np.float32))
    paths = write_outputs(new, tmp_path, "lecture", formats)
    assert len(np.load(paths["probabilities"])) == 500
    assert paths["json"].read_bytes() == render_json(new)
    assert leftovers(tmp_path) == ["lecture.json", "lecture.probs.npy"]


class Fenced(Exception):
    """What the fence of a run that may no longer write raises in these tests."""


@pytest.mark.parametrize("refused_at", [1, 2], ids=["before staging", "before the renames"])
def test_a_fence_that_refuses_keeps_the_previous_set(tmp_path, refused_at):
    formats = ["json", "smil"]
    paths = write_outputs(make_result(), tmp_path, "lecture", formats)
    before = {p.name: p.read_bytes() for p in paths.values()}
    new = make_result(probabilities=np.linspace(0, 1, 500, dtype=np.float32))
    seen = []

    def fence() -> None:
        staged = [p for p in tmp_path.iterdir() if p.name.startswith(".ocml-stage-")]
        seen.append(sorted(q.name for p in staged for q in p.iterdir()))
        if len(seen) == refused_at:
            raise Fenced("the job's outcome is recorded by another run")

    with pytest.raises(Fenced):
        write_outputs(new, tmp_path, "lecture", formats, fence=fence)

    # Asked first before anything is staged, then just before the first rename.
    assert seen == [[], ["lecture.json", "lecture.smil", "old"]][:refused_at]
    assert {p.name: p.read_bytes() for p in paths.values()} == before
    assert leftovers(tmp_path) == sorted(before)


def test_a_fence_that_passes_is_asked_twice_and_the_set_is_replaced(tmp_path):
    asked = []
    new = make_result(probabilities=np.linspace(0, 1, 500, dtype=np.float32))
    paths = write_outputs(
        new, tmp_path, "lecture", ["json", "probabilities"], fence=lambda: asked.append(1)
    )
    assert asked == [1, 1]
    assert paths["json"].read_bytes() == render_json(new)


def test_staging_left_by_a_killed_writer_of_this_host_is_removed_at_the_next_write(tmp_path):
    host = socket.gethostname()
    dead = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    abandoned = tmp_path / f".ocml-stage-{dead}@{host}-0123456789ab"
    (abandoned / "old").mkdir(parents=True)
    (abandoned / "lecture.json").write_text("{}")
    (abandoned / "old" / "lecture.json").write_text("{}")
    running = tmp_path / f".ocml-stage-{os.getppid()}@{host}-0123456789ab"
    elsewhere = tmp_path / f".ocml-stage-{dead}@another-host-0123456789ab"
    running.mkdir()
    elsewhere.mkdir()

    write_outputs(make_result(), tmp_path, "lecture", ["json"])

    assert leftovers(tmp_path) == sorted(["lecture.json", running.name, elsewhere.name])


def test_open_dir_refuses_a_symlink_below_the_root_and_creates_only_real_directories(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "link").symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(PathChanged, match=r"link: is a symlink"):
        OpenDir.open(root / "link" / "deeper", root=root, create=True)
    with OpenDir.open(root / "a" / "b", root=root, create=True) as opened:
        write_result_set(opened, {"x.json": b"{}"})
        assert (root / "a" / "b" / "x.json").read_bytes() == b"{}"
    with OpenDir.open(root / "c" / "d", root=root, create=True) as unused:
        unused.remove_created()

    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in root.iterdir()) == ["a", "link"]


def test_an_input_is_opened_without_following_a_symlink_below_its_root(tmp_path):
    media, outside = tmp_path / "media", tmp_path / "outside"
    (media / "sub").mkdir(parents=True)
    outside.mkdir()
    (media / "sub" / "talk.wav").write_bytes(b"RIFF")
    (outside / "secret.wav").write_bytes(b"secret")
    (media / "swapped").symlink_to(outside, target_is_directory=True)
    (media / "sub" / "leak.wav").symlink_to(outside / "secret.wav")

    fd = open_file_beneath(media / "sub" / "talk.wav", roots=[media])
    try:
        assert os.read(fd, 10) == b"RIFF"
    finally:
        os.close(fd)
    for path in (media / "swapped" / "secret.wav", media / "sub" / "leak.wav"):
        with pytest.raises(PathChanged, match=r"is a symlink"):
            open_file_beneath(path, roots=[media])
