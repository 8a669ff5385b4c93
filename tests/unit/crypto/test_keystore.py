"""Keysets in the metadata database (SQLite and PostgreSQL): rotation, rewrap, separation."""

from __future__ import annotations

import base64
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from strongroom.config import Environment, Settings, load_settings
from strongroom.crypto import master
from strongroom.crypto.errors import DecryptionFailed, KeyNotFound, MasterKeyError
from strongroom.crypto.keyring import TenantKeyRing
from strongroom.crypto.keystore import KeyStore
from strongroom.crypto.models import KeysetRecord
from strongroom.deployment import Deployment, open_deployment
from strongroom.storage.models import StoredObject
from strongroom.storage.services import put_object, read_object, rewrap_data_keys
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import create_tenant

MakeTenant = Callable[[str], Tenant]


def keyset_row(session: Session, tenant: Tenant) -> KeysetRecord:
    return session.scalars(
        sa.select(KeysetRecord).where(
            KeysetRecord.owner == tenant.id, KeysetRecord.purpose == "kek"
        )
    ).one()


def store_text(deployment: Deployment, tenant: Tenant, text: bytes) -> str:
    with deployment.transaction() as session:
        ring = deployment.keys.tenant_ring(session, tenant.id)
        return put_object(session, deployment.store, ring, tenant, [text], kind="upload").id


def load_text(deployment: Deployment, object_id: str) -> bytes:
    with deployment.transaction() as session:
        record = session.get(StoredObject, object_id)
        assert record is not None
        ring = deployment.keys.tenant_ring(session, record.tenant_id)
        return b"".join(read_object(deployment.store, ring, record))


def test_each_tenant_gets_its_own_keyset(deployment: Deployment, make_tenant: MakeTenant) -> None:
    acme, globex = make_tenant("acme"), make_tenant("globex")
    with deployment.transaction() as session:
        rows = [keyset_row(session, acme), keyset_row(session, globex)]
        assert [row.version for row in rows] == [1, 1]
        rings = [deployment.keys.tenant_ring(session, t.id) for t in (acme, globex)]
    sealed = rings[0].encrypt(b"x", b"ad")
    with pytest.raises(DecryptionFailed):
        rings[1].decrypt(sealed, b"ad")


def test_unknown_tenant_has_no_keyset(deployment: Deployment) -> None:
    with deployment.transaction() as session, pytest.raises(KeyNotFound):
        deployment.keys.tenant_ring(session, "f" * 32)


def test_rotation_keeps_data_readable_and_rewrap_moves_keys_to_the_newest_version(
    deployment: Deployment, make_tenant: MakeTenant
) -> None:
    acme, globex = make_tenant("acme"), make_tenant("globex")
    old_ids = [store_text(deployment, acme, b"before rotation %d" % i) for i in range(3)]
    foreign_id = store_text(deployment, globex, b"globex data")
    with deployment.transaction() as session:
        first = deployment.keys.tenant_ring(session, acme.id).primary_key_id
        foreign_before = session.get(StoredObject, foreign_id).wrapped_key  # type: ignore[union-attr]

    with deployment.transaction() as session:
        rotated = deployment.keys.rotate_tenant(session, acme.id)
    assert rotated.primary_key_id != first

    # Reopened from the database: a new primary, the old version kept.
    with deployment.transaction() as session:
        assert keyset_row(session, acme).version == 2
        ring = deployment.keys.tenant_ring(session, acme.id)
        assert ring.primary_key_id == rotated.primary_key_id
        assert ring.version == 2
    assert [load_text(deployment, i) for i in old_ids] == [
        b"before rotation %d" % i for i in range(3)
    ]
    new_id = store_text(deployment, acme, b"after rotation")
    with deployment.transaction() as session:
        kek_ids = {
            row.id: row.kek_key_id
            for row in session.scalars(
                sa.select(StoredObject).where(StoredObject.tenant_id == acme.id)
            )
        }
    assert kek_ids == {**dict.fromkeys(old_ids, first), new_id: ring.primary_key_id}

    with deployment.transaction() as session:
        assert rewrap_data_keys(session, ring) == 3
    with deployment.transaction() as session:
        rows = session.scalars(sa.select(StoredObject).where(StoredObject.tenant_id == acme.id))
        for row in rows:
            assert row.kek_key_id == ring.primary_key_id
            assert TenantKeyRing.key_id_of(row.wrapped_key) == ring.primary_key_id
        foreign = session.get(StoredObject, foreign_id)
        assert foreign is not None
        assert foreign.wrapped_key == foreign_before  # another tenant's keys are not touched
        assert rewrap_data_keys(session, ring) == 0
    assert [load_text(deployment, i) for i in old_ids] == [
        b"before rotation %d" % i for i in range(3)
    ]
    assert load_text(deployment, new_id) == b"after rotation"
    assert load_text(deployment, foreign_id) == b"globex data"


def test_keyset_row_copied_onto_another_tenant_does_not_open(
    deployment: Deployment, make_tenant: MakeTenant
) -> None:
    acme, globex = make_tenant("acme"), make_tenant("globex")
    with deployment.transaction() as session:
        keyset_row(session, globex).encrypted_keyset = keyset_row(session, acme).encrypted_keyset
    with deployment.transaction() as session:
        deployment.keys.tenant_ring(session, acme.id)  # the original still opens
        with pytest.raises(MasterKeyError, match="belongs to another tenant or environment"):
            deployment.keys.tenant_ring(session, globex.id)


