"""How big the worker's Docker image is, measured without Docker.

No Docker engine runs here, so this builds the image's filesystem in a folder instead:

1. base: ``debootstrap --variant=minbase bookworm``, upgraded from bookworm, its updates and
   security, then slimmed the way debuerreotype makes ``debian:bookworm-slim`` (its
   documentation, manual pages and translations removed, and a dpkg ``path-exclude`` file that
   keeps them out of later installs);
2. Python: python:3.11-slim's runtime packages (ca-certificates, netbase, tzdata) and, in place of
   the CPython that python:3.11-slim compiles into /usr/local, Debian's ``python3`` and
   ``python3-venv`` with a venv at /opt/venv first on PATH: where the image's ``pip`` installs
   (Debian's own Python refuses system-wide pip installs, PEP 668). An approximation: the report
   says by how much the two Pythons differ;
3. image: every instruction of docker/Dockerfile after its FROM, in a chroot: ENV, WORKDIR, COPY
   (the committed files, as a fresh clone has them), RUN (``useradd``, ``pip install .`` from
   PyPI), USER; then, as the Dockerfile's user, ``ocml --version`` and ``ocml segment`` of
   tests/data/lecture-sample.flac, whose segments must equal the checkout's own.

Sizes count as ``docker images`` counts a layer: each file and symlink by its size, a hard link
once, directories nothing. Compressed sizes are ``tar | gzip -6`` of the tree (registries store
layers gzipped). ``--all-extras`` builds a second image whose ``pip install .`` installs every
extra (``.[tensorflow,litert,player,train]``). Needs root (debootstrap, chroot, mount) and
debootstrap (``make image-size`` installs it); works in build/image-size/ and removes it.

Run:  python benchmarks/image_size.py [--all-extras] [--markdown OUT.md] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
SAMPLE = ROOT / "tests" / "data" / "lecture-sample.flac"
WORKDIR = ROOT / "build" / "image-size"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
ALL_EXTRAS = "tensorflow,litert,player,train"
# python:3.11-slim-bookworm's Debian: the last whose own python3 is 3.11. The python:3.11-slim
# alias follows docker-library's default Debian: trixie now (first in its versions.json).
SUITE = "bookworm"
ALIAS_SUITE = "trixie"
VENV = "/opt/venv"  # stands in for python:3.11-slim's /usr/local, where its pip installs
PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# python:3.11-slim's apt-get install line, and Debian's Python in place of the one it compiles.
RUNTIME_PACKAGES = ("ca-certificates", "netbase", "tzdata")
PYTHON_PACKAGES = ("python3", "python3-venv")
# Parts of CPython that python:3.11-slim keeps in /usr/local and Debian ships apart.
SPLIT_OFF = ("python3-lib2to3", "python3-distutils", "idle-python3.11", "python3-tk")
# debuerreotype's .slimify-excludes and .slimify-includes: what makes debian:<suite>-slim.
SLIM_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/info/*",
    "/usr/share/linda/*",
    "/usr/share/lintian/overrides/*",
    "/usr/share/locale/*",
    "/usr/share/man/*",
    "/usr/share/doc/kde/HTML/*/*",
    "/usr/share/gnome/help/*/*",
    "/usr/share/omf/*/*-*.emf",
)
SLIM_INCLUDES = (
    "/usr/share/doc/*/copyright",
    "/usr/share/doc/kde/HTML/C/*",
    "/usr/share/gnome/help/*/C/*",
    "/usr/share/locale/all_languages",
    "/usr/share/locale/currency/*",
    "/usr/share/locale/l10n/*",
    "/usr/share/locale/languages",
    "/usr/share/locale/locale.alias",
    "/usr/share/omf/*/*-C.emf",
)
# What debian:<suite>-slim's tarball leaves out, and what its Dockerfiles delete after apt-get.
APT_LEFTOVERS = ("var/lib/apt/lists", "var/cache/apt", "var/log/apt", "var/log/dpkg.log")
IGNORED_INSTRUCTIONS = {"CMD", "ENTRYPOINT", "STOPSIGNAL", "EXPOSE", "LABEL", "VOLUME"}


@dataclass
class Stage:
    """One measured state of the root filesystem."""

    label: str
    size: int
    gzipped: int | None = None


@dataclass
class Image:
    """What applying docker/Dockerfile over the Python stage gave, and where it leaves off."""

    layers: list[tuple[str, int]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    user: str = "root"
    workdir: str = "/"
    build_dir: str = "/"
    size: int = 0
    gzipped: int = 0
    site_packages: int = 0
    site_bytecode: int = 0
    compiled: int = 0
    packages: dict[str, int] = field(default_factory=dict)
    build_dir_sizes: dict[str, int] = field(default_factory=dict)
    proof: list[str] = field(default_factory=list)


def tree_size(root: Path, skip: Collection[str] = ()) -> int:
    """Bytes under ``root`` as Docker sizes a layer: files and symlinks by their lstat size, hard
    links once, directories nothing; ``skip`` lists paths relative to ``root`` left out."""
    root = Path(root)
    seen: set[tuple[int, int]] = set()
    total = 0
    folders = [root]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if Path(entry.path).relative_to(root).as_posix() in skip:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                    continue
                info = entry.stat(follow_symlinks=False)
                if info.st_nlink > 1:
                    if (info.st_dev, info.st_ino) in seen:
                        continue
                    seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def bytecode_size(root: Path) -> int:
    """Bytes of the ``__pycache__`` folders under ``root``: the .pyc files Python compiled."""
    return sum(tree_size(p) for p in Path(root).rglob("__pycache__") if p.is_dir())


def dist_sizes(site_packages: Path) -> dict[str, int]:
    """Bytes each installed distribution's RECORD lists (its scripts in bin/ too), largest first;
    a file two distributions list counts for the first."""
    site_packages = Path(site_packages)
    counted: set[Path] = set()
    sizes: dict[str, int] = {}
    for record in sorted(site_packages.glob("*.dist-info/RECORD")):
        name = record.parent.name.split("-")[0]
        total = 0
        with record.open(newline="") as rows:
            for row in csv.reader(rows):
                if not row:
                    continue
                path = Path(os.path.normpath(site_packages / row[0]))
                if path in counted or not path.is_file():
                    continue
                counted.add(path)
                total += path.lstat().st_size
        sizes[name] = total
    return dict(sorted(sizes.items(), key=lambda item: -item[1]))


def gzip_size(root: Path) -> int:
    """Bytes of ``tar -c root | gzip -6``: about what a registry stores for it."""
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(root), "-cf", "-", "."], stdout=subprocess.PIPE
    )
    gz = subprocess.Popen(["gzip", "-6"], stdin=tar.stdout, stdout=subprocess.PIPE)
    assert tar.stdout is not None and gz.stdout is not None
    tar.stdout.close()
    total = 0
    while chunk := gz.stdout.read(1 << 20):
        total += len(chunk)
    if tar.wait() or gz.wait():
        raise RuntimeError(f"tar | gzip of {root} failed: {tar.returncode}, {gz.returncode}")
    return total


def dockerfile_steps(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile instruction, continuation lines joined with one
    space and comments dropped, as Docker reads them."""
    steps: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        word, _, args = (pending + stripped).partition(" ")
        steps.append((word.upper(), args.strip()))
        pending = ""
    if pending:
        raise ValueError(f"Dockerfile ends inside a continued line: {pending!r}")
    return steps


