"""Invariant 1 for exports: canary rows never reach a disk in clear text.

A dataset whose rows carry unique canary strings is exported untransformed as
CSV and as Parquet (so the delivered bytes do hold the canaries), downloaded,
and purged; after each step every file under the deployment's home, and every
file created or changed in the temp directory and DuckDB's default temp
directory since the test began, is scanned for the canary.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.unit.analysis.built import build
from tests.unit.datasets.test_canary import CANARY, files_under, hits
from tests.unit.exports.conftest import NOW, requester

from strongroom.audit import Actor
from strongroom.deployment import Deployment
from strongroom.exports.download import start_download
from strongroom.exports.models import ExportFormat
from strongroom.exports.services import ExportSpec, create_export, purge_exports
from strongroom.tenancy.models import Tenant

ROWS = 2_000


def canary_csv() -> str:
    lines = ["id,email,city"]
    lines += [f"{i},{CANARY}-{i},Town {CANARY}-{i}" for i in range(ROWS)]
    return "\n".join(lines) + "\n"


def scan(deployment: Deployment, since: float) -> list[Path]:
    found = hits(files_under(deployment.settings.home))
    found += hits(files_under(Path(tempfile.gettempdir()), since=since))
    found += hits(files_under(Path.cwd() / ".tmp", since=since))
    return found


def test_export_download_and_purge_leave_no_plaintext(
    deployment: Deployment, make_tenant: Callable[[str], Tenant]
) -> None:
    started = time.time() - 1
    tenant = make_tenant("canary")
    build(deployment, tenant, "people", canary_csv(), key="id", personal=frozenset({"email"}))
    assert scan(deployment, started) == []

    columns = [{"name": "id"}, {"name": "email"}, {"name": "city"}]
    created = [
        create_export(deployment, requester(tenant), ExportSpec("people", columns, fmt),
                      now=NOW)
        for fmt in (ExportFormat.CSV, ExportFormat.PARQUET)
    ]
    assert scan(deployment, started) == []

    for export in created:
        download = start_download(deployment, tenant.id, "analyst-1",
                                  Actor(kind="user", id="analyst-1"), export.export.id,
                                  export.download_key, now=NOW)
        delivered = b"".join(download.chunks)
        if export.export.format == "csv":
            assert CANARY.encode() in delivered  # the control: the plaintext is the canary's
        assert export.export.rows == ROWS
    assert scan(deployment, started) == []

    assert purge_exports(deployment, now=NOW + dt.timedelta(days=2)) == 2
    assert scan(deployment, started) == []
