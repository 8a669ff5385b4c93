"""strongroom login, logout and whoami: a token for the client, kept in a 0600 file."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from strongroom.cli.client import config
from strongroom.cli.client.errors import REFUSED, ApiError, ClientError
from strongroom.cli.client.http import Api
from strongroom.cli.client.output import JsonOption, fields, note, show

CLIENT_LABEL = "cli"  # the name the API token is listed under
TOKEN_DAYS = 30
CSRF_HEADER = "x-csrf-token"


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ClientError("no password on standard input", exit_code=REFUSED)
    return password


def _read_ca(ca: Path | None) -> str | None:
    if ca is None:
        return None
    try:
        return ca.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(f"cannot read the CA certificate {ca}: {exc}") from None


def _revoke_quietly(old: config.Credentials) -> None:
    """Revoke the token a new login replaces; it is of no use to anyone any more."""
    if old.token_id is None:
        return
    with contextlib.suppress(ClientError), Api(old.server, old.ca, old.token) as api:
        api.delete(f"/tokens/{old.token_id}")


def login(
    server: Annotated[str, typer.Option("--server", help="The server, https://HOST[:PORT].")],
    tenant: Annotated[str, typer.Option("--tenant", help="Your tenant's short name (slug).")],
    email: Annotated[str, typer.Option("--email", help="Your email (your login).")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    ca: Annotated[
        Path | None,
        typer.Option("--ca", help="CA certificate (PEM) to trust for this server, kept with the "
                     "token; without it the system's CAs are trusted.", exists=True,
                     dir_okay=False),
    ] = None,
    code: Annotated[
        str | None, typer.Option("--code", help="One-time or recovery code, once you use MFA.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Log in and keep a 30-day API token in the credentials file (mode 0600)."""
    if not password_stdin:
        raise ClientError("pass --password-stdin and write the password to standard input "
                          "(passwords are never taken as arguments: they would show in ps)",
                          exit_code=REFUSED)
    password = _read_password()
    ca_pem = _read_ca(ca)
    try:
        old = config.load()
    except ClientError:
        old = None
    body: dict[str, Any] = {"tenant": tenant, "email": email, "password": password}
    if code:
        body["code"] = code
    with Api(server, ca_pem) as api:
        session = api.post("/login", body)
        csrf = session.get("csrf_token") or api.get("/me").get("csrf_token")
        headers = {CSRF_HEADER: str(csrf)}
        try:
            created = api.call("POST", "/tokens", json_body={"name": CLIENT_LABEL,
                                                             "days": TOKEN_DAYS},
                               headers=headers)
        finally:
            # The token is what the client keeps; the browser-style session is not needed.
            with contextlib.suppress(ClientError):
                api.call("POST", "/logout", headers=headers)
    stored = config.Credentials(
        server=api.server, tenant=tenant, token=str(created["token"]), ca=ca_pem,
        token_id=str(created["id"]), email=email,
    )
    path = config.save(stored)
    if old is not None and old.token != stored.token:
        _revoke_quietly(old)
    user = session.get("user") or {}
    summary = {"server": api.server, "tenant": tenant, "email": email,
               "role": user.get("role", created.get("role")), "token_id": created["id"],
               "token_expires_at": created.get("expires_at"), "credentials": str(path)}
    show(summary, as_json, lambda s: fields(list(s.items())))


def logout(as_json: JsonOption = False) -> None:
    """Revoke the stored token on the server and delete the credentials file."""
    stored = config.load()
    path = config.credentials_path()
    revoked = "revoked"
    if stored.token_id is None:
        revoked = "unknown token id: revoke it with the web interface"
    else:
        with Api(stored.server, stored.ca, stored.token) as api:
            try:
                api.delete(f"/tokens/{stored.token_id}")
            except ApiError as exc:
                if exc.status != 401:
                    raise ClientError(f"could not revoke the token: {exc.message}; the "
                                      f"credentials file {path} is kept so that you can retry",
                                      exit_code=exc.exit_code) from None
                revoked = "already expired or revoked"
            except ClientError as exc:
                raise ClientError(f"could not revoke the token: {exc.message}; the "
                                  f"credentials file {path} is kept so that you can retry",
                                  exit_code=exc.exit_code) from None
    config.forget()
    summary = {"server": stored.server, "tenant": stored.tenant, "token": revoked,
               "credentials": f"{path} deleted"}
    show(summary, as_json, lambda s: fields(list(s.items())))
    if not as_json and stored.token_id is None:
        note("warning: the token was not revoked on the server")


def whoami(as_json: JsonOption = False) -> None:
    """Show the server, tenant and account the stored token acts as."""
    stored = config.load()
    with Api(stored.server, stored.ca, stored.token) as api:
        me = api.get("/me")
    user = me.get("user") or {}
    tenant = me.get("tenant") or {}
    summary = {"server": stored.server, "tenant": tenant.get("slug"),
               "tenant_name": tenant.get("name"), "email": user.get("email"),
               "role": user.get("role"), "mfa_enabled": user.get("mfa_enabled"),
               "token_id": stored.token_id}
    show(summary, as_json, lambda s: fields(list(s.items())))