def env_values(args: str) -> dict[str, str]:
    """The variables one ENV instruction sets (``K=V ...``, or the old ``K V`` form)."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        key, _, value = args.partition(" ")
        return {key: value.strip()}
    return dict(word.split("=", 1) for word in words)


def with_extras(command: str, extras: str) -> str:
    """A RUN command whose ``pip install .`` installs ``.[extras]`` instead."""
    changed, count = re.subn(r"pip install \.(?=\s|$)", f"pip install '.[{extras}]'", command)
    if count != 1:
        raise ValueError(
            f"expected one 'pip install .' in the RUN command, got {count}: {command!r}"
        )
    return changed


def debian_mirrors(text: str) -> dict[str, str]:
    """Suite -> the first URI that serves it in apt sources text, deb822 stanzas or ``deb``
    lines alike."""
    mirrors: dict[str, str] = {}
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, flags=re.M))
        if "deb" in fields.get("Types", "").split() and fields.get("URIs"):
            for suite in fields.get("Suites", "").split():
                mirrors.setdefault(suite, fields["URIs"].split()[0])
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line).split()
        if len(words) >= 3 and words[0] == "deb":
            mirrors.setdefault(words[2], words[1])
    return mirrors


def machine_mirrors() -> dict[str, str]:
    """``debian_mirrors`` of every apt sources file of this machine."""
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    text = "\n\n".join(p.read_text() for p in files if p.is_file())
    return debian_mirrors(text)


def run(command: list[str], env: dict[str, str] | None = None) -> str:
    """Run a host command, its output returned; a failure raises with its stderr."""
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(
            f"{shlex.join(command)} failed ({done.returncode}): {done.stderr[-3000:]}"
        )
    return done.stdout


@contextmanager
def proc_mounted(root: Path) -> Iterator[None]:
    """/proc mounted inside ``root`` for as long as a chroot command runs."""
    run(["mount", "-t", "proc", "proc", str(root / "proc")])
    try:
        yield
    finally:
        run(["umount", str(root / "proc")])


def passwd_ids(root: Path, user: str) -> tuple[int, int, str]:
    """(uid, gid, home) of ``user`` (a name or uid) in the rootfs's /etc/passwd."""
    for line in (root / "etc" / "passwd").read_text().splitlines():
        name, _, uid, gid, _, home, _ = line.split(":")
        if user in (name, uid):
            return int(uid), int(gid), home
    raise KeyError(f"no user {user!r} in {root / 'etc' / 'passwd'}")


