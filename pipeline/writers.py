"""Result → files: JSON, Opencast SMIL, Opencast cut marks, Audacity labels, RTTM, probabilities.

Every renderer is a pure function ``Result → bytes``; ``write_outputs`` renders all requested
formats first and only then writes them as one set (``write_result_set``): every file goes into a
hidden staging directory inside the output directory, then each is renamed into place, the JSON
last, and the previous files are put back if a rename fails. A failure while writing (disk full)
leaves the previous complete set untouched; readers never see half a file.
A caller may pass a ``fence`` callable, called before staging and just before the first rename,
that stops the write by raising (a worker's run: it may no longer write, another run recorded
the outcome).

Output directories are opened once, without following symlinks (``OpenDir``), and every file is
created, renamed and removed relative to that handle, so swapping a directory for a symlink while
a job runs cannot send its results elsewhere.

Opencast formats, as Opencast itself reads and writes them (opencast/opencast):

* SMIL: ``modules/smil-impl`` — ``SmilImpl`` (root ``smil``, ``version="3.0"``,
  ``baseProfile="Language"``, namespace ``http://www.w3.org/ns/SMIL`` from the package's
  ``package-info.java``), ``SmilObjectImpl`` (``xml:id`` = ``<prefix>-<uuid>``), prefixes
  ``s``/``h``/``b``/``meta``/``pg``/``param``/``par``/``a``/``v`` from ``SmilImpl``,
  ``SmilHeadImpl``, ``SmilBodyImpl``, ``SmilMetaImpl``, ``SmilMediaParamGroupImpl``,
  ``SmilMediaParamImpl``, ``SmilMediaParallelImpl``, ``SmilMediaAudioImpl``,
  ``SmilMediaVideoImpl``. ``SmilServiceImpl.addClip`` adds one ``paramGroup`` per track with
  ``track-id``, ``track-src``, ``track-flavor`` params (``valuetype="data"``), a
  ``track-duration`` meta (``"%dms"``), clips ``clipBegin``/``clipEnd`` as ``<long>ms`` cut at the
  track duration, ``<video>`` when the track has video, else ``<audio>``.
  ``SilenceDetectionServiceImpl.generateSmil`` writes one ``par`` per kept segment holding a clip
  of every reference track. Example: ``modules/videoeditor-ffmpeg-impl/src/test/resources/
  testresources/SmilObjectToXml.xml`` and ``docs/guides/developer/docs/modules/videoeditor/
  architecture.md``.
* Cut marks: ``docs/guides/admin/docs/workflowoperationhandlers/cut-marks-to-smil-woh.md`` —
  a JSON list of the segments to keep, ``[{"begin": 1672, "duration": 7199}]``, milliseconds.
"""

from __future__ import annotations

import errno
import io
import json
import os
import socket
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from ocml.pipeline.errors import (
    NAME_MAX,
    NameTooLong,
    OcmlError,
    OutputError,
    PathChanged,
    TransientIOError,
    excerpt,
)
from ocml.pipeline.labels import render_audacity_labels
from ocml.pipeline.oserrors import TRANSIENT_ERRNOS
from ocml.pipeline.processes import process_exists
from ocml.pipeline.result import Result, validate
from ocml.pipeline.times import floor_ms, to_ms

SMIL_NS = "http://www.w3.org/ns/SMIL"
OC_SMIL_NS = "http://smil.opencastproject.org"
FORMATS: tuple[str, ...] = ("json", "smil", "cutmarks", "audacity", "rttm", "probabilities")
SUFFIXES: dict[str, str] = {
    "json": ".json",
    "smil": ".smil",
    "cutmarks": ".cutmarks.json",
    "audacity": ".txt",
    "rttm": ".rttm",
    "probabilities": ".probs.npy",
}
TEMP_PREFIX = ".ocml-"
"""Every temporary file and staging directory starts with this (and is hidden)."""
STAGE_PREFIX = f"{TEMP_PREFIX}stage-"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _io_error(exc: OSError, what: str, path: str | os.PathLike[str]) -> OcmlError:
    """The pipeline error for an OS error while writing: transient for network-storage hiccups."""
    cls = TransientIOError if exc.errno in TRANSIENT_ERRNOS else OutputError
    return cls(f"cannot {what}: {exc.strerror or exc}", path=os.fspath(path))


