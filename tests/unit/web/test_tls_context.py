"""The server's TLS context: what it offers, and clear errors for unusable files."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from strongroom.crypto.certificates import generate_local_tls
from strongroom.errors import ConfigurationError
from strongroom.web.tls import server_context


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls") / "tls"
    generate_local_tls(directory)
    return directory


def test_only_tls12_and_13(tls_dir: Path) -> None:
    context = server_context(tls_dir / "server.pem", tls_dir / "server.key")
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.maximum_version is ssl.TLSVersion.TLSv1_3
    assert context.options & ssl.OP_NO_COMPRESSION


def test_every_offered_suite_is_aead_with_forward_secrecy(tls_dir: Path) -> None:
    ciphers = server_context(tls_dir / "server.pem", tls_dir / "server.key").get_ciphers()
    assert ciphers
    for cipher in ciphers:
        assert cipher["aead"], cipher["name"]
        if cipher["protocol"] != "TLSv1.3":
            assert cipher["kea"] == "kx-ecdhe", cipher["name"]
            assert cipher["symmetric"] in {"aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"}


def test_missing_files_are_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        server_context(tmp_path / "none.pem", tmp_path / "none.key")


def test_garbage_or_mismatched_files_are_a_configuration_error(
    tls_dir: Path, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        server_context(garbage, tls_dir / "server.key")
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        server_context(tls_dir / "server.pem", tls_dir / "ca.key")
