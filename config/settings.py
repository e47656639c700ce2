"""Typed worker settings: ``config/default.yaml``, then an optional YAML file, then ``OCML_*`` env.

Every key is declared once in ``Settings``; an unknown key or a value of the wrong type or range is
a ``SettingsError`` that names the key and where it came from.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from ocml.pipeline.runtimes.names import RUNTIME_CHOICES

DEFAULT_FILE = Path(__file__).with_name("default.yaml")
ENV_PREFIX = "OCML_"
CONFIG_ENV = "OCML_CONFIG"
TEST_ENV_PREFIX = "OCML_TEST_"
"""Variables the test suite reads (its Redis DB and port); not settings, so not checked here."""
REDIS_SCHEMES = ("redis://", "rediss://", "sentinel://", "unix://")
DEFAULT_MODEL = "default"
"""The ``model`` setting that names the shipped model; any other value is a SavedModel path."""


class SettingsError(ValueError):
    """A settings key is unknown or its value is unusable; the message names key and source."""


@dataclass(frozen=True)
class Settings:
    """Everything a worker, submitter or hot-folder watcher needs; defaults live in default.yaml."""

    broker_url: str
    result_backend: str
    media_roots: tuple[Path, ...]
    output_root: Path
    model: str
    runtime: str
    preset: str
    formats: tuple[str, ...]
    params: Mapping[str, Any]
    concurrency: int
    max_retries: int
    retry_backoff: float
    retry_backoff_max: float
    max_deliveries: int
    max_handoffs: int
    time_limit_base: float
    time_limit_per_audio_second: float
    time_limit_max: float
    time_limit_grace: float
    visibility_timeout: float
    unacked_restore_interval: float
    lease_interval: float
    progress_interval: float
    result_expires: int

    @property
    def model_path(self) -> Path | None:
        """The SavedModel directory to load; None for the shipped model (``model: default``)."""
        return None if self.model == DEFAULT_MODEL else Path(self.model)

    def time_limits(self, duration: float | None) -> tuple[float, float]:
        """(soft, hard) time limits in seconds for a recording of ``duration`` s (None: unknown)."""
        if duration is None:
            soft = self.time_limit_max
        else:
            soft = min(
                self.time_limit_max,
                self.time_limit_base + self.time_limit_per_audio_second * duration,
            )
        return soft, soft + self.time_limit_grace

    def wait_timeout(self, duration: float | None) -> float:
        """How long ``submit --wait`` waits by default for a recording of ``duration`` s: every
        allowed run (``max_deliveries``) at its hard time limit, each after a lease expiry."""
        hard = self.time_limits(duration)[1]
        return self.max_deliveries * (hard + self.visibility_timeout)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-friendly form (paths as strings)."""
        out = dataclasses.asdict(self)
        out["media_roots"] = [str(p) for p in self.media_roots]
        out["output_root"] = str(self.output_root)
        out["formats"] = list(self.formats)
        out["params"] = dict(self.params)
        return out


def load_settings(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] = os.environ
) -> Settings:
    """Settings from the defaults, then ``path`` (or ``$OCML_CONFIG``), then ``OCML_*`` variables
    (``OCML_TEST_*`` belong to the test suite and are ignored)."""
    raw = _read_yaml(DEFAULT_FILE)
    sources = {key: str(DEFAULT_FILE) for key in raw}
    path = path if path is not None else env.get(CONFIG_ENV) or None
    if path is not None:
        overrides = _read_yaml(Path(path))
        for key, value in overrides.items():
            _known(key, str(path))
            raw[key] = value
            sources[key] = str(path)
    for name, text in env.items():
        if (
            not name.startswith(ENV_PREFIX)
            or name == CONFIG_ENV
            or name.startswith(TEST_ENV_PREFIX)
        ):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        _known(key, f"environment variable {name}")
        raw[key] = _from_env(key, text, name)
        sources[key] = f"environment variable {name}"
    values = {key: _coerce(key, raw[key], sources[key]) for key in _FIELDS}
    settings = Settings(**values)
    _check_consistency(settings)
    return settings


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read settings file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: a settings file must be a mapping, got {type(data).__name__}")
    return data


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _known(key: str, source: str) -> None:
    if key not in _FIELDS:
        raise SettingsError(
            f"{source}: unknown settings key {key!r} (known: {', '.join(sorted(_FIELDS))})"
        )


def _from_env(key: str, text: str, name: str) -> Any:
    """An environment string in the shape its key's YAML value would have."""
    if key == "media_roots":
        return [part for part in text.split(":") if part]
    if key == "formats":
        return [part.strip() for part in text.split(",") if part.strip()]
    if key in ("params",):
        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise SettingsError(
                f"environment variable {name}: not a YAML mapping: {text!r}"
            ) from exc
    return text