def check_writable(out_dir: str | os.PathLike[str]) -> None:
    """Raises ``OutputError`` unless ``out_dir`` is an existing directory a file can be created in.

    Callers use it before a long job so an unusable output directory fails in milliseconds.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        reason = "is not a directory" if out_dir.exists() else "does not exist"
        raise OutputError(f"output directory {reason}", path=str(out_dir))
    try:
        with tempfile.TemporaryFile(dir=out_dir, prefix=".ocml-check-"):
            pass
    except OSError as exc:
        raise _io_error(exc, "create files in the output directory", out_dir) from exc


def ensure_output_dir(out_dir: str | os.PathLike[str]) -> None:
    """Creates ``out_dir`` (and its parents) if missing, then checks it as ``check_writable`` does."""
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        pass  # a file of that name: check_writable says "is not a directory"
    except OSError as exc:
        raise _io_error(exc, "create the output directory", out_dir) from exc
    check_writable(out_dir)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Writes ``data`` to ``path`` via a synced temporary file in the same directory and a rename.

    The temporary name (``.ocml-XXXXXXXX.tmp``) does not grow with the final one, so any name the
    filesystem accepts can be written.

    Readers see the old file or the complete new one, never a partial one; on failure the
    temporary file is removed and ``OutputError`` (or ``TransientIOError``) names the directory.
    """
    path = Path(path)
    directory = path.parent
    if not directory.is_dir():
        raise OutputError("output directory does not exist", path=str(directory))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=".tmp")
    except OSError as exc:
        raise _io_error(exc, "create files in the output directory", directory) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(Path(tmp))
        raise _io_error(exc, f"write {path.name}", directory) from exc
    except BaseException:
        _remove(Path(tmp))
        raise
    _fsync_dir(directory)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _fsync_dir(directory: Path) -> None:
    """Makes a rename durable; some filesystems cannot open directories, which is harmless."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def render_json(result: Result) -> bytes:
    """The ``opencast-ml/segments/v1`` document, validated, 2-space indent, trailing newline."""
    document = result.to_dict()
    validate(document)
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def render_cutmarks(result: Result) -> bytes:
    """Opencast cut marks: the kept segments as ``[{"begin": ms, "duration": ms}]``.

    Without speech that is ``[]``, on which ``cut-marks-to-smil`` skips: nothing is cut.
    """
    marks = [{"begin": begin, "duration": end - begin} for begin, end in _segments_ms(result)]
    return (json.dumps(marks, indent=2) + "\n").encode("utf-8")


def render_audacity(result: Result) -> bytes:
    """Audacity label track: ``start<TAB>end<TAB>speech`` per segment, seconds with 6 decimals."""
    return render_audacity_labels([(s.start, s.end) for s in result.segments])


def render_rttm(result: Result) -> bytes:
    """NIST RTTM: one ``SPEAKER`` line per segment, the input's file stem as the recording id."""
    uri = _rttm_uri(result.input.path)
    return "".join(
        f"SPEAKER {uri} 1 {s.start:.3f} {s.end - s.start:.3f} <NA> <NA> speech <NA> <NA>\n"
        for s in result.segments
    ).encode("utf-8")


def _rttm_uri(path: str) -> str:
    """RTTM fields are space-separated, so spaces in the recording id become underscores."""
    return "_".join(Path(path).stem.split()) or "recording"


def render_probabilities(result: Result) -> bytes:
    """The per-frame speech probabilities as a float16 ``.npy`` file."""
    if result.probabilities is None:
        raise OutputError("this result carries no probabilities to write", path=result.input.path)
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(result.probabilities, dtype=np.float16), allow_pickle=False)
    return buffer.getvalue()


@dataclass(frozen=True)
class Track:
    """A media track a SMIL clips: Opencast's track id, its URI, its flavor, ``audio`` or ``video``."""

    id: str
    src: str
    flavor: str
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in ("audio", "video"):
            raise ValueError(f"track kind must be 'audio' or 'video', got {self.kind!r}")


