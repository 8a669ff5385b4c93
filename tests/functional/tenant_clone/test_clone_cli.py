"""`strongroom tenant clone` end to end: real homes made by `strongroom init`, the real CLI.

Refusals are one clean line, exit 2, recorded in the source's audit trail, and leave
the target empty; an anonymised clone is queryable in the target and no byte of the
target home holds a source canary.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from strongroom.analysis.engine import run_query
from strongroom.analysis.service import query_sandbox, resolve_datasets
from strongroom.audit.models import AuditEvent
from strongroom.config import load_settings
from strongroom.datasets import catalog, jobs
from strongroom.datasets.build import SchemaOverrides
from strongroom.deployment import Deployment, open_deployment
from strongroom.tenancy.services import create_tenant, get_tenant
from tests.conftest import database
from tests.functional.support import assert_clean_failure, assert_ok, init_home, run_cli
from tests.unit.datasets.test_uploads import ANALYST, upload_bytes
from tests.unit.tenancy.test_clone import PROFILE, ROWS, canary_hits, customers_csv


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
)
def homes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    postgres_available: bool,
) -> Iterator[dict[str, Path]]:
    """A production home with a built dataset, another production home, a test home."""
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(database(request.param, postgres_available))
                for _ in range(3)]
        yield _make_homes(tmp_path_factory.mktemp("clone"), urls)


def _make_homes(root: Path, urls: list[str]) -> dict[str, Path]:
    def init(name: str, environment: str, url: str) -> Path:
        extra = ["--environment", environment] + (["--database-url", url] if url else [])
        return init_home(root / name, *extra)

    made = {
        "prod": init("prod", "production", urls[0]),
        "prod2": init("prod2", "production", urls[1]),
        "test": init("test", "test", urls[2]),
    }
    dep = open_deployment(load_settings(made["prod"]))
    try:
        with dep.transaction() as session:
            tenant = create_tenant(session, dep.keys, "acme")
        upload_id = upload_bytes(dep, tenant, customers_csv())
        with dep.transaction() as session:
            dataset = catalog.create_dataset(session, dep, tenant, ANALYST, "customers",
                                             key_column="id")
        jobs.run_build(dep, tenant.id, dataset.id, upload_id, ANALYST, overrides=SchemaOverrides(
            key_column="id", personal=frozenset({"email", "name", "phone", "postcode", "born"})))
    finally:
        dep.close()
    profile = root / "profile.json"
    profile.write_text(json.dumps(PROFILE), encoding="utf-8")
    made["profile"] = profile
    return made


def opened(home: Path) -> Deployment:
    return open_deployment(load_settings(home))


def clone_out_events(home: Path) -> list[AuditEvent]:
    dep = opened(home)
    try:
        with dep.transaction() as session:
            return list(session.scalars(sa.select(AuditEvent).where(
                AuditEvent.tag == "operator:tenant:clone-out").order_by(AuditEvent.seq)))
    finally:
        dep.close()


def assert_no_tenants(home: Path) -> None:
    assert assert_ok(run_cli("tenant", "list", "--home", home)).strip() == "no tenants"


def test_refusals_are_clean_audited_and_leave_the_target_empty(
    homes: dict[str, Path], tmp_path: Path
) -> None:
    before = len(clone_out_events(homes["prod"]))
    assert_clean_failure(
        run_cli("tenant", "clone", "--from", homes["prod"], "--to", homes["test"]),
        "must be anonymised", "--anonymise")
    assert_clean_failure(
        run_cli("tenant", "clone", "--from", homes["prod"], "--to", homes["prod2"],
                "--anonymise", homes["profile"]),
        "into a production deployment is refused")
    bad = tmp_path / "bad.json"
    profile = json.loads(json.dumps(PROFILE))
    profile["datasets"]["customers"]["columns"].append({"name": "shoe_size"})
    bad.write_text(json.dumps(profile), encoding="utf-8")
    assert_clean_failure(
        run_cli("tenant", "clone", "--from", homes["prod"], "--to", homes["test"],
                "--anonymise", bad),
        "'shoe_size'", "not in the dataset")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert_clean_failure(
        run_cli("tenant", "clone", "--from", homes["prod"], "--to", homes["test"],
                "--anonymise", broken),
        "not valid JSON")
    assert_no_tenants(homes["test"])
    assert_no_tenants(homes["prod2"])
    refused = clone_out_events(homes["prod"])[before:]
    assert [(e.outcome, e.reason) for e in refused] == [
        ("failure", "clone-refused"), ("failure", "clone-refused"),
        ("failure", "clone-profile-invalid"), ("failure", "clone-profile-invalid")]


def test_an_anonymised_clone_is_queryable_and_holds_no_canary(homes: dict[str, Path]) -> None:
    out = assert_ok(run_cli("tenant", "clone", "--from", homes["prod"], "--to", homes["test"],
                            "--anonymise", homes["profile"], "--tenant", "acme"))
    assert f"cloned acme/customers as version 1 ({ROWS} rows)" in out
    assert "users, tokens and audit were not cloned" in out
    assert canary_hits(homes["test"]) == []
    dep = opened(homes["test"])
    try:
        with dep.transaction() as session:
            resolved = resolve_datasets(session, dep, get_tenant(session, "acme"), ["customers"])
        with query_sandbox(resolved) as conn:
            rows = run_query(conn, "SELECT count(*), min(postcode), max(postcode) "
                             "FROM ds_customers").rows
    finally:
        dep.close()
    assert rows == [(ROWS, "SW1A", "SW1A")]
    [*_, done] = clone_out_events(homes["prod"])
    assert done.outcome == "success"
