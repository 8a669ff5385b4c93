"""Test environments from production: anonymised through transforms, or not at all.

A production deployment holds a dataset of canary customers; it is cloned into a
test deployment with a profile. The clone is queryable there, pseudonymised under
the target tenant's keys, and not one byte of the target home holds a canary.
Refusals (into production, unanonymised, a bad profile) leave the target untouched.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.conftest import database
from tests.unit.datasets.test_uploads import ANALYST, upload_bytes

from strongroom.analysis.engine import run_query
from strongroom.analysis.service import query_sandbox, resolve_datasets
from strongroom.audit.models import AuditEvent
from strongroom.config import Environment, Settings
from strongroom.datasets import catalog, jobs
from strongroom.datasets.build import SchemaOverrides
from strongroom.datasets.models import Dataset, DatasetVersion
from strongroom.deployment import Deployment, open_deployment
from strongroom.identity.models import User
from strongroom.privacy.keys import privacy_keys
from strongroom.privacy.models import PseudonymKeyRecord
from strongroom.storage.models import StoredObject
from strongroom.tenancy.clone import (
    CloneProfileInvalid,
    CloneRefused,
    check_environments,
    clone,
    open_source,
    parse_profile,
)
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import create_tenant, get_tenant

EMAIL = "canary-c10e{}@example.org"
NAME = "Canarysurname{}"
PHONE = "07700900{:03d}"
ROWS = 300
PROFILE: dict[str, Any] = {"datasets": {"customers": {"columns": [
    {"name": "id"},
    {"name": "email", "transform": {"kind": "pseudonym"}},
    {"name": "name", "transform": {"kind": "mask", "keep_first": 1}},
    {"name": "postcode", "transform": {"kind": "generalise", "to": "postcode_outward"}},
    {"name": "born", "transform": {"kind": "generalise", "to": "year"}},
    {"name": "spend"},
]}}}


def customers_csv() -> bytes:
    lines = ["id,email,name,phone,postcode,born,spend"]
    lines += [f"{i},{EMAIL.format(i)},{NAME.format(i)},{PHONE.format(i)},SW1A {i % 9}AA,"
              f"19{50 + i % 40}-0{1 + i % 9}-1{i % 10},{i * 1.5}" for i in range(ROWS)]
    return ("\n".join(lines) + "\n").encode()


def canaries() -> list[bytes]:
    found = []
    for i in (0, 1, 17, ROWS - 1):
        found += [EMAIL.format(i).encode(), NAME.format(i).encode(), PHONE.format(i).encode()]
    found += [b"canary-c10e", b"Canarysurname"]
    return found + [base64.b64encode(c) for c in found]


@pytest.fixture
def target_url(db_url: str, postgres_available: bool) -> Iterator[str]:
    """The target's database: of the same kind as the source's, its own."""
    with database("sqlite" if not db_url else "postgresql", postgres_available) as url:
        yield url


@pytest.fixture
def source(make_home: Callable[..., Settings], db_url: str) -> Iterator[Deployment]:
    dep = open_source(make_home(Environment.PRODUCTION, database_url=db_url, name="prod"))
    with dep.transaction() as session:
        tenant = create_tenant(session, dep.keys, "acme", "ACME Retail")
        create_tenant(session, dep.keys, "other")
    upload_id = upload_bytes(dep, tenant, customers_csv())
    with dep.transaction() as session:
        dataset = catalog.create_dataset(session, dep, tenant, ANALYST, "customers",
                                         key_column="id")
        catalog.create_dataset(session, dep, tenant, ANALYST, "unprofiled")
    personal = frozenset({"email", "name", "phone", "postcode", "born"})
    version = jobs.run_build(dep, tenant.id, dataset.id, upload_id, ANALYST,
                             overrides=SchemaOverrides(key_column="id", personal=personal))
    assert version.status == "ready"
    yield dep
    dep.close()


@pytest.fixture
def target_settings(make_home: Callable[..., Settings], target_url: str) -> Settings:
    return make_home(Environment.TEST, database_url=target_url, name="test")


@pytest.fixture
def target(target_settings: Settings) -> Iterator[Deployment]:
    dep = open_deployment(target_settings)
    yield dep
    dep.close()


def files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


# Run in a child process: closing any descriptor of a file drops every POSIX lock this
# process holds on it, so reading an open SQLite database here would break its locking.
_SCAN = """
import json, os, sys
needles = [bytes.fromhex(n) for n in json.load(sys.stdin)]
hits = []
for top, _dirs, names in os.walk(sys.argv[1]):
    for name in names:
        path = os.path.join(top, name)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as handle:
                data = handle.read()
            hits += [f"{path}: {n[:20]!r}" for n in needles if n in data]