def chroot(
    root: Path,
    command: str,
    env: dict[str, str] | None = None,
    cwd: str = "/",
    user: str = "root",
) -> str:
    """Run a shell command inside ``root`` as ``user``, in ``cwd``, with only ``env`` (and PATH,
    HOME, LANG) set, as a Dockerfile's RUN does."""
    uid, gid, home = passwd_ids(root, user)
    environment = {"PATH": PATH, "HOME": home, "LANG": "C.UTF-8", **(env or {})}
    with proc_mounted(root):
        return run(
            [
                "chroot",
                f"--userspec={uid}:{gid}",
                str(root),
                "sh",
                "-c",
                f"cd {shlex.quote(cwd)} && {command}",
            ],
            env=environment,
        )


@contextmanager
def pip_cert(root: Path) -> Iterator[dict[str, str]]:
    """The certificate bundle this machine's pip is told to trust (``PIP_CERT``: a proxy's
    authority), copied into ``root`` while a RUN installs, as the variables that point pip to it."""
    bundle = os.environ.get("PIP_CERT")
    if not bundle:
        yield {}
        return
    copy = root / "tmp" / "pip-cert.pem"
    shutil.copyfile(bundle, copy)
    try:
        yield {"PIP_CERT": "/tmp/pip-cert.pem"}
    finally:
        copy.unlink()


def apt_install(root: Path, packages: Collection[str]) -> None:
    """apt-get install without recommends inside ``root``, leaving no lists or caches."""
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    chroot(root, "apt-get update -qq", env)
    chroot(root, f"apt-get install -y -qq --no-install-recommends {' '.join(packages)}", env)
    drop_apt_leftovers(root)


def drop_apt_leftovers(root: Path) -> None:
    """Delete apt's lists, caches and logs, as debian:*-slim and python:*-slim leave none."""
    for relative in APT_LEFTOVERS:
        path = root / relative
        if path.is_dir():
            for child in path.iterdir():
                remove_path(child)
        elif path.exists():
            path.unlink()


