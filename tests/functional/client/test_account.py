"""login, whoami, logout: a token in a 0600 file, verified TLS, one clear line per refusal."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pyotp
import pytest

from strongroom.crypto.certificates import generate_local_tls
from tests.functional.client.conftest import ANALYST, TENANT, VIEWER
from tests.functional.client.support import PASSWORD, Client, assert_refused, make_user
from tests.functional.support import RunningServer, assert_ok, verifying_context


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_login_keeps_a_token_only_its_owner_can_read(client: Client) -> None:
    out = assert_ok(client.login(TENANT, ANALYST))
    assert ANALYST in out
    assert _mode(client.config_dir) == 0o700
    assert _mode(client.credentials) == 0o600
    stored = json.loads(client.credentials.read_text())
    assert stored["server"] == f"https://localhost:{client.server.port}"
    assert stored["tenant"] == TENANT
    assert stored["ca"].startswith("-----BEGIN CERTIFICATE-----")
    assert "password" not in client.credentials.read_text()
    who = json.loads(assert_ok(client.run("whoami", "--json")))
    assert who["email"] == ANALYST
    assert who["role"] == "analyst"
    assert who["tenant"] == TENANT
    assert "analyst" in assert_ok(client.run("whoami"))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_credentials_file_others_can_read_is_refused(client: Client, mode: int) -> None:
    assert_ok(client.login(TENANT, ANALYST))
    token = json.loads(client.credentials.read_text())["token"]
    client.credentials.chmod(mode)
    result = client.run("whoami")
    line = assert_refused(result, 2, "readable by other users", f"{mode:04o}")
    assert token not in result.stdout + result.stderr
    assert "@" not in result.stdout
    assert token not in line
    # Every command refuses it, not only whoami.
    assert_refused(client.run("dataset", "list"), 2, "readable by other users")
    # Narrowed again, the same file works: the refusal was about the mode alone.
    client.credentials.chmod(0o600)
    assert_ok(client.run("whoami"))


def test_wrong_password_is_one_clear_error_and_keeps_nothing(client: Client) -> None:
    result = client.login(TENANT, VIEWER, password="not the password at all 1")
    assert_refused(result, 1, "not correct", "401")
    assert not client.credentials.exists()


def test_an_untrusted_certificate_is_refused_without_ca(client: Client) -> None:
    result = client.login(TENANT, ANALYST, ca=False)
    assert_refused(result, 2, "cannot verify the certificate", "--ca")
    assert not client.credentials.exists()


def test_a_server_the_stored_ca_did_not_sign_is_refused(client: Client, tmp_path: Path) -> None:
    """The stored CA is the only one trusted: a certificate from another CA (an impostor's,
    or another deployment's) is refused, and the token is never sent to it."""
    assert_ok(client.login(TENANT, ANALYST))
    stored = json.loads(client.credentials.read_text())
    generate_local_tls(tmp_path / "other")
    stored["ca"] = (tmp_path / "other" / "ca.pem").read_text()
    client.credentials.write_text(json.dumps(stored))
    client.credentials.chmod(0o600)
    assert_refused(client.run("whoami"), 2, "cannot verify the certificate")


@pytest.mark.parametrize("address", [
    "http://localhost:{port}", "https://localhost:", "https://ann@localhost:{port}",
    "https://localhost:{port}/api", "localhost:{port}",
])
def test_an_address_other_than_https_host_port_is_refused(client: Client, address: str) -> None:
    server = address.format(port=client.server.port)
    result = client.run("login", "--server", server, "--tenant", TENANT, "--email", ANALYST,
                        "--password-stdin", stdin=PASSWORD + "\n")
    assert_refused(result, 1, "https://")
    assert not client.credentials.exists()


def test_the_password_is_never_an_argument(client: Client) -> None:
    result = client.run("login", "--server", f"https://localhost:{client.server.port}",
                        "--tenant", TENANT, "--email", ANALYST)
    assert_refused(result, 1, "--password-stdin")


def test_not_logged_in_says_how_to_log_in(client: Client) -> None:
    assert_refused(client.run("dataset", "list"), 2, "not logged in", "strongroom login")


def test_logout_revokes_the_token_and_deletes_the_file(
    client: Client, server: RunningServer
) -> None:
    assert_ok(client.login(TENANT, ANALYST))
    token = json.loads(client.credentials.read_text())["token"]
    bearer = {"authorization": f"Bearer {token}"}
    with httpx.Client(verify=verifying_context(server.ca_file)) as http:
        assert http.get(server.url("/api/v1/me"), headers=bearer).status_code == 200
        assert "revoked" in assert_ok(client.run("logout"))
        assert not client.credentials.exists()
        # The token no longer works for anyone who copied it.
        assert http.get(server.url("/api/v1/me"), headers=bearer).status_code == 401
    assert_refused(client.run("whoami"), 2, "not logged in")


def test_logging_in_again_revokes_the_token_it_replaces(
    client: Client, server: RunningServer
) -> None:
    assert_ok(client.login(TENANT, ANALYST))
    first = json.loads(client.credentials.read_text())["token"]
    assert_ok(client.login(TENANT, ANALYST))
    second = json.loads(client.credentials.read_text())["token"]
    assert first != second
    with httpx.Client(verify=verifying_context(server.ca_file)) as http:
        me = server.url("/api/v1/me")
        assert http.get(me, headers={"authorization": f"Bearer {first}"}).status_code == 401
        assert http.get(me, headers={"authorization": f"Bearer {second}"}).status_code == 200


def test_a_revoked_token_says_log_in_again(client: Client, server: RunningServer) -> None:
    assert_ok(client.login(TENANT, ANALYST))
    stored = json.loads(client.credentials.read_text())
    with httpx.Client(verify=verifying_context(server.ca_file)) as http:
        revoked = http.delete(server.url(f"/api/v1/tokens/{stored['token_id']}"),
                              headers={"authorization": f"Bearer {stored['token']}"})
        assert revoked.status_code == 204
    assert_refused(client.run("whoami"), 1, "401", "log in again")


def test_mfa_users_log_in_with_code(client: Client, server: RunningServer) -> None:
    email = "mfa-user@acme.example"
    make_user(server.home, TENANT, email, "analyst")
    with server.client() as http:
        session = http.post(server.url("/api/v1/login"), json={
            "tenant": TENANT, "email": email, "password": PASSWORD})
        assert session.status_code == 200, session.text
        csrf = {"x-csrf-token": session.json()["csrf_token"]}
        enrolment = http.post(server.url("/api/v1/me/mfa"), headers=csrf,
                              json={"current_password": PASSWORD})
        assert enrolment.status_code == 200, enrolment.text
        confirmed = http.post(server.url("/api/v1/me/mfa/confirm"), headers=csrf, json={
            "code": pyotp.TOTP(enrolment.json()["secret"]).now()})
        assert confirmed.status_code == 200, confirmed.text
        recovery = confirmed.json()["recovery_codes"][0]
    assert_refused(client.login(TENANT, email), 1, "401")
    assert not client.credentials.exists()
    args = ["login", "--server", f"https://localhost:{server.port}", "--tenant", TENANT,
            "--email", email, "--password-stdin", "--ca", server.ca_file, "--code", recovery]
    assert_ok(client.run(*args, stdin=PASSWORD + "\n"))
    who = json.loads(assert_ok(client.run("whoami", "--json")))
    assert who["mfa_enabled"] is True
