"""Transfer control: the real ``strongroom serve`` speaks TLS 1.2/1.3 with AEAD suites only.

Every refusal is checked against a witness: a permissive TLS server, with the
same certificate, that completes the very handshake Strongroom refuses. So a
refusal here means Strongroom's policy said no, not that this client or this
OpenSSL could not speak the protocol at all.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.functional.support import (
    RunningServer,
    handshake,
    handshake_refused,
    init_home,
    loose_context,
    openssl_binary,
    openssl_handshake,
    permissive_tls_server,
    serve_subprocess,
    verifying_context,
)

# The Mozilla "intermediate" TLS 1.2 suites (ECDHE key exchange, AEAD ciphers).
ALLOWED_TLS12 = {
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
}


def _witnessed_refusal(server: RunningServer, context: ssl.SSLContext, what: str) -> None:
    cert, key = server.served_certificate()
    with permissive_tls_server(cert, key) as witness_port:
        try:
            handshake(witness_port, context)
        except (ssl.SSLError, ConnectionError) as exc:
            pytest.skip(f"this client/OpenSSL cannot do {what} at all ({exc}); nothing to prove")
    for port in server.listeners():
        assert handshake_refused(port, context), f"{what} was accepted on port {port}"
        # And the server is alive and well afterwards: the refusal was not a crash.
        version, _ = handshake(port, verifying_context(server.ca_file), "localhost")
        assert version in {"TLSv1.2", "TLSv1.3"}


# -- protocol versions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLSv1.0", "TLSv1.1"]
)
def test_legacy_tls_versions_are_refused(
    dev_server: RunningServer, version: ssl.TLSVersion
) -> None:
    _witnessed_refusal(dev_server, loose_context(version), version.name)


@pytest.mark.skipif(openssl_binary() is None, reason="no openssl command line tool")
@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_legacy_tls_versions_refused_to_openssl_s_client(
    dev_server: RunningServer, flag: str
) -> None:
    """A second, independent client: openssl s_client forced to TLS 1.0 / 1.1."""
    options = (flag, "-cipher", "ALL:@SECLEVEL=0")
    cert, key = dev_server.served_certificate()
    with permissive_tls_server(cert, key) as witness_port:
        if openssl_handshake(witness_port, *options) is None:
            pytest.skip(f"openssl s_client {flag} cannot complete a handshake anywhere")
    for port in dev_server.listeners():
        assert openssl_handshake(port, *options) is None
        assert openssl_handshake(port, "-tls1_2") in ALLOWED_TLS12


def test_tls12_is_accepted_with_an_aead_ecdhe_suite(dev_server: RunningServer) -> None:
    context = verifying_context(dev_server.ca_file)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    for port in dev_server.listeners():
        version, cipher = handshake(port, context, "localhost")
        assert version == "TLSv1.2"
        assert cipher in ALLOWED_TLS12


def test_tls13_is_accepted(dev_server: RunningServer) -> None:
    context = verifying_context(dev_server.ca_file)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    for port in dev_server.listeners():
        version, cipher = handshake(port, context, "localhost")
        assert version == "TLSv1.3"
        assert cipher.startswith("TLS_")


def test_both_planes_listen(dev_server: RunningServer) -> None:
    """The tenant and operator listeners are separate ports, both TLS-only (tested here)."""
    assert len(set(dev_server.listeners())) == 2


# -- TLS 1.2 cipher suites ----------------------------------------------------------------------


def _tls12_cipher_names() -> list[str]:
    """Every TLS 1.2-era suite this OpenSSL can offer (SSLv3/TLSv1 suites are valid in 1.2)."""
    context = loose_context()
    names = {
        c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3"
    }
    return sorted(names)


def _accepted_tls12(port: int) -> set[str]:
    accepted = set()
    for name in _tls12_cipher_names():
        context = loose_context(ssl.TLSVersion.TLSv1_2, f"{name}:@SECLEVEL=0")
        if not handshake_refused(port, context):
            accepted.add(name)
    return accepted


def test_every_accepted_tls12_suite_is_ecdhe_with_aead(dev_server: RunningServer) -> None:
    """Offer each TLS 1.2 suite alone: only the intermediate ECDHE+AEAD ones may succeed."""
    for port in dev_server.listeners():
        accepted = _accepted_tls12(port)
        assert accepted, "no TLS 1.2 suite accepted at all"
        assert accepted <= ALLOWED_TLS12, f"weak suites accepted: {accepted - ALLOWED_TLS12}"
    cert, key = dev_server.served_certificate()
    with permissive_tls_server(cert, key) as witness_port:
        witness = _accepted_tls12(witness_port)
    # The witness proves the client could have used weaker suites with this certificate.
    assert witness - ALLOWED_TLS12, "the witness accepted no weak suite; the test proves nothing"


@pytest.mark.parametrize(
    "cipher",
    ["ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA"],
)
def test_tls12_cbc_suites_are_refused(dev_server: RunningServer, cipher: str) -> None:
    context = loose_context(ssl.TLSVersion.TLSv1_2, f"{cipher}:@SECLEVEL=0")
    _witnessed_refusal(dev_server, context, f"TLS 1.2 with {cipher}")


# -- an operator-supplied RSA certificate: non-ECDHE suites become possible, and are refused ----


@pytest.fixture(scope="module")
def rsa_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A production deployment serving an operator's own RSA certificate (not the local CA's).

    RSA matters here: with an ECDSA certificate no RSA or DHE-RSA key exchange can
    happen whatever the policy, so only an RSA certificate tests "non-ECDHE refused".
    """
    binary = openssl_binary()
    if binary is None:
        pytest.skip("no openssl command line tool to make an RSA certificate")
    root = tmp_path_factory.mktemp("rsa")
    cert, key = root / "operator.pem", root / "operator.key"
    subprocess.run(
        [
            binary, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True, capture_output=True, timeout=120,
    )
    home = init_home(root / "home", "--environment", "production")
    env = {"STRONGROOM_TLS_CERT_FILE": str(cert), "STRONGROOM_TLS_KEY_FILE": str(key)}
    # No acknowledgement needed: this is not the certificate generated by init.
    with serve_subprocess(home, root / "serve.log", env=env) as server:
        server.cert_file, server.key_file = cert, key
        yield server
    assert "Traceback" not in server.log_text()


@pytest.mark.parametrize(
    "cipher",
    [
        "AES256-GCM-SHA384",  # RSA key exchange: AEAD, but no forward secrecy
        "AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-SHA",  # ECDHE, but CBC
        "ECDHE-RSA-AES256-SHA384",
    ],
)
def test_tls12_non_ecdhe_or_cbc_suites_are_refused_with_rsa_cert(
    rsa_server: RunningServer, cipher: str
) -> None:
    context = loose_context(ssl.TLSVersion.TLSv1_2, f"{cipher}:@SECLEVEL=0")
    cert, key = rsa_server.served_certificate()
    with permissive_tls_server(cert, key) as witness_port:
        try:
            handshake(witness_port, context)
        except (ssl.SSLError, ConnectionError) as exc:
            pytest.skip(f"this OpenSSL cannot do {cipher} at all ({exc})")
    assert handshake_refused(rsa_server.port, context), f"{cipher} was accepted"


def test_rsa_server_accepts_ecdhe_rsa_aead(rsa_server: RunningServer) -> None:
    accepted = _accepted_tls12(rsa_server.port)
    assert accepted
    assert accepted <= ALLOWED_TLS12, f"weak suites accepted: {accepted - ALLOWED_TLS12}"
    assert "ECDHE-RSA-AES128-GCM-SHA256" in accepted


# -- no clear text ------------------------------------------------------------------------------

_PLAIN_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


@pytest.mark.parametrize("plane", ["tenant", "operator"])
def test_plain_http_to_the_port_gets_no_http_answer(dev_server: RunningServer, plane: str) -> None:
    port = dev_server.port if plane == "tenant" else dev_server.operator_port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(_PLAIN_REQUEST)
        answer = _read_all(sock)
    assert not answer.startswith(b"HTTP/"), answer[:200]
    assert b"HTTP/1" not in answer
    assert b"healthz" not in answer
    # Witness: the same bytes inside TLS are a request the server does answer.
    context = verifying_context(dev_server.ca_file)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=15) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(_PLAIN_REQUEST)
        assert _read_all(tls).startswith(b"HTTP/1.1 200")


# -- the certificate ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
def test_certificate_verifies_against_home_ca(dev_server: RunningServer, name: str) -> None:
    context = verifying_context(dev_server.ca_file)
    with (
        socket.create_connection(("127.0.0.1", dev_server.port), timeout=15) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    leaf = x509.load_der_x509_certificate(der)
    constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is False
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    with dev_server.client() as client:
        assert client.get(dev_server.url("/healthz", host=name)).status_code == 200


def test_certificate_does_not_verify_for_other_names_or_cas(
    dev_server: RunningServer, tmp_path: Path
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(dev_server.port, verifying_context(dev_server.ca_file), "example.com")
    other = init_home(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(dev_server.port, verifying_context(other / "tls" / "ca.pem"), "localhost")