def default_tracks(result: Result) -> list[Track]:
    """The input as the one track, with what ``result.track`` names of its Opencast identity.

    Defaults for what it leaves out: a deterministic UUID as id, the input's ``file://`` URI as
    src, ``presenter/source`` as flavor.
    """
    path = result.input.path
    given = result.track
    return [
        Track(
            id=given.id or _IdMaker(result).uuid("track", 0),
            src=given.src or (path if "://" in path else Path(path).absolute().as_uri()),
            flavor=given.flavor or "presenter/source",
            kind="video" if result.input.has_video else "audio",
        )
    ]


def render_smil(result: Result, *, tracks: Sequence[Track] | None = None) -> bytes:
    """The segments as the SMIL Opencast's silence detection writes: one ``par`` per segment.

    Without speech it keeps the whole recording in one ``par``: Opencast's ``editor`` operation
    fails on a SMIL without clips ("Smil does not define any elements"). Element ids are ``<prefix>-<uuid5>`` derived from the input's sha256 and the element's
    position, so the same job always renders byte-identical files.
    """
    tracks = list(default_tracks(result) if tracks is None else tracks)
    if not tracks:
        raise ValueError("a SMIL needs at least one track")
    duration_ms = floor_ms(result.input.duration)
    ids = _IdMaker(result)
    lines = [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
        f'<smil xmlns="{SMIL_NS}" xmlns:oc="{OC_SMIL_NS}" version="3.0" baseProfile="Language"'
        f' xml:id="{ids("s", "smil")}">',
        f'  <head xml:id="{ids("h", "head")}">',
        f'    <meta name="track-duration" content="{duration_ms}ms" xml:id="{ids("meta", "meta", 0)}"/>',
    ]
    groups = []
    for t, track in enumerate(tracks):
        group = ids("pg", "paramGroup", t)
        groups.append(group)
        lines.append(f'    <paramGroup xml:id="{group}">')
        for p, (name, value) in enumerate(
            (("track-id", track.id), ("track-src", track.src), ("track-flavor", track.flavor)),
        ):
            lines.append(
                f'      <param valuetype="data" name="{name}" value={quoteattr(value)}'
                f' xml:id="{ids("param", "param", t, p)}"/>'
            )
        lines.append("    </paramGroup>")
    lines += ["  </head>", f'  <body xml:id="{ids("b", "body")}">']
    kept = _segments_ms(result) or ([(0, duration_ms)] if duration_ms > 0 else [])
    for n, (begin, end) in enumerate(kept):
        lines.append(f'    <par xml:id="{ids("par", "par", n)}">')
        for t, track in enumerate(tracks):
            prefix = "v" if track.kind == "video" else "a"
            lines.append(
                f'      <{track.kind} clipBegin="{begin}ms" clipEnd="{end}ms" paramGroup="{groups[t]}"'
                f' src={quoteattr(track.src)} xml:id="{ids(prefix, track.kind, n, t)}"/>'
            )
        lines.append("    </par>")
    lines += ["  </body>", "</smil>", ""]
    return "\n".join(lines).encode("utf-8")


class _IdMaker:
    """Deterministic Opencast-style ids: ``<prefix>-<uuid5(input sha256, element position)>``."""

    def __init__(self, result: Result) -> None:
        self.namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"opencast-ml:{result.input.sha256}")

    def uuid(self, *position: object) -> str:
        return str(uuid.uuid5(self.namespace, "/".join(map(str, position))))

    def __call__(self, prefix: str, *position: object) -> str:
        return f"{prefix}-{self.uuid(*position)}"


def _segments_ms(result: Result) -> list[tuple[int, int]]:
    """Segments as integer milliseconds, never beyond the input duration, empty ones left out."""
    limit = floor_ms(result.input.duration)
    out = []
    for s in result.segments:
        begin, end = to_ms(s.start), min(to_ms(s.end), limit)
        if end > begin:
            out.append((begin, end))
    return out


