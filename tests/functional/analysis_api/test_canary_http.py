"""Invariant 1 through the analysis API: canary values never reach a disk in clear text.

A dataset of canary strings is built, then counted, cubed, previewed, queried with
SQL and saved in a selection over HTTPS, by a role that sees the values; then
every file under the deployment's home and every file the run created or changed
in the temp directories is scanned for the canary, plain and base64.
"""

from __future__ import annotations

import base64
import tempfile
import time
from pathlib import Path

from strongroom.identity.models import Role
from strongroom.tenancy.services import get_tenant
from tests.functional.analysis_api.helpers import As
from tests.functional.identity.support import World
from tests.functional.support import RunningServer
from tests.unit.analysis.built import build
from tests.unit.datasets.test_canary import files_under

CANARY = "canary-b41d07@example.net"


def canary_csv(rows: int = 500) -> str:
    lines = ["id,email,town,joined"]
    lines += [f"{i},{CANARY}-{i},Town {CANARY}-{i % 7},2024-03-{i % 28 + 1:02d}"
              for i in range(rows)]
    return "\n".join(lines) + "\n"


def hits(paths: list[Path]) -> list[Path]:
    needles = (CANARY.encode(), base64.b64encode(CANARY.encode()))
    found = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if any(needle in data for needle in needles):
            found.append(path)
    return found


def test_analysis_leaves_no_plaintext_on_disk(world: World, server: RunningServer) -> None:
    started = time.time() - 1
    with world.deployment.transaction() as session:
        alpha = get_tenant(session, "alpha")
    build(world.deployment, alpha, "canaries", canary_csv(), key="id",
          personal=frozenset({"email"}))
    admin = As(world, server, "alpha", Role.ADMIN)
    probe = {"field": "email", "op": "starts_with", "value": CANARY}
    assert admin.ok("POST", "/api/v1/count", {"dataset": "canaries", "selection": probe})[
        "count"] == 500
    cube = admin.ok("POST", "/api/v1/cubes", {"dataset": "canaries",
                                              "dimensions": [{"field": "town"}]})
    assert CANARY in cube["cells"][0]["key"][0]
    preview = admin.ok("POST", "/api/v1/preview", {"dataset": "canaries", "limit": 100})
    assert preview["rows"][0][1] == f"{CANARY}-0"
    sql = admin.ok("POST", "/api/v1/sql", {
        "sql": f"SELECT email FROM ds_canaries WHERE email LIKE '{CANARY}%' ORDER BY id"})  # noqa: S608
    assert len(sql["rows"]) == 100
    saved = admin.ok("POST", "/api/v1/selections", {"name": "canaries", "dataset": "canaries",
                                                    "selection": probe}, status=201)
    assert admin.ok("POST", "/api/v1/count", {"selection_id": saved["id"]})["count"] == 500

    home = world.deployment.settings.home
    assert hits(list(files_under(home))) == []
    assert hits(list(files_under(Path(tempfile.gettempdir()), since=started))) == []
    assert hits(list(files_under(Path.cwd() / ".tmp", since=started))) == []  # DuckDB's default
    # The control: the scan does find the canary where it is in clear.
    control = home.parent / "control.txt"
    control.write_text(CANARY)
    try:
        assert hits(list(files_under(home.parent))) == [control]
    finally:
        control.unlink()