# -- wrong master key, wrong environment -----------------------------------------------------


def replace_master_key(settings: Settings) -> None:
    settings.master_key_file.write_bytes(base64.b64encode(secrets.token_bytes(32)))
    settings.master_key_file.chmod(0o600)


def test_wrong_master_key_file_is_refused_at_open(settings: Settings) -> None:
    open_deployment(settings).close()
    replace_master_key(settings)
    with pytest.raises(MasterKeyError, match="does not open this deployment") as caught:
        open_deployment(settings)
    assert "master key" in caught.value.one_line()


def test_wrong_master_key_variable_is_refused_at_open(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRONGROOM_MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    with pytest.raises(MasterKeyError, match="wrong key"):
        open_deployment(load_settings(settings.home))


def test_wrong_master_key_cannot_open_tenant_keysets_even_past_the_check(
    deployment: Deployment, make_tenant: MakeTenant
) -> None:
    acme = make_tenant("acme")
    wrong = master.RawMasterKey(secrets.token_bytes(32), "wrong")
    keys = KeyStore(wrong.environment_aead(Environment.DEVELOPMENT), Environment.DEVELOPMENT)
    with deployment.transaction() as session, pytest.raises(MasterKeyError, match="wrong master"):
        keys.tenant_ring(session, acme.id)


@pytest.fixture
def production_home(make_home: Callable[..., Settings], db_url: str) -> tuple[Settings, str]:
    """A production deployment holding one tenant's object; returns settings and object id."""
    settings = make_home(Environment.PRODUCTION, database_url=db_url, name="production")
    deployment = open_deployment(settings)
    try:
        with deployment.transaction() as session:
            tenant = create_tenant(session, deployment.keys, "acme")
            ring = deployment.keys.tenant_ring(session, tenant.id)
            record = put_object(
                session, deployment.store, ring, tenant, [b"production data"], kind="upload"
            )
            object_id = record.id
    finally:
        deployment.close()
    return settings, object_id


def as_test_copy(settings: Settings, tmp_path: Path) -> Settings:
    copy = tmp_path / "copied-as-test"
    shutil.copytree(settings.home, copy)
    config = copy / "strongroom.toml"
    text = config.read_text()
    assert 'environment = "production"' in text
    config.write_text(text.replace('environment = "production"', 'environment = "test"'))
    copied = load_settings(copy)
    assert copied.environment is Environment.TEST
    return copied


def test_production_home_copied_and_opened_as_test_is_refused(
    production_home: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, _ = production_home
    copied = as_test_copy(settings, tmp_path)
    with pytest.raises(MasterKeyError, match="initialised as production, but settings say test"):
        open_deployment(copied)


def test_production_keys_do_not_open_in_test_even_past_the_check(
    production_home: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, object_id = production_home
    copied = as_test_copy(settings, tmp_path)
    # Same master key file, test environment: the derived KEK differs, so no keyset opens,
    # and the object's associated data names production, so no stream would either.
    key = master.load_master_key(copied)
    keys = KeyStore(key.environment_aead(Environment.TEST), Environment.TEST)
    engine = sa.create_engine(copied.sqlalchemy_url)
    try:
        with Session(engine) as session:
            record = session.get(StoredObject, object_id)
            assert record is not None
            with pytest.raises(MasterKeyError):
                keys.tenant_ring(session, record.tenant_id)
    finally:
        engine.dispose()
    # The untouched production home still opens and reads its data.
    deployment = open_deployment(settings)
    try:
        assert load_text(deployment, object_id) == b"production data"
    finally:
        deployment.close()


def test_a_rotation_by_another_process_is_seen_despite_the_ring_cache(
    deployment: Deployment, settings: Settings, make_tenant: MakeTenant
) -> None:
    tenant = make_tenant("cached")
    with deployment.transaction() as session:
        before = deployment.keys.tenant_ring(session, tenant.id)  # now cached here
    other = open_deployment(settings)  # a second process: its own KeyStore
    try:
        with other.transaction() as session:
            rotated = other.keys.rotate_tenant(session, tenant.id)
    finally:
        other.close()
    with deployment.transaction() as session:
        after = deployment.keys.tenant_ring(session, tenant.id)
    assert after.primary_key_id == rotated.primary_key_id != before.primary_key_id
    assert after.version == 2


def test_a_deployment_secret_from_a_rolled_back_transaction_is_not_kept(
    settings: Settings,
) -> None:
    dep = open_deployment(settings)
    try:
        with dep.engine.begin() as conn:
            conn.execute(sa.delete(KeysetRecord).where(KeysetRecord.purpose == "identity-mac"))
        fresh = KeyStore(dep.keys._kek, dep.keys.environment)  # the same KEK, a new cache
        session = dep.sessions()
        with session.begin():
            first = fresh.identity_key(session).mac("d", b"v")
            session.rollback()  # the transaction that made the secret never commits
        session.close()
        with dep.transaction() as session:
            second = fresh.identity_key(session).mac("d", b"v")
        with dep.transaction() as session:
            third = fresh.identity_key(session).mac("d", b"v")
    finally:
        dep.close()
    assert first != second  # the rolled-back secret was not served from the cache
    assert second == third  # the committed one is stable