RENDERERS: dict[str, Callable[[Result], bytes]] = {
    "json": render_json,
    "smil": render_smil,
    "cutmarks": render_cutmarks,
    "audacity": render_audacity,
    "rttm": render_rttm,
    "probabilities": render_probabilities,
}


def output_paths(
    out_dir: str | os.PathLike[str], stem: str, formats: Iterable[str]
) -> dict[str, Path]:
    """Where each format is written: ``<out_dir>/<stem><suffix>``; unknown formats refused.

    A name longer than the filesystem's ``NAME_MAX`` bytes is a ``NameTooLong`` naming the limit.
    """
    formats = list(formats)
    unknown = [f for f in formats if f not in SUFFIXES]
    if unknown:
        raise ValueError(
            f"unknown output format(s) {', '.join(map(repr, unknown))}; known: {', '.join(FORMATS)}"
        )
    if not stem or "/" in stem or os.sep in stem or stem in (".", ".."):
        raise ValueError(f"output stem must be a plain file name, got {excerpt(repr(stem))}")
    paths = {f: Path(out_dir) / f"{stem}{SUFFIXES[f]}" for f in dict.fromkeys(formats)}
    for path in paths.values():
        size = len(os.fsencode(path.name))
        if size > NAME_MAX:
            raise NameTooLong(
                f"output file name {excerpt(path.name)} is {size} bytes long; "
                f"the limit is {NAME_MAX} bytes",
                path=str(out_dir),
            )
    return paths


class OpenDir:
    """A directory opened without following symlinks on the way down from a trusted root.

    ``OpenDir.open`` walks from ``root`` one component at a time with ``O_NOFOLLOW`` (creating
    missing ones when asked), so a component that is a symlink is refused (``PathChanged``)
    instead of followed; files are then created, renamed and removed relative to ``fd``, which
    keeps naming the same directory whatever happens to its path afterwards.
    """

    def __init__(self, path: Path, fds: list[int], created: list[tuple[int, str]]) -> None:
        self.path = path
        self._fds = fds
        self._created = created

    @property
    def fd(self) -> int:
        return self._fds[-1]

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        root: str | os.PathLike[str] | None = None,
        create: bool = False,
    ) -> OpenDir:
        """Opens ``path`` (resolved, below ``root``; the root's own symlinks are trusted).

        Without ``root``, ``path`` itself is the trusted root. ``create`` makes missing
        directories; ``remove_created`` takes them away again if they stay empty.
        """
        path = Path(path)
        fds, created = walk_beneath(path, root=path if root is None else Path(root), create=create)
        return cls(path, fds, created)

    def check_writable(self) -> None:
        """Raises ``OutputError`` unless a file can be created here (a quick test before a job)."""
        name = f"{TEMP_PREFIX}check-{uuid.uuid4().hex[:12]}"
        try:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=self.fd))
            os.unlink(name, dir_fd=self.fd)
        except OSError as exc:
            raise _io_error(exc, "create files in the output directory", self.path) from exc

    def remove_created(self) -> None:
        """Removes the directories ``open`` created, deepest first, as long as they are empty."""
        for parent, name in reversed(self._created):
            try:
                os.rmdir(name, dir_fd=parent)
            except OSError:
                return
        self._created = []

    def close(self) -> None:
        _close_all(self._fds)
        self._fds = []

    def __enter__(self) -> OpenDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def walk_beneath(
    path: Path, *, root: Path, create: bool
) -> tuple[list[int], list[tuple[int, str]]]:
    """Opens ``root`` (following its symlinks) and each directory from it down to ``path``
    without following any; returns every fd opened (the last is ``path``'s) and the
    (parent fd, name) of each directory created. The caller closes the fds.
    """
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise PathChanged(f"not below {excerpt(str(root))}", path=str(path)) from None
    try:
        fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    except OSError as exc:
        raise _io_error(exc, "open the directory", root) from exc
    created: list[tuple[int, str]] = []
    done = root
    try:
        for part in relative.parts:
            if create:
                try:
                    os.mkdir(part, dir_fd=fds[-1])
                    created.append((fds[-1], part))
                except FileExistsError:
                    pass
            fds.append(_open_component(fds[-1], part, done / part, _DIR_FLAGS))
            done = done / part
    except OSError as exc:
        _close_all(fds)
        raise _io_error(exc, "open the directory", done) from exc
    except BaseException:
        _close_all(fds)
        raise
    return fds, created


