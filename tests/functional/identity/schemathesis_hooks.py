"""Authentication for the schemathesis run of ``test_schemathesis.py`` (``st run`` loads
this module through SCHEMATHESIS_HOOKS).

The fuzzer is free to revoke its own token, disable or demote its own admin and log
its operator out; that is the API working. So credentials are fetched the way a
client would (a login over HTTPS) whenever schemathesis sees a 401, and accounts are
replaced through the real CLI when the old one can no longer log in.

Settings come from the environment: SR_FUZZ_PLANE (tenant or operator), SR_FUZZ_URL,
SR_FUZZ_CA, SR_FUZZ_HOME and SR_FUZZ_ACCOUNT (a JSON file written by the test).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pyotp
import schemathesis

PLANE = os.environ.get("SR_FUZZ_PLANE", "tenant")
URL = os.environ.get("SR_FUZZ_URL", "")
CA = os.environ.get("SR_FUZZ_CA", "")
HOME = os.environ.get("SR_FUZZ_HOME", "")
ACCOUNT_FILE = Path(os.environ.get("SR_FUZZ_ACCOUNT", "account.json"))
STRONGROOM = Path(sys.executable).with_name("strongroom")
PASSWORD = "paper moon over a quiet owl 42"
CSRF_HEADER = "x-csrf-token"
CLIENT_ADDRESS = "192.0.2.200"


def _cli(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    result = subprocess.run(
        [str(STRONGROOM), *args, "--home", HOME, "--password-stdin"], input=PASSWORD + "\n",
        capture_output=True, text=True, env=env, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"strongroom {args[0]} failed: {result.stderr}")
    return result.stdout


def _reset_tenant_policy(slug: str) -> None:
    from strongroom.config import load_settings
    from strongroom.deployment import open_deployment
    from strongroom.identity import services as identity
    from strongroom.tenancy.services import get_tenant

    deployment = open_deployment(load_settings(Path(HOME)))
    try:
        with deployment.transaction() as session:
            policy = identity.tenant_policy(session, get_tenant(session, slug).id)
            identity.set_tenant_policy(policy, require_mfa=False, allowlist=[])
    finally:
        deployment.close()


class _Account:
    """The fuzzer's current account, replaced when it stops working."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, Any] = json.loads(ACCOUNT_FILE.read_text())
        self.last_step = 0
        self.token: str | None = None
        self.session: dict[str, str] | None = None

    def client(self) -> httpx.Client:
        # The fuzzer's own failed logins lock 127.0.0.1 (per-address throttling working as
        # meant); the server trusts 127.0.0.1 as a proxy, so these logins name another client.
        return httpx.Client(base_url=URL, verify=CA, timeout=30,
                            headers={"x-forwarded-for": CLIENT_ADDRESS})

    def _works(self, path: str, headers: dict[str, str]) -> bool:
        with self.client() as client:
            return client.get(path, headers=headers).status_code == 200

    # -- tenant plane: a fresh API token of a working admin --------------------------------

    def tenant_token(self) -> str:
        with self.lock:
            # schemathesis also asks after 401s it provoked itself (requests without the
            # credentials): keep a token that still works as an admin's.
            admin_only = {"authorization": f"Bearer {self.token}"}
            if self.token and self._works("/api/v1/users", admin_only):
                return self.token
            for _ in range(3):
                token = self._try_token()
                if token is not None:
                    self.token = token
                    return token
                email = f"fuzz-admin-{uuid.uuid4().hex[:8]}@fuzz.example"
                _cli("user", "create", "--tenant", self.data["tenant"], "--email", email,
                     "--role", "admin")
                self.data.update(email=email, password=PASSWORD)
        raise RuntimeError("could not get an API token for the fuzzer")

    def _try_token(self) -> str | None:
        with self.client() as client:
            response = client.post("/api/v1/login", json={
                "tenant": self.data["tenant"], "email": self.data["email"],
                "password": self.data["password"]})
            if response.status_code != 200 or response.json()["user"]["role"] != "admin":
                return None  # disabled or demoted by the fuzzer: make another admin
            created = client.post("/api/v1/tokens", json={"name": "fuzzer", "days": 1},
                                  headers={CSRF_HEADER: response.json()["csrf_token"]})
            if created.status_code == 403 and "requires MFA" in created.text:
                # The fuzzer itself turned on "require MFA" with PUT /api/v1/policy, and
                # tokens are no way around that: an operator turns it off again.
                _reset_tenant_policy(self.data["tenant"])
                return None
            created.raise_for_status()
            return str(created.json()["token"])

    # -- operator plane: a session cookie and its CSRF token -------------------------------

    def operator_session(self) -> dict[str, str]:
        with self.lock:
            # Each login spends a one-time code: keep a session that still works.
            if self.session and self._works("/operator/v1/me", {
                    "cookie": f"__Host-strongroom-operator={self.session['cookie']}"}):
                return self.session
            for _ in range(3):
                session = self._try_operator_login()
                if session is not None:
                    self.session = session
                    return session
                self._new_operator()
        raise RuntimeError("could not log the fuzzer's operator in")

    def _next_code(self) -> str | None:
        """A code not used before: this step's, the next step's, then the recovery codes."""
        totp = pyotp.TOTP(self.data["secret"])
        now = int(time.time() // 30)
        for step in (now, now + 1):
            if step > self.last_step:
                self.last_step = step
                return totp.at(step * 30)
        recovery: list[str] = self.data["recovery"]
        return recovery.pop() if recovery else None

    def _try_operator_login(self) -> dict[str, str] | None:
        code = self._next_code()
        if code is None:
            return None
        with self.client() as client:
            response = client.post("/operator/v1/login", json={
                "name": self.data["name"], "password": self.data["password"], "code": code})
            if response.status_code != 200:
                return None
            cookie = response.cookies.get("__Host-strongroom-operator")
            assert cookie is not None
            return {"cookie": cookie, "csrf": response.json()["csrf_token"]}

    def _new_operator(self) -> None:
        name = f"fuzz-{uuid.uuid4().hex[:8]}"
        out = _cli("operator", "create", name)
        secret = re.search(r"TOTP secret[^:]*: (\S+)", out)
        assert secret is not None, out
        codes = re.findall(r"^\s+(\S{4}-\S{4}-\S{4})$", out, re.MULTILINE)
        self.data.update(name=name, password=PASSWORD, secret=secret[1], recovery=codes)
        self.last_step = 0


ACCOUNT = _Account() if ACCOUNT_FILE.exists() else None


# A demoted admin still gets answers (403s), so the tenant token is also renewed every
# 20 s; operator logins spend one-time codes, so they are renewed only after a 401.
@schemathesis.auth(refresh_interval=20 if PLANE == "tenant" else 300)
class StrongroomAuth:
    """Bearer token on the tenant plane; session cookie and CSRF header on the operator plane."""

    def get(self, case: Any, context: Any) -> Any:  # noqa: ARG002 - the provider protocol
        assert ACCOUNT is not None
        return ACCOUNT.tenant_token() if PLANE == "tenant" else ACCOUNT.operator_session()

    def set(self, case: Any, data: Any, context: Any) -> None:  # noqa: ARG002
        if PLANE == "tenant":
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
        else:
            case.cookies = {**(case.cookies or {}), "__Host-strongroom-operator": data["cookie"]}
            case.headers = {**(case.headers or {}), CSRF_HEADER: data["csrf"]}
