"""schemathesis against the OpenAPI schema of both planes, over real TLS, authenticated.

The real ``strongroom serve`` runs in a subprocess; ``st run`` fuzzes each plane with
every check on and a bounded number of examples, authenticated by
``schemathesis_hooks.py`` (tenant: an admin's API token; operator: a session cookie
and CSRF header from a login with a TOTP code). The run must end with no server error
and no failed check, and the server must never have logged a traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.config import Environment, load_settings
from strongroom.deployment import initialise, open_deployment
from strongroom.identity import services as identity
from strongroom.identity.models import Role
from strongroom.tenancy.services import create_tenant
from tests.functional.support import RunningServer, cli_env, serve_subprocess

HERE = Path(__file__).parent
REPO = HERE.parents[2]
ST = Path(sys.executable).with_name("st")
PASSWORD = "paper moon over a quiet owl 42"
MAX_EXAMPLES = 20
# A guard against a hung run, not a performance expectation.
RUN_TIMEOUT_SECONDS = 600
# The fuzzer sends hundreds of requests from one address; the limits are tested elsewhere.
# 127.0.0.1 is a trusted proxy so that the hooks' own logins can come from another address
# than the fuzzer's failed ones (which lock 127.0.0.1, as per-address throttling should).
SETTINGS = {"rate_limit_default": "1000000/minute", "rate_limit_login": "1000000/minute",
            "trusted_proxies": "127.0.0.1/32"}
# Every check runs: web/problems.py now lists every method routed for a path in Allow.
EXCLUDED_CHECKS: list[str] = []


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deployment with a tenant, its admin and an operator, all made through services."""
    home = tmp_path_factory.mktemp("fuzz") / "home"
    initialise(home, Environment.DEVELOPMENT, extra_settings=dict(SETTINGS))
    deployment = open_deployment(load_settings(home))
    try:
        with deployment.transaction() as session:
            tenant = create_tenant(session, deployment.keys, "fuzz", "Fuzz tenant")
            identity.create_user(session, deployment.keys, tenant, "admin@fuzz.example",
                                 Role.ADMIN, PASSWORD)
            _operator, enrolment, codes = identity.create_operator(
                session, deployment.keys, "fuzz-ops", PASSWORD)
    finally:
        deployment.close()
    (home.parent / "account.json").write_text(json.dumps({
        "tenant": "fuzz", "email": "admin@fuzz.example", "password": PASSWORD,
        "name": "fuzz-ops", "secret": enrolment["secret"], "recovery": codes,
    }))
    return home


@pytest.fixture(scope="module")
def server(fuzz_home: Path) -> Iterator[RunningServer]:
    with serve_subprocess(fuzz_home, fuzz_home.parent / "serve.log") as running:
        yield running


def st_run(server: RunningServer, plane: str, port: int, workdir: Path) -> str:
    base = f"https://localhost:{port}"
    env = cli_env({
        "PYTHONPATH": str(REPO),
        "SCHEMATHESIS_HOOKS": "tests.functional.identity.schemathesis_hooks",
        "SR_FUZZ_PLANE": plane,
        "SR_FUZZ_URL": base,
        "SR_FUZZ_CA": str(server.ca_file),
        "SR_FUZZ_HOME": str(server.home),
        "SR_FUZZ_ACCOUNT": str(server.home.parent / "account.json"),
    })
    command = [
        str(ST), "--config-file", str(HERE / "schemathesis.toml"), "--no-color",
        "run", f"{base}/openapi.json",
        "--checks", "all",
        *(["--exclude-checks", ",".join(EXCLUDED_CHECKS)] if EXCLUDED_CHECKS else []),
        "--max-examples", str(MAX_EXAMPLES),
        "--tls-verify", str(server.ca_file),
        "--workers", "1",
        "--generation-database", "none",
    ]
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                            timeout=RUN_TIMEOUT_SECONDS, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.mark.parametrize("plane", ["tenant", "operator"])
def test_schemathesis_finds_no_server_error_and_no_failed_check(
    server: RunningServer, plane: str, tmp_path: Path
) -> None:
    port = server.port if plane == "tenant" else server.operator_port
    assert port is not None
    output = st_run(server, plane, port, tmp_path)
    assert re.search(r"\d+ generated, \d+ passed", output), output
    # Credentials worked: no operation answered only 401/403 to the authenticated fuzzer.
    assert "Authentication failed" not in output, output
    log = server.log_text()
    assert "Traceback" not in log
    assert "ERROR" not in log, log  # every 500 is logged at error level with its error id


def test_the_config_file_parses_and_the_excluded_checks_exist() -> None:
    """So that a typo cannot silently switch checks off."""
    import tomllib

    config = tomllib.loads((HERE / "schemathesis.toml").read_text())
    assert len(config["operations"]) >= 4
    help_text = subprocess.run([str(ST), "run", "--help"], capture_output=True, text=True,
                               check=True, env=dict(os.environ)).stdout
    for check in EXCLUDED_CHECKS:
        assert check in help_text
