"""The local CA and server certificate made by init."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from strongroom.crypto import certificates


@pytest.fixture
def tls(tmp_path: Path) -> Path:
    directory = tmp_path / "tls"
    certificates.generate_local_tls(directory)
    return directory


def test_private_keys_are_owner_only(tls: Path) -> None:
    for name in (certificates.CA_KEY_FILE, certificates.KEY_FILE):
        assert stat.S_IMODE((tls / name).stat().st_mode) == 0o600


def test_server_certificate_is_a_leaf_for_localhost(tls: Path) -> None:
    leaf, ca = x509.load_pem_x509_certificates((tls / certificates.CERT_FILE).read_bytes())
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)


def test_certificate_is_recognised_as_signed_by_its_own_ca(tls: Path) -> None:
    assert certificates.is_signed_by_local_ca(
        tls / certificates.CERT_FILE, tls / certificates.CA_FILE
    )


def test_certificate_from_another_ca_of_the_same_name_is_not_ours(
    tls: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-tls"
    certificates.generate_local_tls(other)
    # Same issuer name, different key: only the signature tells them apart.
    assert not certificates.is_signed_by_local_ca(
        other / certificates.CERT_FILE, tls / certificates.CA_FILE
    )


def test_missing_files_are_not_ours(tmp_path: Path) -> None:
    assert not certificates.is_signed_by_local_ca(tmp_path / "a.pem", tmp_path / "b.pem")