def remove_path(path: Path) -> None:
    """Delete a file, symlink or folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def slimify(root: Path) -> None:
    """What debuerreotype-slimify does: the dpkg path-exclude file, and the excluded files gone
    (copyright files and the other includes kept), with the folders and links that leaves empty."""
    config = ["# slim: as debuerreotype-slimify writes it"]
    config += [f"path-exclude {p}" for p in SLIM_EXCLUDES]
    config += [f"path-include {p}" for p in SLIM_INCLUDES]
    (root / "etc/dpkg/dpkg.cfg.d/docker").write_text("\n".join(config) + "\n")
    for pattern in SLIM_EXCLUDES:
        top = root / posixpath.dirname(pattern).lstrip("/").split("*")[0]
        if not top.is_dir():
            continue
        for folder, _, files in os.walk(top):
            for name in files:
                path = Path(folder) / name
                if path.is_symlink():
                    continue
                inside = "/" + path.relative_to(root).as_posix()
                if fnmatch(inside, pattern) and not any(fnmatch(inside, p) for p in SLIM_INCLUDES):
                    path.unlink()
        prune_empty(top)


def prune_empty(top: Path) -> None:
    """Delete dangling symlinks and empty folders under ``top`` until none is left."""
    removed = True
    while removed:
        removed = False
        for folder, dirs, files in os.walk(top, topdown=False):
            for name in dirs + files:
                path = Path(folder) / name
                dangling = path.is_symlink() and not path.exists()
                if dangling or (
                    path.is_dir() and not path.is_symlink() and not any(path.iterdir())
                ):
                    remove_path(path)
                    removed = True


def build_base(root: Path, suite: str, mirrors: dict[str, str]) -> list[Stage]:
    """debootstrap minbase of ``suite``, upgraded and slimmed: debian:<suite>-slim's filesystem."""
    mirror = mirrors.get(suite, DEFAULT_MIRROR)
    security = mirrors.get(f"{suite}-security", DEFAULT_SECURITY)
    root.mkdir(parents=True, exist_ok=True)
    run(["debootstrap", "--variant=minbase", suite, str(root), mirror])
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(
        f"Types: deb\nURIs: {mirror}\nSuites: {suite} {suite}-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: {security}\nSuites: {suite}-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    chroot(root, "apt-get update -qq && apt-get full-upgrade -y -qq", env)
    drop_apt_leftovers(root)
    minbase = Stage(f"debootstrap --variant=minbase {suite}, upgraded", tree_size(root))
    slimify(root)
    return [minbase, Stage(f"slim base (debian:{suite}-slim)", tree_size(root), gzip_size(root))]


def python_estimate(root: Path) -> dict[str, int]:
    """What separates Debian's Python here from python:3.11-slim's: the bytecode Debian compiles
    (python:3.11-slim deletes every .pyc; ``bytecode: …``) and the Installed-Size of the parts
    of CPython that Debian ships apart and python:3.11-slim has (``split off: …``)."""
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    chroot(root, "apt-get update -qq", env)
    shown = chroot(root, f"apt-cache show --no-all-versions {' '.join(SPLIT_OFF)}", env)
    drop_apt_leftovers(root)
    sizes = {
        "bytecode: /usr/lib/python3*": sum(
            bytecode_size(p) for p in (root / "usr/lib").glob("python3*")
        ),
        f"bytecode: {VENV}": bytecode_size(root / VENV.lstrip("/")),
    }
    for stanza in shown.split("\n\n"):
        name = re.search(r"^Package: (\S+)", stanza, flags=re.M)
        size = re.search(r"^Installed-Size: (\d+)", stanza, flags=re.M)
        if name and size:
            sizes[f"split off: {name.group(1)}"] = int(size.group(1)) * 1024
    return sizes


def build_python(root: Path) -> tuple[Stage, dict[str, int]]:
    """python:3.11-slim's runtime packages, Debian's Python and the venv standing for /usr/local."""
    apt_install(root, RUNTIME_PACKAGES + PYTHON_PACKAGES)
    chroot(root, f"python3 -m venv {VENV}")
    estimate = python_estimate(root)
    version = chroot(root, "python3 --version").strip()
    return Stage(
        f"+ {version}, venv, {', '.join(RUNTIME_PACKAGES)}", tree_size(root), gzip_size(root)
    ), estimate


def git_output(*args: str) -> bytes:
    """What a git command in the checkout writes to stdout."""
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=True).stdout


