"""The master key file and variable: refused with one clear message whenever they are unfit."""

from __future__ import annotations

import base64
import secrets
import stat
from pathlib import Path

import pytest

from strongroom.config import Environment, load_settings
from strongroom.crypto import master
from strongroom.crypto.errors import MasterKeyError
from strongroom.errors import ConfigurationError


def write_key(path: Path, content: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


def good_key() -> bytes:
    return base64.b64encode(secrets.token_bytes(32)) + b"\n"


def test_generated_key_file_is_private_and_readable(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    master.generate_master_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(path.read_bytes().strip())) == 32
    key = master.read_master_key_file(path)
    assert key.origin == str(path)
    assert str(path) in repr(key)


def test_generating_refuses_to_overwrite_a_key(tmp_path: Path) -> None:
    path = write_key(tmp_path / "master.key", good_key())
    before = path.read_bytes()
    with pytest.raises(MasterKeyError, match="already exists"):
        master.generate_master_key_file(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o400, 0o600])
def test_owner_only_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    master.read_master_key_file(write_key(tmp_path / "master.key", good_key(), mode))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o620, 0o602, 0o610])
def test_group_or_world_accessible_file_is_refused(tmp_path: Path, mode: int) -> None:
    path = write_key(tmp_path / "master.key", good_key(), mode)
    with pytest.raises(MasterKeyError, match="accessible by group or others") as caught:
        master.read_master_key_file(path)
    assert f"chmod 600 {path}" in caught.value.one_line()


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="is missing") as caught:
        master.read_master_key_file(tmp_path / "master.key")
    assert "STRONGROOM_MASTER_KEY" in caught.value.one_line()


def test_a_directory_in_its_place_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.mkdir(mode=0o700)
    path.chmod(0o700)
    with pytest.raises(MasterKeyError, match="cannot read master key file"):
        master.read_master_key_file(path)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_wrong_length_is_refused(tmp_path: Path, size: int) -> None:
    path = write_key(tmp_path / "master.key", base64.b64encode(secrets.token_bytes(size)))
    with pytest.raises(MasterKeyError, match=f"is {size} bytes, expected 32"):
        master.read_master_key_file(path)


@pytest.mark.parametrize(
    "content",
    [b"not base64 at all!", b"AAAA*AAA", "é".encode() * 44, secrets.token_bytes(32)],
    ids=["words", "stray-symbol", "non-ascii", "raw-bytes"],
)
def test_bad_base64_is_refused(tmp_path: Path, content: bytes) -> None:
    path = write_key(tmp_path / "master.key", content)
    with pytest.raises(MasterKeyError, match="is not valid base64") as caught:
        master.read_master_key_file(path)
    assert caught.value.hint


def test_master_key_from_the_environment(tmp_path: Path) -> None:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    settings = load_settings(tmp_path, environ={"STRONGROOM_MASTER_KEY": key})
    loaded = master.load_master_key(settings)
    assert loaded.origin == "STRONGROOM_MASTER_KEY"
    assert key not in repr(loaded)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("c2hvcnQ=", "is 5 bytes, expected 32"),
        ("%%%not-base64%%%", "is not valid base64"),
    ],
)
def test_bad_master_key_variable_is_refused_without_echoing_it(
    tmp_path: Path, value: str, message: str
) -> None:
    settings = load_settings(tmp_path, environ={"STRONGROOM_MASTER_KEY": value})
    with pytest.raises(MasterKeyError, match=message) as caught:
        master.load_master_key(settings)
    assert "STRONGROOM_MASTER_KEY" in caught.value.detail
    assert value not in caught.value.one_line()


def test_master_key_errors_are_configuration_errors() -> None:
    # The CLI turns ConfigurationError into one line and exit code 2.
    assert issubclass(MasterKeyError, ConfigurationError)


def test_key_check_tells_wrong_key_from_wrong_environment() -> None:
    key = master.RawMasterKey(secrets.token_bytes(32), "test")
    production = key.environment_aead(Environment.PRODUCTION)
    check = master.make_key_check(production, Environment.PRODUCTION)
    master.verify_key_check(production, check, Environment.PRODUCTION, "production")
    with pytest.raises(MasterKeyError, match="initialised as production, but settings say test"):
        master.verify_key_check(
            key.environment_aead(Environment.TEST), check, Environment.TEST, "production"
        )
    wrong = master.RawMasterKey(secrets.token_bytes(32), "wrong")
    with pytest.raises(MasterKeyError, match="wrong key"):
        master.verify_key_check(
            wrong.environment_aead(Environment.PRODUCTION), check, Environment.PRODUCTION,
            "production",
        )