def open_file_beneath(path: Path, *, roots: Iterable[Path]) -> int:
    """A read-only fd of the regular file ``path`` below one of ``roots``, opened without
    following a symlink anywhere below that root (a swapped component is ``PathChanged``)."""
    for root in roots:
        real_root = Path(os.path.realpath(root))
        if path.is_relative_to(real_root) and path != real_root:
            break
    else:
        raise PathChanged("lies outside the allowed directories", path=str(path))
    fds, _ = walk_beneath(path.parent, root=real_root, create=False)
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        fd = _open_component(fds[-1], path.name, path, flags)
    finally:
        _close_all(fds)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PathChanged("is no longer a regular file", path=str(path))
    os.set_blocking(fd, True)
    return fd


def _open_component(parent: int, name: str, shown: Path, flags: int) -> int:
    """``os.open(name, flags, dir_fd=parent)``; a symlink there is a ``PathChanged``."""
    try:
        return os.open(name, flags, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            try:
                link = stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
            except OSError:
                link = False
            if link:
                raise PathChanged(
                    "is a symlink (it was replaced while the job ran); not followed",
                    path=str(shown),
                ) from None
        if exc.errno == errno.ENAMETOOLONG:
            raise NameTooLong(
                f"a name on this path is longer than the filesystem allows ({NAME_MAX} bytes)",
                path=str(shown),
            ) from None
        raise


def _close_all(fds: list[int]) -> None:
    for fd in reversed(fds):
        os.close(fd)


def write_outputs(
    result: Result,
    out_dir: str | os.PathLike[str],
    stem: str,
    formats: Iterable[str],
    *,
    directory: OpenDir | None = None,
    fence: Callable[[], None] | None = None,
) -> dict[str, Path]:
    """Renders every requested format, then writes them into ``out_dir`` as one set.

    ``directory`` is ``out_dir`` already opened (``OpenDir.open`` below a root); without it,
    ``out_dir`` is opened here as given. ``fence`` is passed on to ``write_result_set``.
    """
    paths = output_paths(out_dir, stem, formats)
    rendered = {paths[fmt].name: RENDERERS[fmt](result) for fmt in paths}
    if directory is not None:
        write_result_set(directory, rendered, fence=fence)
        return paths
    if not Path(out_dir).is_dir():
        raise OutputError("output directory does not exist", path=str(out_dir))
    with OpenDir.open(out_dir) as opened:
        write_result_set(opened, rendered, fence=fence)
    return paths


def write_result_set(
    directory: OpenDir, files: dict[str, bytes], *, fence: Callable[[], None] | None = None
) -> None:
    """Replaces the files named in ``files`` inside ``directory`` together, or not at all.

    The new files are written and synced into a staging directory
    ``.ocml-stage-<pid>@<host>-<random>`` there; the current files are hard-linked into it as a
    backup; then each new file is renamed into place in ``files``' order with a ``.json`` last
    (a new JSON means a complete new set), and if a rename fails the ones already renamed get
    their old files back. The staging directory is removed in every case; those a killed
    process left behind (its pid, on this host, no longer runs) are removed first.

    ``fence``, when given, is called before anything is staged and again immediately before the
    first rename; if it raises, nothing is put in place. A worker's run passes one that raises
    once its job's outcome is recorded by another run, so a run that lost its lock never
    replaces a set after that.
    """
    order = sorted(files, key=_is_main_json)
    if fence is not None:
        fence()
    _remove_abandoned_stages(directory)
    stage_name = f"{STAGE_PREFIX}{os.getpid()}@{socket.gethostname()}-{uuid.uuid4().hex[:12]}"
    try:
        os.mkdir(stage_name, 0o700, dir_fd=directory.fd)
        stage = os.open(stage_name, _DIR_FLAGS, dir_fd=directory.fd)
    except OSError as exc:
        raise _io_error(exc, "create files in the output directory", directory.path) from exc
    try:
        os.mkdir("old", 0o700, dir_fd=stage)
        backup = os.open("old", _DIR_FLAGS, dir_fd=stage)
        try:
            for name in order:
                _stage_file(stage, name, files[name], directory.path)
            for name in order:
                _link_old(directory, name, backup)
            if fence is not None:
                fence()
            _commit(directory, stage, backup, order)
        finally:
            os.close(backup)
    finally:
        try:
            _clear_stage(stage)
        finally:
            os.close(stage)
        os.rmdir(stage_name, dir_fd=directory.fd)
    _fsync_fd(directory.fd)


def _remove_abandoned_stages(directory: OpenDir) -> None:
    """Removes the staging directories in ``directory`` of processes of this host that are
    gone (SIGKILLed mid-write); best effort, never an error."""
    host = socket.gethostname()
    for name in os.listdir(directory.fd):
        owner, _, _ = name.removeprefix(STAGE_PREFIX).rpartition("-")
        pid, _, owner_host = owner.partition("@")
        if not name.startswith(STAGE_PREFIX) or owner_host != host or not pid.isdigit():
            continue
        if int(pid) == os.getpid() or process_exists(int(pid)):
            continue
        try:
            stage = os.open(name, _DIR_FLAGS, dir_fd=directory.fd)
        except OSError:
            continue
        try:
            _clear_stage(stage)
            os.rmdir(name, dir_fd=directory.fd)
        except OSError:
            continue
        finally:
            os.close(stage)


def remove_result_set(directory: OpenDir, names: Iterable[str]) -> list[str]:
    """Removes those of ``names`` present in ``directory``, the main ``.json`` first (a set
    without its JSON is no result), and returns them; for results that no longer describe
    their input (it was replaced)."""
    removed = []
    for name in sorted(names, key=lambda n: not _is_main_json(n)):
        try:
            os.unlink(name, dir_fd=directory.fd)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _io_error(exc, f"remove {excerpt(name)}", directory.path) from exc
        removed.append(name)
    _fsync_fd(directory.fd)
    return removed


def _is_main_json(name: str) -> bool:
    return name.endswith(SUFFIXES["json"]) and not name.endswith(SUFFIXES["cutmarks"])


def _stage_file(stage: int, name: str, data: bytes, shown: Path) -> None:
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644, dir_fd=stage)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, 0o644)
            handle.write(data)
            handle.flush()
            os.fsync(fd)
    except OSError as exc:
        raise _io_error(exc, f"write {excerpt(name)}", shown) from exc