LEASE_RENEWALS_PER_TIMEOUT = 3
"""A lease may miss this many renewals minus one before its job is delivered again."""

_INTS = {
    "concurrency": 0,
    "max_retries": 0,
    "max_deliveries": 1,
    "max_handoffs": 0,
    "result_expires": 1,
}
_FLOATS = {
    "retry_backoff": 0.0,
    "retry_backoff_max": 0.0,
    "time_limit_base": 0.0,
    "time_limit_per_audio_second": 0.0,
    "time_limit_max": 1.0,
    "time_limit_grace": 0.0,
    "visibility_timeout": 1.0,
    "unacked_restore_interval": 0.1,
    "lease_interval": 0.1,
    "progress_interval": 0.0,
}


def _coerce(key: str, value: Any, source: str) -> Any:
    """``value`` converted to ``key``'s type; SettingsError quoting it when impossible."""
    where = f"{source}: {key}"
    if key in _INTS:
        number = _number(value, int, where)
        if number < _INTS[key]:
            raise SettingsError(f"{where} must be at least {_INTS[key]}, got {value!r}")
        return number
    if key in _FLOATS:
        number = _number(value, float, where)
        if number < _FLOATS[key]:
            raise SettingsError(f"{where} must be at least {_FLOATS[key]}, got {value!r}")
        return number
    if key in ("broker_url", "result_backend"):
        return _redis_url(_text(value, where), where)
    if key == "media_roots":
        if isinstance(value, str) or not isinstance(value, list) or not value:
            raise SettingsError(f"{where} must be a non-empty list of directories, got {value!r}")
        return tuple(_absolute(item, where) for item in value)
    if key == "output_root":
        return _absolute(value, where)
    if key == "formats":
        if isinstance(value, str) or not isinstance(value, list) or not value:
            raise SettingsError(f"{where} must be a non-empty list of format names, got {value!r}")
        return tuple(_text(item, where) for item in value)
    if key == "params":
        if not isinstance(value, dict):
            raise SettingsError(
                f"{where} must be a mapping of segmentation parameters, got {value!r}"
            )
        return dict(value)
    if key == "runtime":
        if value not in RUNTIME_CHOICES:
            raise SettingsError(
                f"{where} must be one of {', '.join(RUNTIME_CHOICES)}, got {value!r}"
            )
        return value
    return _text(value, where)


def _number(value: Any, kind: type, where: str) -> Any:
    if isinstance(value, bool):
        raise SettingsError(f"{where} must be a number, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{where} must be a number, got {value!r}") from None
    if kind is int and isinstance(value, float) and value != number:
        raise SettingsError(f"{where} must be a whole number, got {value!r}")
    if number != number or number in (float("inf"), float("-inf")):
        raise SettingsError(f"{where} must be a finite number, got {value!r}")
    return number


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise SettingsError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _redis_url(url: str, where: str) -> str:
    """``url`` when every part of it (``;`` separates sentinels) is a Redis URL a client can
    connect with; else a SettingsError quoting it without its password."""
    for part in url.split(";"):
        reason = _redis_url_problem(part)
        if reason is not None:
            raise SettingsError(
                f"{where} must be a Redis URL such as redis://host:6379/0 "
                f"({', '.join(REDIS_SCHEMES)}): {reason}, got {_without_password(url)!r}"
            )
    return url


def _redis_url_problem(url: str) -> str | None:
    """What makes one Redis URL unusable, or None."""
    if not url.startswith(REDIS_SCHEMES):
        return "unknown scheme"
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if any(not value.isdigit() for value in query.get("db", [])):
        return f"the db {query['db'][0]!r} is not a number"
    if parts.scheme == "unix":
        return None if parts.path else "no socket path"
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        shown = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        return f"the port {shown!r} is not a number from 1 to 65535"
    db = parts.path.strip("/")
    if db and not db.isdigit():
        return f"the db {db!r} is not a number"
    return None


def _without_password(url: str) -> str:
    """``url`` with the password of each of its parts replaced by ``***``."""
    return ";".join(_part_without_password(part) for part in url.split(";"))


def _part_without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not (sep and at and colon):
        return url
    return f"{scheme}://{user}:***@{host}{slash}{tail}"


def _absolute(value: Any, where: str) -> Path:
    path = Path(_text(value, where))
    if not path.is_absolute():
        raise SettingsError(f"{where} must be an absolute path, got {value!r}")
    return path


def _check_consistency(settings: Settings) -> None:
    least = LEASE_RENEWALS_PER_TIMEOUT * settings.lease_interval
    if settings.visibility_timeout < least:
        raise SettingsError(
            f"visibility_timeout ({settings.visibility_timeout:g} s) must be at least "
            f"{LEASE_RENEWALS_PER_TIMEOUT} x lease_interval ({least:g} s): a live worker's jobs "
            "would be delivered a second time when one lease renewal comes late"
        )