print(json.dumps(hits))
"""


def scan(root: Path, needles: list[bytes]) -> list[str]:
    """Every file under ``root`` holding one of ``needles``, read in a child process."""
    result = subprocess.run(
        [sys.executable, "-c", _SCAN, str(root)], input=json.dumps([n.hex() for n in needles]),
        capture_output=True, text=True, check=True, timeout=300,
    )
    return list(json.loads(result.stdout))


def canary_hits(root: Path) -> list[str]:
    return scan(root, canaries())


def snapshot(dep: Deployment) -> dict[str, Any]:
    """What a refused clone must not change in the target: its rows and object files."""
    with dep.transaction() as session:
        counts = {model.__name__: session.scalar(sa.select(sa.func.count()).select_from(model))
                  for model in (Tenant, Dataset, DatasetVersion, StoredObject, AuditEvent)}
    objects = sorted(str(p.relative_to(dep.store.root)) for p in files(dep.store.root))
    return {"rows": counts, "objects": objects}


def audit(dep: Deployment, tag: str) -> list[AuditEvent]:
    with dep.transaction() as session:
        return list(session.scalars(sa.select(AuditEvent).where(AuditEvent.tag == tag)))


def test_a_clone_is_queryable_in_the_target_and_holds_no_canary(
    source: Deployment, target: Deployment
) -> None:
    assert all(n in customers_csv() for n in canaries()[:12])  # the scan looks for real values
    result = clone(source, target, parse_profile(PROFILE))
    assert [(v.tenant, v.dataset, v.version, v.rows) for v in result.versions] == [
        ("acme", "customers", 1, ROWS)]
    assert result.skipped == ("acme/unprofiled",)
    with target.transaction() as session:
        tenant = get_tenant(session, "acme")
        assert tenant.name == "ACME Retail"
        resolved = resolve_datasets(session, target, tenant, ["customers"])
        keys = privacy_keys(session, target, tenant.id)
        # Users, tokens and audit are not cloned.
        assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
        assert session.scalar(sa.select(Tenant).where(Tenant.slug == "other")) is None
    assert resolved.columns["customers"] == {
        "id": "integer", "email": "text", "name": "text", "postcode": "text", "born": "integer",
        "spend": "float"}
    assert resolved.keys["customers"] == "id"
    assert resolved.personal["customers"] == {"email", "name", "postcode", "born"}
    with query_sandbox(resolved) as conn:
        count = run_query(conn, "SELECT count(*), count(DISTINCT email) FROM ds_customers").rows
        row = run_query(conn, "SELECT id, email, name, postcode, born FROM ds_customers "
                        "WHERE id = 17").rows
    assert count == [(ROWS, ROWS)]
    [(row_id, email, name, postcode, born)] = row
    assert row_id == 17
    assert email == keys.pseudonym(EMAIL.format(17))  # the target tenant's key
    assert name.startswith("C")
    assert NAME.format(17) not in name
    assert postcode == "SW1A"
    assert 1950 <= born < 1990
    assert canary_hits(target.settings.home) == []
    assert scan(target.settings.home, [b'environment = "test"'])  # the scan reads files
    [out] = audit(source, "operator:tenant:clone-out")
    assert json.loads(out.details)["to_environment"] == "test"
    assert "customers" not in out.details  # the dataset name is a keyed hash in the audit
    [into] = audit(target, "operator:tenant:clone-in")
    assert json.loads(into.details)["from_environment"] == "production"
    assert json.loads(into.details)["rows"] == ROWS


def test_the_source_is_only_read_apart_from_its_audit_record(
    source: Deployment, target: Deployment
) -> None:
    before = snapshot(source)
    with source.transaction() as session:
        keysets = session.scalar(sa.select(sa.func.count()).select_from(PseudonymKeyRecord))
    clone(source, target, parse_profile(PROFILE))
    after = snapshot(source)
    assert after["objects"] == before["objects"]
    assert after["rows"]["AuditEvent"] == before["rows"]["AuditEvent"] + 1
    assert {k: v for k, v in after["rows"].items() if k != "AuditEvent"} == {
        k: v for k, v in before["rows"].items() if k != "AuditEvent"}
    with source.transaction() as session:
        assert session.scalar(
            sa.select(sa.func.count()).select_from(PseudonymKeyRecord)) == keysets


def test_the_pseudonyms_are_the_target_tenants_not_the_sources(
    source: Deployment, target: Deployment
) -> None:
    clone(source, target, parse_profile(PROFILE))
    with source.transaction() as session:
        at_source = privacy_keys(session, source, get_tenant(session, "acme").id)
    with target.transaction() as session:
        tenant = get_tenant(session, "acme")
        resolved = resolve_datasets(session, target, tenant, ["customers"])
    with query_sandbox(resolved) as conn:
        [(email,)] = run_query(conn, "SELECT email FROM ds_customers WHERE id = 1").rows
    assert email != at_source.pseudonym(EMAIL.format(1))


def test_a_second_clone_adds_a_version(source: Deployment, target: Deployment) -> None:
    clone(source, target, parse_profile(PROFILE))
    again = clone(source, target, parse_profile(PROFILE), tenant_slug="acme")
    assert [v.version for v in again.versions] == [2]


@pytest.mark.parametrize(
    ("source_env", "target_env", "anonymised", "message"),
    [
        (Environment.PRODUCTION, Environment.TEST, False, "must be anonymised"),
        (Environment.PRODUCTION, Environment.DEVELOPMENT, False, "must be anonymised"),
        (Environment.TEST, Environment.PRODUCTION, True, "into a production deployment"),
        (Environment.PRODUCTION, Environment.PRODUCTION, True, "into a production deployment"),
        (Environment.TEST, Environment.TEST, True, "both test"),
    ],
)
def test_environment_rules(source_env: Environment, target_env: Environment, anonymised: bool,
                           message: str) -> None:
    with pytest.raises(CloneRefused, match=message):
        check_environments(source_env, target_env, anonymised)


def test_environment_rules_allow_production_to_test_and_test_to_development() -> None:
    check_environments(Environment.PRODUCTION, Environment.TEST, True)
    check_environments(Environment.TEST, Environment.DEVELOPMENT, True)


def test_a_clone_into_production_is_refused_and_changes_nothing(
    source: Deployment, make_home: Callable[..., Settings], target_url: str
) -> None:
    prod = open_deployment(make_home(Environment.PRODUCTION, database_url=target_url,
                                     name="prod2"))
    try:
        before = snapshot(prod)
        with pytest.raises(CloneRefused, match="production"):
            clone(source, prod, parse_profile(PROFILE))
        assert snapshot(prod) == before
    finally:
        prod.close()
    assert audit(source, "operator:tenant:clone-out") == []


def _with_column(spec: dict[str, Any]) -> dict[str, Any]:
    profile = json.loads(json.dumps(PROFILE))
    profile["datasets"]["customers"]["columns"].append(spec)
    return profile


@pytest.mark.parametrize(
    ("profile", "fragments"),
    [
        (_with_column({"name": "shoe_size"}), ["'shoe_size'", "not in the dataset"]),
        (_with_column({"name": "phone", "transform": {"kind": "scramble"}}),
         ["'phone'", "unknown transform"]),
        (_with_column({"name": "spend", "transform": {"kind": "mask"}}), ["'spend'", "mask"]),
        (_with_column({"name": "phone", "transform": {"kind": "token"}}),
         ["'phone'", "token is refused", "reversible"]),
        (_with_column({"name": "phone"}), ["'phone'", "personal data"]),
        (_with_column({"name": "phone", "transform": {"kind": "mask", "keep_first": 3,
                                                      "keep_last": 4}}),
         ["'phone'", "at most 4 characters"]),
        ({"datasets": {"customers": PROFILE["datasets"]["customers"], "orders": {"columns": [
            {"name": "id"}]}}}, ["'orders'", "does not have"]),
    ],
    ids=["unknown-column", "unknown-transform", "wrong-type", "token", "keep-personal",
         "mask-showing-much", "unknown-dataset"],
)
def test_a_bad_profile_is_refused_clearly_and_nothing_is_created(
    source: Deployment, target: Deployment, profile: dict[str, Any], fragments: list[str]
) -> None:
    before = snapshot(target)
    with pytest.raises(CloneProfileInvalid) as refused:
        clone(source, target, parse_profile(profile))
    for fragment in fragments:
        assert fragment in refused.value.detail
    assert refused.value.status == 422
    assert snapshot(target) == before
    assert audit(source, "operator:tenant:clone-out") == []


@pytest.mark.parametrize(
    "document",
    [[], {}, {"datasets": {}}, {"datasets": [], "x": 1}, {"datasets": {"a": []}},
     {"datasets": {"a": {"columns": []}}}, {"datasets": {"a": {"columns": [{}], "k": 1}}}],
)
def test_a_malformed_profile_is_refused(document: object) -> None:
    with pytest.raises(CloneProfileInvalid):
        parse_profile(document)