def copy_committed(root: Path, sources: list[str], dest: str) -> None:
    """Docker's COPY of ``sources`` to ``dest`` (absolute in the image) from the committed tree,
    as a fresh clone has it: a folder's contents into dest; a file into dest when dest ends in /
    or several sources are copied, else as dest."""
    if (ROOT / ".dockerignore").exists():
        raise ValueError(f"{ROOT / '.dockerignore'} exists and this COPY does not read it")
    into = dest.endswith("/") or len(sources) > 1
    target = root / dest.lstrip("/")
    for source in sources:
        if git_output("cat-file", "-t", f"HEAD:{source}").strip() == b"tree":
            target.mkdir(parents=True, exist_ok=True)
            tree = git_output("archive", f"HEAD:{source}")
            subprocess.run(["tar", "-x", "-C", str(target)], input=tree, check=True)
        else:
            path = target / posixpath.basename(source) if into else target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(git_output("show", f"HEAD:{source}"))


def apply_dockerfile(root: Path, steps: list[tuple[str, str]], extras: str | None) -> Image:
    """Each instruction after FROM, in order, with the bytes it adds; ``extras`` changes the
    ``pip install .`` of its RUN to install them."""
    image = Image()
    site = next((root / VENV.lstrip("/") / "lib").glob("python3*/site-packages"))
    bytecode_before = bytecode_size(site)
    for word, args in steps:
        before = tree_size(root)
        if word == "FROM" or word in IGNORED_INSTRUCTIONS:
            continue
        if word == "ENV":
            image.env.update(env_values(args))
        elif word == "USER":
            image.user = args
        elif word == "WORKDIR":
            image.workdir = posixpath.join(image.workdir, args)
            (root / image.workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif word == "COPY":
            *sources, dest = shlex.split(args)
            copy_committed(root, sources, posixpath.join(image.workdir, dest))
        elif word == "RUN":
            if "pip install" in args:
                image.build_dir = image.workdir
                args = with_extras(args, extras) if extras else args
            with pip_cert(root) as cert:
                chroot(root, args, {**image.env, **cert}, cwd=image.workdir, user=image.user)
        else:
            raise ValueError(f"unsupported Dockerfile instruction: {word} {args}")
        if word in ("WORKDIR", "COPY", "RUN"):
            image.layers.append((f"{word} {args}", tree_size(root) - before))
    image.site_packages = tree_size(site)
    image.site_bytecode = bytecode_size(site)
    image.compiled = image.site_bytecode - bytecode_before
    image.packages = dist_sizes(site)
    build_dir = root / image.build_dir.lstrip("/")
    image.build_dir_sizes = {
        p.name: tree_size(p) if p.is_dir() else p.lstat().st_size for p in build_dir.iterdir()
    }
    image.size = tree_size(root)
    image.gzipped = gzip_size(root)
    return image


def segments_of(result: Path) -> list[tuple[float, float]]:
    """(start, end) of each segment in an ``ocml segment`` JSON result."""
    return [(s["start"], s["end"]) for s in json.loads(result.read_text())["segments"]]


def reference_segments(tmp: Path, runtime: str) -> list[tuple[float, float]]:
    """The sample's segments from this checkout's own ``ocml`` on ``runtime``: the yardstick."""
    ocml = Path(sys.executable).parent / "ocml"
    out = tmp / runtime
    run(
        [
            str(ocml),
            "segment",
            str(SAMPLE),
            "-o",
            str(out),
            "-q",
            "--format",
            "json",
            "--runtime",
            runtime,
        ]
    )
    return segments_of(out / f"{SAMPLE.stem}.json")


def prove(root: Path, image: Image, runtimes: list[str], reference: Path) -> list[str]:
    """``ocml --version`` and the sample segmented on each runtime inside the image, as its user
    from its workdir with its environment; raises unless the segments equal those of the
    checkout's ``ocml`` on the same runtime (its results kept in ``reference``)."""
    sample = root / "tmp" / SAMPLE.name
    shutil.copyfile(SAMPLE, sample)
    sample.chmod(0o644)
    lines = [chroot(root, "ocml --version", image.env, image.workdir, image.user).strip()]
    for runtime in runtimes:
        out = f"/tmp/ocml-{runtime}"
        said = chroot(
            root,
            f"ocml segment /tmp/{SAMPLE.name} -o {out} --format json --runtime {runtime}",
            image.env,
            image.workdir,
            image.user,
        )
        found = segments_of(root / out.lstrip("/") / f"{SAMPLE.stem}.json")
        expected = reference_segments(reference, runtime)
        if found != expected:
            raise RuntimeError(
                f"--runtime {runtime} in the image: {found}, the checkout: {expected}"
            )
        lines.append(f"`--runtime {runtime}`: {said.strip()} (the checkout's segments, to the ms)")
    return lines


def remove_tree(path: Path) -> None:
    """Delete a build folder, refusing while anything is mounted inside it."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    inside = [m for m in mounts if m == str(path) or m.startswith(f"{path}/")]
    if inside:
        raise RuntimeError(f"not removing {path}: still mounted there: {inside}")
    run(["rm", "-rf", "--one-file-system", str(path)])


def mb(size: int | None) -> str:
    """Bytes as MB (10^6, as ``docker images`` counts), or a dash."""
    return "—" if size is None else f"{size / 1e6:.1f} MB"


def facts(root: Path) -> dict[str, str]:
    """Versions the figures depend on: debootstrap, Debian, Python, pip; the machine."""
    pip = chroot(root, f"{VENV}/bin/pip --version").split(" from ")[0]
    return {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}",
        "debootstrap": run(["debootstrap", "--version"]).strip(),
        "Debian": (root / "etc/debian_version").read_text().strip(),
        "Python": chroot(root, "python3 --version").strip(),
        "pip": pip,
    }


def report(
    info: dict[str, str],
    stages: list[Stage],
    alias_base: Stage,
    estimate: dict[str, int],
    core: Image,
    full: Image | None,
) -> str:
    """The markdown report of one run."""
    command = "python benchmarks/image_size.py" + (" --all-extras" if full else "")
    lines = [
        "# The worker image's size, measured without Docker",
        "",
        f"`{command}` on {info['date']}: {info['machine']}; {info['debootstrap']}, Debian "
        f"{SUITE} {info['Debian']}, {info['Python']}, {info['pip']}; {info['took']}. The image's "
        "filesystem is built in a folder (debootstrap, then docker/Dockerfile's instructions in a "
        "chroot; the script's docstring says how). MB = 10^6 bytes; sizes count as `docker "
        "images` does (files and symlinks, hard links once); gzip is `tar | gzip -6` of the "
        "whole tree, about what a registry stores and a host pulls.",
        "",
        "| stage | size | gzip -6 | added |",
        "| --- | ---: | ---: | ---: |",
    ]
    previous = 0
    rows = [*stages, Stage("+ docker/Dockerfile, core install: the image", core.size, core.gzipped)]
    for stage in rows:
        added = mb(stage.size - previous)
        lines.append(f"| {stage.label} | {mb(stage.size)} | {mb(stage.gzipped)} | {added} |")
        previous = stage.size
    if full:
        lines.append(
            f"| the same image with `pip install '.[{ALL_EXTRAS}]'` | {mb(full.size)} "
            f"| {mb(full.gzipped)} | {mb(full.size - stages[-1].size)} over Python |"
        )
    lines.append(
        f"| for comparison: slim base of {ALIAS_SUITE} (debian:{ALIAS_SUITE}-slim) "
        f"| {mb(alias_base.size)} | {mb(alias_base.gzipped)} | |"
    )
    lines += [
        "",
        "## docker/Dockerfile's instructions (core)",
        "",
        "| instruction | adds |",
        "| --- | ---: |",
    ]
    lines += [
        f"| `{text[:90]}{'…' if len(text) > 90 else ''}` | {mb(size)} |"
        for text, size in core.layers
    ]
    leftovers = {
        k: v for k, v in core.build_dir_sizes.items() if k == "build" or k.endswith(".egg-info")
    }
    lines += [
        "",
        f"{core.build_dir} after `pip install .`: "
        + ", ".join(
            f"{name} {mb(size)}"
            for name, size in sorted(core.build_dir_sizes.items(), key=lambda item: -item[1])
        )
        + (f" (left by the in-tree build: {', '.join(leftovers)})" if leftovers else "")
        + ".",
    ]
    for title, image in (("core", core), (f"every extra: {ALL_EXTRAS}", full)):
        if image is None:
            continue
        lines += [
            "",
            f"## Largest distributions in {VENV}, {title}",
            "",
            f"site-packages {mb(image.site_packages)}, of which {mb(image.site_bytecode)} "
            f"bytecode; {mb(image.compiled)} of it compiled by the Dockerfile's `pip install` "
            "(its `PYTHONDONTWRITEBYTECODE` does not stop pip; `pip install --no-compile` "
            "would, at the cost of compiling each module in memory at every start).",
            "",
            "| distribution | size |",
            "| --- | ---: |",
        ]
        lines += [f"| {name} | {mb(size)} |" for name, size in list(image.packages.items())[:12]]
    added = stages[-1].size - stages[-2].size
    bytecode = sum(v for k, v in estimate.items() if k.startswith("bytecode"))
    split = sum(v for k, v in estimate.items() if k.startswith("split off"))
    lines += [
        "",
        "## Debian's Python against python:3.11-slim's",
        "",
        f"The Python stage adds {mb(added)}. python:3.11-slim compiles CPython into /usr/local "
        f"and deletes every .pyc; Debian compiles its standard library's bytecode at install "
        f"and the venv's pip and setuptools are compiled too ({mb(bytecode)}). "
        f"python:3.11-slim keeps in /usr/local parts of CPython that Debian ships in packages "
        f"not installed here (their Installed-Size {mb(split)}; C headers not counted). So "
        f"python:3.11-slim-{SUITE}'s Python stage would be about {mb(added - bytecode + split)} "
        f"and the image on it about {mb(core.size - bytecode + split)}: an estimate (CPython "
        "built with other options, other pip and setuptools versions).",
        "",
    ]
    lines += [f"- {name}: {mb(size)}" for name, size in estimate.items()]
    lines += ["", "## Proof that the image works", ""]
    for title, image in (("core", core), ("every extra", full)):
        if image is not None:
            lines += [f"- {title}: " + "; ".join(image.proof)]
    lines += [
        "",
        "## What differs from `docker build`",
        "",
        f"- `FROM python:3.11-slim` is an alias that follows docker-library's default Debian, "
        f"{ALIAS_SUITE} now: a `docker build` today gets python:3.11-slim-{ALIAS_SUITE}. This "
        f"measures {SUITE} (python:3.11-slim-{SUITE}), whose own Python is 3.11; the "
        f"{ALIAS_SUITE} row above is its base alone.",
        "- Debian's Python 3.11 stands in for the CPython python:3.11-slim compiles (estimate "
        "above), in a venv at /opt/venv for its /usr/local.",
        "- An instruction's size is how much the tree grew; a Docker layer also stores again "
        "each file the instruction changed (few here: the RUN adds files).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--all-extras", action="store_true", help=f"also build with .[{ALL_EXTRAS}]"
    )
    parser.add_argument("--markdown", type=Path, help="write the report here too")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument(
        "--keep", action="store_true", help="leave the root filesystems in --workdir"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("image_size.py: needs root (debootstrap, chroot, mount)")
    if shutil.which("debootstrap") is None:
        sys.exit("image_size.py: needs debootstrap: apt-get install debootstrap")
    steps = dockerfile_steps(DOCKERFILE.read_text())
    if args.workdir.exists():
        remove_tree(args.workdir)
    core_root, full_root = args.workdir / "rootfs", args.workdir / "rootfs-full"
    started = time.monotonic()
    try:
        mirrors = machine_mirrors()
        stages = build_base(core_root, SUITE, mirrors)
        python, estimate = build_python(core_root)
        stages.append(python)
        info = facts(core_root)
        alias_base = build_base(args.workdir / "rootfs-alias", ALIAS_SUITE, mirrors)[-1]
        if args.all_extras:
            run(["cp", "-a", str(core_root), str(full_root)])
        core = apply_dockerfile(core_root, steps, None)
        core.proof = prove(core_root, core, ["onnx"], args.workdir / "reference")
        full = None
        if args.all_extras:
            full = apply_dockerfile(full_root, steps, ALL_EXTRAS)
            full.proof = prove(full_root, full, ["onnx", "tensorflow"], args.workdir / "reference")
    finally:
        if not args.keep:
            remove_tree(args.workdir)
    info["took"] = f"{(time.monotonic() - started) / 60:.0f} min"
    text = report(info, stages, alias_base, estimate, core, full)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