def _link_old(directory: OpenDir, name: str, backup: int) -> None:
    """Keeps the current ``name`` (if any) in ``backup``, so a failed commit can restore it."""
    try:
        os.link(name, name, src_dir_fd=directory.fd, dst_dir_fd=backup, follow_symlinks=False)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _io_error(exc, f"write {excerpt(name)}", directory.path) from exc


def _commit(directory: OpenDir, stage: int, backup: int, order: list[str]) -> None:
    done: list[str] = []
    try:
        for name in order:
            os.replace(name, name, src_dir_fd=stage, dst_dir_fd=directory.fd)
            done.append(name)
    except OSError as exc:
        for name in reversed(done):
            try:
                os.replace(name, name, src_dir_fd=backup, dst_dir_fd=directory.fd)
            except FileNotFoundError:
                os.unlink(name, dir_fd=directory.fd)
        raise _io_error(exc, f"write {excerpt(order[len(done)])}", directory.path) from exc


def _clear_stage(stage: int) -> None:
    """Empties the staging directory ``stage`` (an open descriptor), its backup ``old/``
    removed with what it holds."""
    if "old" in os.listdir(stage):
        backup = os.open("old", _DIR_FLAGS, dir_fd=stage)
        try:
            _empty(backup)
        finally:
            os.close(backup)
        os.rmdir("old", dir_fd=stage)
    _empty(stage)


def _empty(fd: int) -> None:
    """Removes the files left in the directory ``fd`` (a staging directory)."""
    for name in os.listdir(fd):
        try:
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass


def _fsync_fd(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError:
        pass
