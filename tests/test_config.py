"""Settings: defaults, YAML file, OCML_* overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ocml.config.settings import DEFAULT_FILE, Settings, SettingsError, load_settings
from ocml.worker.app import celery_config


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_defaults_come_from_default_yaml():
    settings = load_settings(env={})
    shipped = yaml.safe_load(DEFAULT_FILE.read_text())
    assert settings.to_dict() == {**shipped, "params": {}}
    assert settings.broker_url == "redis://127.0.0.1:6379/0"
    assert settings.media_roots == (Path("/srv/media"),)


def test_the_model_setting_names_the_shipped_model_or_a_path():
    assert load_settings(env={}).model_path is None
    assert load_settings(env={"OCML_MODEL": "/srv/models/mine"}).model_path == Path(
        "/srv/models/mine"
    )


def test_file_then_environment_override_in_that_order(tmp_path):
    config = write(
        tmp_path / "s.yaml",
        {"max_deliveries": 5, "output_root": "/data/out", "media_roots": ["/a"]},
    )
    env = {
        "OCML_CONFIG": str(config),
        "OCML_MAX_DELIVERIES": "7",
        "OCML_MEDIA_ROOTS": "/m1:/m2",
        "OCML_FORMATS": "json, smil,rttm",
        "OCML_PARAMS": "{min_silence: 2.0}",
        "OCML_VISIBILITY_TIMEOUT": "90000",
        "OCML_BROKER_URL": "rediss://:secret@redis.example:6380/1",
        "OCML_TEST_REDIS_DB": "6",
        "PATH": "/bin",
    }
    settings = load_settings(env=env)
    assert settings.max_deliveries == 7
    assert settings.output_root == Path("/data/out")
    assert settings.media_roots == (Path("/m1"), Path("/m2"))
    assert settings.formats == ("json", "smil", "rttm")
    assert settings.params == {"min_silence": 2.0}
    assert settings.visibility_timeout == 90000.0
    assert settings.broker_url.startswith("rediss://")


def test_explicit_path_wins_over_ocml_config(tmp_path):
    a = write(tmp_path / "a.yaml", {"preset": "opencast"})
    b = write(tmp_path / "b.yaml", {"preset": "default", "concurrency": 3})
    settings = load_settings(b, env={"OCML_CONFIG": str(a)})
    assert (settings.preset, settings.concurrency) == ("default", 3)


@pytest.mark.parametrize(
    ("source", "key", "value", "words"),
    [
        ("file", "colour", "red", ["unknown settings key 'colour'"]),
        ("env", "COLOUR", "red", ["OCML_COLOUR", "unknown settings key 'colour'"]),
        ("file", "max_deliveries", 0, ["max_deliveries", "at least 1", "0"]),
        ("env", "MAX_DELIVERIES", "three", ["OCML_MAX_DELIVERIES", "number", "'three'"]),
        ("file", "concurrency", 1.5, ["concurrency", "whole number", "1.5"]),
        ("file", "visibility_timeout", "nan", ["visibility_timeout", "finite", "nan"]),
        ("file", "broker_url", "amqp://localhost", ["broker_url", "Redis URL", "amqp://localhost"]),
        ("env", "BROKER_URL", "redis://host:notaport/0", ["OCML_BROKER_URL", "port 'notaport'"]),
        ("env", "RESULT_BACKEND", "redis://h:99999/0", ["OCML_RESULT_BACKEND", "port '99999'"]),
        ("file", "broker_url", "redis://h:6379/zero", ["broker_url", "db 'zero' is not a number"]),
        ("file", "broker_url", "redis://h/0?db=x", ["broker_url", "db 'x' is not a number"]),
        ("file", "broker_url", "unix://", ["broker_url", "no socket path"]),
        ("file", "broker_url", "sentinel://a:1;sentinel://b:x", ["broker_url", "port 'x'"]),
        ("file", "media_roots", "/srv/media", ["media_roots", "list"]),
        ("env", "MEDIA_ROOTS", "relative/dir", ["OCML_MEDIA_ROOTS", "absolute", "relative/dir"]),
        ("file", "output_root", "results", ["output_root", "absolute", "results"]),
        ("file", "formats", [], ["formats", "non-empty"]),
        ("file", "params", [1, 2], ["params", "mapping"]),
        ("file", "retry_backoff", True, ["retry_backoff", "number", "True"]),
        ("file", "visibility_timeout", 25, ["visibility_timeout", "3 x lease_interval", "30"]),
    ],
)
def test_bad_keys_and_values_are_errors_naming_the_key(tmp_path, source, key, value, words):
    if source == "file":
        config = write(tmp_path / "s.yaml", {key: value})
        env: dict[str, str] = {}
        where = str(config)
    else:
        config, env, where = None, {f"OCML_{key}": value}, f"OCML_{key}"
    with pytest.raises(SettingsError) as caught:
        load_settings(config, env=env)
    message = str(caught.value)
    for word in words:
        assert word in message
    if key != "visibility_timeout" or value != 25:
        assert where in message


@pytest.mark.parametrize("text", ["- just\n- a list\n", "key: [unclosed\n"])
def test_a_settings_file_that_is_no_yaml_mapping_is_refused(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=str(path)):
        load_settings(path, env={})


def test_missing_settings_file_is_named(tmp_path):
    with pytest.raises(SettingsError, match="nope.yaml"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_time_limits_scale_with_duration_up_to_the_maximum():
    settings = load_settings(env={})
    assert settings.time_limits(600.0) == (60.0 + 300.0, 60.0 + 300.0 + 120.0)
    assert settings.time_limits(10 * 24 * 3600.0) == (21600.0, 21720.0)
    assert settings.time_limits(None) == (21600.0, 21720.0)


def test_the_default_wait_scales_with_the_recording():
    settings = load_settings(env={})
    # Three runs at the hard limit of a one-hour recording, each after a lease expiry.
    assert settings.wait_timeout(3600.0) == 3 * (60.0 + 1800.0 + 120.0 + 60.0)
    assert settings.wait_timeout(60.0) < settings.wait_timeout(3600.0)
    assert settings.wait_timeout(None) == 3 * (21720.0 + 60.0)


def test_settings_ignore_the_test_suites_own_variables():
    settings = load_settings(env={"OCML_TEST_REDIS_DB": "5", "OCML_MAX_DELIVERIES": "4"})
    assert settings.max_deliveries == 4


def test_celery_config_is_crash_safe_and_json_only():
    settings: Settings = load_settings(env={"OCML_UNACKED_RESTORE_INTERVAL": "2"})
    conf = celery_config(settings)
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_transport_options"]["visibility_timeout"] == settings.visibility_timeout
    assert conf["broker_transport_options"]["unacked_restore_interval"] == 2.0
    assert (
        conf["result_backend_transport_options"]["visibility_timeout"]
        == settings.visibility_timeout
    )
    assert conf["ocml_lease_interval"] * 3 <= settings.visibility_timeout
    assert conf["worker_send_task_events"] and conf["task_send_sent_event"]


def test_a_bad_redis_url_is_quoted_without_its_password():
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"OCML_BROKER_URL": "redis://user:hun@ter2@host:notaport/0"})
    message = str(caught.value)
    assert "'redis://user:***@host:notaport/0'" in message
    assert "hun" not in message and "ter2" not in message


@pytest.mark.parametrize(
    "url",
    [
        "redis://host:6379/0",
        "redis://:secret@host/15?db=3",
        "rediss://host:6380/0",
        "redis://[::1]:6379",
        "unix:///run/redis.sock?db=2",
        "sentinel://a:26379;sentinel://b:26379",
    ],
)
def test_usable_redis_urls_are_accepted(url):
    assert load_settings(env={"OCML_BROKER_URL": url}).broker_url == url
