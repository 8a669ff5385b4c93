"""The settings registry: environment > strongroom.toml > default; unknown names stop start-up."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from strongroom.config import (
    CONFIG_FILE,
    REGISTRY,
    Environment,
    Secret,
    Settings,
    load_settings,
    write_config_file,
)
from strongroom.errors import ConfigurationError

SETTING_NAMES = {s.name for s in REGISTRY}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def _write(home: Path, text: str) -> None:
    (home / CONFIG_FILE).write_text(text, encoding="utf-8")


def test_registry_and_settings_fields_agree() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)} - {"home", "sources"}
    assert fields == SETTING_NAMES
    assert len(SETTING_NAMES) == len(REGISTRY), "a setting is registered twice"
    for setting in REGISTRY:
        assert setting.help.strip(), setting.name
        assert setting.env_var == "STRONGROOM_" + setting.name.upper()


def test_defaults_when_nothing_is_set(home: Path) -> None:
    settings = load_settings(home, environ={})
    for setting in REGISTRY:
        value = getattr(settings, setting.name)
        if setting.secret:
            assert isinstance(value, Secret)
            assert value.reveal() == setting.default
        elif setting.type is Path:
            assert value == home / setting.default
        elif setting.name == "environment":
            assert value is Environment.PRODUCTION
        else:
            assert value == setting.default, setting.name
    assert dict(settings.sources) == {}


def test_environment_beats_file_beats_default(home: Path) -> None:
    _write(home, 'environment = "development"\nport = 9000\nlog_level = "warning"\n')
    settings = load_settings(home, environ={"STRONGROOM_PORT": "9100"})
    assert settings.port == 9100
    assert settings.sources["port"] == "environment"
    assert settings.log_level == "warning"
    assert settings.sources["log_level"] == "file"
    assert settings.host == "127.0.0.1"
    assert "host" not in settings.sources
    assert settings.environment is Environment.DEVELOPMENT


def test_relative_paths_are_under_home_and_absolute_paths_stay(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "keys" / "master.key"
    settings = load_settings(
        home, environ={"STRONGROOM_MASTER_KEY_FILE": str(elsewhere), "STRONGROOM_OBJECTS_DIR": "o"}
    )
    assert settings.master_key_file == elsewhere
    assert settings.objects_dir == home / "o"
    assert settings.tls_cert_file == home / "tls" / "server.pem"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True),
     ("0", False), ("false", False), ("No", False), ("off", False)],
)
def test_booleans_from_the_environment(home: Path, raw: str, expected: bool) -> None:
    settings = load_settings(home, environ={"STRONGROOM_TLS_SELF_SIGNED_ACKNOWLEDGED": raw})
    assert settings.tls_self_signed_acknowledged is expected


@pytest.mark.parametrize(
    ("file_text", "environ", "message"),
    [
        ('colour = "blue"\n', {}, "unknown setting 'colour'"),
        ("", {"STRONGROOM_COLOUR": "blue"}, "unknown environment variable STRONGROOM_COLOUR"),
        ("port = \n", {}, "is not valid TOML"),
        ('port = "8443"\n', {}, None),  # a quoted number is still a number: accepted
        ("port = 8443.5\n", {}, "setting port"),
        ("port = true\n", {}, "setting port"),
        ("port = 70000\n", {}, "between 0 and 65535"),
        ("debug = 1\n", {}, "setting debug"),
        ("", {"STRONGROOM_DEBUG": "perhaps"}, "setting debug"),
        ('log_level = "verbose"\n', {}, "must be one of"),
        ('environment = "staging"\n', {}, "must be one of production, test, development"),
        ("environment = 1\n", {}, "setting environment"),
        ('master_key = "abc"\n', {}, "may not be written in strongroom.toml"),
        ('database_url = "mysql://u@h/db"\n', {}, "not a SQLite or PostgreSQL URL"),
        ("", {"STRONGROOM_DATABASE_URL": "nonsense"}, "STRONGROOM_DATABASE_URL"),
        ('database_url = "postgresql+pg8000://u@h/db"\n', {}, "driver that is not installed"),
        ('environment = "production"\ndebug = true\n', {}, "debug mode is refused in production"),
        ("", {"STRONGROOM_DEBUG": "true"}, "debug mode is refused in production"),
    ],
)
def test_bad_settings_stop_with_a_clear_message(
    home: Path, file_text: str, environ: dict[str, str], message: str | None
) -> None:
    _write(home, file_text)
    if message is None:
        load_settings(home, environ=environ)
        return
    with pytest.raises(ConfigurationError) as caught:
        load_settings(home, environ=environ)
    line = caught.value.one_line()
    assert message in line
    assert "\n" not in line


def test_debug_is_allowed_outside_production(home: Path) -> None:
    settings = load_settings(
        home, environ={"STRONGROOM_ENVIRONMENT": "development", "STRONGROOM_DEBUG": "true"}
    )
    assert settings.debug is True


def test_strongroom_home_is_not_a_setting_but_is_allowed(home: Path) -> None:
    load_settings(home, environ={"STRONGROOM_HOME": str(home)})


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_home_must_be_an_existing_directory(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "x"
    if kind == "file":
        target.write_text("")
    with pytest.raises(ConfigurationError, match=r"does not exist|not a directory"):
        load_settings(target, environ={})


# -- secrets ------------------------------------------------------------------------------------


def test_secret_never_prints() -> None:
    secret = Secret("hunter2-value")
    assert "hunter2" not in str(secret)
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in f"{secret}"
    assert "hunter2" not in repr([secret])
    assert secret.reveal() == "hunter2-value"
    assert bool(secret)
    assert not Secret("")


def test_settings_repr_and_describe_hide_every_secret(home: Path) -> None:
    environ = {"STRONGROOM_MASTER_KEY": "c2VjcmV0LWtleS12YWx1ZQ=="}
    for setting in REGISTRY:
        if setting.secret and setting.name != "master_key":
            environ[setting.env_var] = f"redis://:{setting.name}-pw@127.0.0.1:6379/0"
    settings = load_settings(home, environ=environ)
    shown = repr(settings) + str(settings.describe())
    for value in environ.values():
        assert value not in shown
    assert "-pw@" not in shown
    rows = {name: (value, source) for name, value, source in settings.describe()}
    assert rows["master_key"] == ("**********", "environment")


def test_describe_masks_a_database_password(home: Path) -> None:
    url = "postgresql+psycopg://app:s3cr3t-pw@db.example:5432/strongroom"
    settings = load_settings(home, environ={"STRONGROOM_DATABASE_URL": url})
    rows = {name: value for name, value, _ in settings.describe()}
    assert "s3cr3t-pw" not in rows["database_url"]
    assert rows["database_url"] == "postgresql+psycopg://app:***@db.example:5432/strongroom"
    assert settings.database_url == url  # the real value is still there for the engine
    assert "s3cr3t-pw" not in repr(settings)


def test_describe_lists_every_setting_once(home: Path) -> None:
    names = [name for name, _, _ in load_settings(home, environ={}).describe()]
    assert sorted(names) == sorted(SETTING_NAMES)


# -- writing the file ---------------------------------------------------------------------------


def test_write_config_file_round_trips(home: Path) -> None:
    values = {"environment": "test", "port": 9443, "debug": True, "host": 'we"ird\\host'}
    write_config_file(home, values)
    settings = load_settings(home, environ={})
    assert settings.environment is Environment.TEST
    assert settings.port == 9443
    assert settings.debug is True
    assert settings.host == 'we"ird\\host'


def test_write_config_file_refuses_env_only_settings(home: Path) -> None:
    with pytest.raises(ConfigurationError, match="master_key"):
        write_config_file(home, {"master_key": "abc"})
    assert not (home / CONFIG_FILE).exists()
