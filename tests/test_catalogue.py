"""The catalogue of pinned real audio: entries valid and allowed, files selected, sources brought
into a folder from a local copy, a git repository or an archive, held-out files kept apart."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ocml.models import catalogue
from ocml.models.catalogue import CatalogueError, Source, load_catalogue, materialise, materialised
from ocml.models.clips import split_long
from ocml.models.pools import SynthConfig, build_pools

SR = 16000
# Reserved for independent evaluation or the sources dev and val are made from (DEVELOPERS.md).
FORBIDDEN = (
    "fillets", "asterisk-prompt", "asterisk-moh", "klettres", "gcompris", "ten-vad",
    "tuxpaint", "ktuberling", "pocketsphinx",
)  # fmt: skip


def source(**changes: object) -> Source:
    fields = {
        "name": "demo",
        "origin": "git",
        "package": "someone/demo",
        "version": "0" * 40,
        "licence": "CC0-1.0",
        "kind": "speech",
        "languages": ("en",),
        "include": ("clips/*/*.wav",),
    }
    return Source(**{**fields, **changes})  # type: ignore[arg-type]


def write_tree(root: Path) -> None:
    for speaker in ("anna", "ben", "cleo"):
        (root / "clips" / speaker).mkdir(parents=True)
        for i in range(2):
            tone = np.sin(np.arange(SR) * 2 * np.pi * 220 / SR).astype(np.float32) * 0.3
            sf.write(root / "clips" / speaker / f"{i}.wav", tone, SR)
    (root / "README").write_text("not audio")


def test_the_shipped_catalogue_is_valid_pinned_and_allowed() -> None:
    entries = load_catalogue()
    assert entries
    for name, s in entries.items():
        assert s.licence and s.languages, name
        assert not any(f in s.package.lower() for f in FORBIDDEN), name
        if s.origin == "git":
            assert len(s.version) == 40, f"{name}: pin a full commit"
    assert any(s.kind == "speech" and not s.heldout for s in entries.values())


def test_an_entry_must_be_pinned_and_of_a_known_kind() -> None:
    with pytest.raises(CatalogueError, match="pinned"):
        source(version="")
    with pytest.raises(CatalogueError, match="'laughs'"):
        source(kind="laughs")
    with pytest.raises(CatalogueError, match="'ftp'"):
        source(origin="ftp")


def test_a_malformed_catalogue_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("broken:\n  origin: git\n  colour: blue\n")
    with pytest.raises(CatalogueError, match="broken"):
        load_catalogue(path)


def test_files_voices_and_heldout_voices(tmp_path: Path) -> None:
    write_tree(tmp_path)
    s = source(exclude=("clips/ben/1.wav",), heldout_voices=("demo-cleo",))
    files = s.files(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "clips/anna/0.wav", "clips/anna/1.wav", "clips/ben/0.wav", "clips/cleo/0.wav",
        "clips/cleo/1.wav",
    ]  # fmt: skip
    assert s.voice_of(files[0]) == "demo-anna"
    assert [s.is_heldout(f) for f in files] == [False, False, False, True, True]
    by_name = source(voice="regex:^(\\d)")
    assert by_name.voice_of(files[1]) == "demo-1"
    assert source(voice="narrator").voice_of(files[0]) == "demo-narrator"


def test_materialise_from_a_local_folder_unpacks_archives_and_is_idempotent(
    tmp_path: Path,
) -> None:
    local = tmp_path / "local"
    write_tree(local)
    with zipfile.ZipFile(local / "pack.pk3", "w") as z:
        z.write(local / "clips" / "anna" / "0.wav", "sound/inside.wav")
    s = source(archives=("pack.pk3",), include=("pack.pk3.d/sound/*.wav",))
    folder = materialise(s, tmp_path / "root", local=local)
    assert [f.name for f in s.files(folder)] == ["inside.wav"]
    assert json.loads((folder / "SOURCE.json").read_text())["commit"] == s.version
    (folder / "marker").write_text("kept")
    assert materialise(s, tmp_path / "root", local=local) == folder
    assert (folder / "marker").exists()
    assert materialised(source(version="1" * 40), tmp_path / "root") is None


def test_an_archive_member_may_not_escape(tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    with zipfile.ZipFile(local / "evil.zip", "w") as z:
        z.writestr("../../outside.wav", b"x")
    with pytest.raises(CatalogueError, match="escapes"):
        materialise(source(archives=("evil.zip",)), tmp_path / "root", local=local)
    assert not (tmp_path / "outside.wav").exists()


def test_materialise_a_pinned_commit_from_a_git_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    write_tree(work)

    def git(*args: str) -> str:
        env = ["-c", "user.name=t", "-c", "user.email=t@t"]
        out = subprocess.run(["git", *env, *args], cwd=work, check=True, capture_output=True)
        return out.stdout.decode().strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    pinned = git("rev-parse", "HEAD")
    (work / "clips" / "anna" / "0.wav").unlink()
    git("commit", "-q", "-am", "second")
    mirror = tmp_path / "mirror"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(mirror / "someone+demo")], check=True
    )
    monkeypatch.chdir(tmp_path)
    folder = materialise(source(version=pinned), Path("root"), mirror=Path("mirror"))
    assert (tmp_path / folder / "clips" / "anna" / "0.wav").is_file()


def test_a_failing_fetch_names_the_source(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="demo: git clone"):
        materialise(source(package="no/such"), tmp_path / "root", mirror=tmp_path)


def test_split_long_cuts_in_pauses_and_keeps_every_sample() -> None:
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(12):
        parts += [rng.standard_normal(int(SR * rng.uniform(1, 3))) * 0.3, np.zeros(SR // 2)]
    x = np.concatenate(parts).astype(np.float32)
    pieces = split_long(x, SR, max_seconds=6.0)
    assert len(pieces) > 3
    assert np.array_equal(np.concatenate(pieces), x)
    assert max(p.size for p in pieces) <= 6 * SR
    for p in pieces[1:]:
        assert np.abs(p[:160]).max() == 0.0, "a cut falls in a pause, not in a word"
    assert split_long(x[: SR * 2], SR, max_seconds=6.0)[0] is not None


def test_catalogue_sources_fill_the_pools_and_heldout_files_stay_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "local"
    write_tree(local)
    path = tmp_path / "catalogue.yaml"
    path.write_text(
        "voices:\n  origin: git\n  package: a/b\n  version: '" + "0" * 40 + "'\n"
        "  licence: CC0-1.0\n  kind: speech\n  languages: [en]\n"
        "  include: ['clips/*/*.wav']\n  heldout_voices: [voices-cleo]\n"
        "street:\n  origin: git\n  package: a/c\n  version: '" + "0" * 40 + "'\n"
        "  licence: CC0-1.0\n  kind: noise\n  languages: [none]\n  include: ['clips/ben/*.wav']\n"
    )
    monkeypatch.setattr(catalogue, "CATALOGUE", path)
    root = tmp_path / "root"
    for s in load_catalogue().values():
        materialise(s, root, local=local)
    common = {"tts_utterances": 0, "system_sources": False, "catalogue_root": str(root)}
    train = build_pools(SynthConfig(catalogue=("voices", "street"), **common))
    assert {c.voice for c in train.speech} == {"voices-anna", "voices-ben"}
    assert len(train.noise) == 2
    held = build_pools(SynthConfig(catalogue=("voices",), heldout=True, **common))
    assert {c.voice for c in held.speech} == {"voices-cleo"}
    with pytest.raises(ValueError, match="unknown catalogue"):
        SynthConfig(catalogue=("nope",), **common)
