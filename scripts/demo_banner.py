"""Print how to reach and use the demo deployment; `make run` shows it before serving.

Usage: python scripts/demo_banner.py HOME HOST PORT OPERATOR_PORT
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

LOGIN_FILE = "demo-login.txt"  # written by `strongroom init --demo`


def _login_fields(home: Path) -> dict[str, str]:
    path = home / LOGIN_FILE
    if not path.exists():
        return {}
    fields = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        if value.strip():
            fields[key.strip()] = value.strip()
    return fields


def banner(home: Path, host: str, port: str, operator_port: str) -> str:
    url_host = f"[{host}]" if ":" in host else host
    base = f"https://{url_host}:{port}"
    ca = home / "tls" / "ca.pem"
    curl = f"curl --cacert {ca}"
    cli = f"STRONGROOM_HOME={home} .venv/bin/strongroom"
    lines = [
        "",
        f"  Strongroom demo deployment in {home}/ (development environment)",
        f"  URL          {base}/",
        f"  trust CA     {ca}",
        f"  try it       {curl} {base}/healthz",
        f"  operate it   {cli} --help",
        f"               (for example: {cli} tenant list)",
        f"  operator API https://127.0.0.1:{operator_port}/operator/v1/ (make an account first:",
        f"               {cli} operator create NAME --password-stdin)",
    ]
    login = _login_fields(home)
    if {"tenant", "email", "password"} <= login.keys():
        body = json.dumps({k: login[k] for k in ("tenant", "email", "password")})
        cookies = home / "cookies.txt"
        lines += [
            f"  log in       as {login['email']}, tenant {login['tenant']} ({home / LOGIN_FILE}):",
            f"               {curl} -c {cookies} -H 'content-type: application/json' \\",
            f"                 -d {shlex.quote(body)} {base}/api/v1/login",
            f"               {curl} -b {cookies} {base}/api/v1/me",
            "  or the client (tenant user's CLI):",
            (f"               echo {shlex.quote(login['password'])} | .venv/bin/strongroom login "
            f"--server {base} --tenant {login['tenant']} \\"),
            f"                 --email {login['email']} --password-stdin --ca {ca}",
            ("               .venv/bin/strongroom dataset upload customers.csv "
            "--dataset customers --build"),
        ]
    else:
        lines.append("  log in       no tenant account here; use the operator CLI above")
    lines += [f"  stop         Ctrl-C.  Start afresh: rm -rf {home}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    home_arg, host_arg, port_arg, operator_port_arg = sys.argv[1:5]
    print(banner(Path(home_arg), host_arg, port_arg, operator_port_arg))
