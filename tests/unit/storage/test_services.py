"""Encrypted objects end to end: real deployments on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from strongroom.crypto.errors import DecryptionFailed
from strongroom.crypto.keyring import TenantKeyRing, data_key_context
from strongroom.crypto.streaming import SEGMENT_BYTES
from strongroom.deployment import Deployment, open_deployment
from strongroom.storage.errors import ObjectCorrupted, ObjectMissing
from strongroom.storage.interfaces import BlobRef
from strongroom.storage.models import StoredObject
from strongroom.storage.services import get_object, put_object, read_object
from strongroom.tenancy.errors import TenantSuspended
from strongroom.tenancy.models import Tenant
from strongroom.tenancy.services import resume_tenant, suspend_tenant

MakeTenant = Callable[[str], Tenant]
CANARY = b"canary-3d9e41@example.com;"


def ring_of(deployment: Deployment, tenant: Tenant) -> TenantKeyRing:
    with deployment.transaction() as session:
        return deployment.keys.tenant_ring(session, tenant.id)


def put(deployment: Deployment, tenant: Tenant, data: bytes) -> StoredObject:
    with deployment.transaction() as session:
        ring = deployment.keys.tenant_ring(session, tenant.id)
        pieces = (data[i : i + 65536] for i in range(0, len(data), 65536))
        return put_object(session, deployment.store, ring, tenant, pieces, kind="upload")


def read(deployment: Deployment, record: StoredObject, ring: TenantKeyRing) -> bytes:
    return b"".join(read_object(deployment.store, ring, record))


def ref_of(record: StoredObject) -> BlobRef:
    return BlobRef(record.tenant_id, record.digest, record.size)


def object_file(deployment: Deployment, record: StoredObject) -> Path:
    root = deployment.store.root / "tenants" / record.tenant_id
    return root / record.digest[:2] / record.digest


def all_files(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.is_file())


def test_round_trip_keeps_no_plaintext_on_disk(
    deployment: Deployment, make_tenant: MakeTenant
) -> None:
    acme = make_tenant("acme")
    data = CANARY * (3 * SEGMENT_BYTES // len(CANARY))
    record = put(deployment, acme, data)
    assert record.plaintext_size == len(data)
    assert record.size == object_file(deployment, record).stat().st_size > len(data)
    assert record.kek_key_id == ring_of(deployment, acme).primary_key_id
    assert read(deployment, record, ring_of(deployment, acme)) == data
    home_files = list(all_files(deployment.settings.home))
    assert object_file(deployment, record) in home_files
    for path in home_files:
        assert CANARY not in path.read_bytes(), path


def test_objects_are_listed_per_tenant_only(
    deployment: Deployment, make_tenant: MakeTenant
) -> None:
    acme, globex = make_tenant("acme"), make_tenant("globex")
    record = put(deployment, acme, b"acme data")
    with deployment.transaction() as session:
        assert get_object(session, acme, record.id).id == record.id
        with pytest.raises(ObjectMissing, match="no such object"):
            get_object(session, globex, record.id)
        with pytest.raises(ObjectMissing):
            get_object(session, acme, "0" * 32)


def test_another_tenants_ring_cannot_read(
    deployment: Deployment, make_tenant: MakeTenant
) -> None:
    acme, globex = make_tenant("acme"), make_tenant("globex")
    record = put(deployment, acme, b"acme data")
    with pytest.raises(DecryptionFailed):
        read(deployment, record, ring_of(deployment, globex))


def _clone_row(record: StoredObject, **changes: str) -> StoredObject:
    columns = ("id", "tenant_id", "kind", "digest", "size", "plaintext_size", "wrapped_key",
               "kek_key_id")
    values = {name: getattr(record, name) for name in columns} | changes
    return StoredObject(**values)


def test_ciphertext_moved_to_another_tenant_is_refused(
    deployment: Deployment, make_tenant: MakeTenant
) -> None:
    acme, globex = make_tenant("acme"), make_tenant("globex")
    record = put(deployment, acme, b"acme data")
    # Someone with file and database access moves the object, key and all, to globex.
    source = object_file(deployment, record)
    moved = _clone_row(record, id=os.urandom(16).hex(), tenant_id=globex.id)
    target = object_file(deployment, moved)
    target.parent.mkdir(parents=True)
    shutil.copyfile(source, target)
    with deployment.transaction() as session:
        session.add(moved)
    with deployment.transaction() as session:
        found = get_object(session, globex, moved.id)
    deployment.store.verify(ref_of(found))  # the bytes are intact; only the place is wrong
    with pytest.raises(DecryptionFailed):
        read(deployment, found, ring_of(deployment, globex))


def test_ciphertext_moved_to_another_object_id_is_refused(
    deployment: Deployment, make_tenant: MakeTenant
) -> None:
    acme = make_tenant("acme")
    record = put(deployment, acme, b"acme data")
    ring = ring_of(deployment, acme)
    # The same blob and wrapped key under a new id: the key is bound to its object id ...
    copy = _clone_row(record, id=os.urandom(16).hex())
    with pytest.raises(DecryptionFailed, match="moved to another tenant or object"):
        read(deployment, copy, ring)
    # ... and so is the stream, even if the data key were re-wrapped for the new id.
    data_key = ring.decrypt(
        record.wrapped_key, data_key_context(ring.environment, acme.id, record.id)
    )
    copy.wrapped_key = ring.encrypt(data_key, data_key_context(ring.environment, acme.id, copy.id))
    with pytest.raises(DecryptionFailed, match="at segment 0"):
        read(deployment, copy, ring)


@pytest.mark.parametrize(
    ("how", "size", "errors"),
    [
        # One read reaches the end of a small object, so its digest is checked first.
        ("flip", 1000, ObjectCorrupted),
        # In a large object a segment's tag fails before the end of the file is reached.
        ("flip", 3 * SEGMENT_BYTES, DecryptionFailed),
        ("flip-middle-segment", 3 * SEGMENT_BYTES, DecryptionFailed),
        ("truncate", 1000, ObjectCorrupted),
        ("truncate", 3 * SEGMENT_BYTES, (ObjectCorrupted, DecryptionFailed)),
        ("truncate-at-segment", 3 * SEGMENT_BYTES, (ObjectCorrupted, DecryptionFailed)),
        ("append", 1000, ObjectCorrupted),
        ("append", 3 * SEGMENT_BYTES, ObjectCorrupted),
    ],
)
def test_corrupted_object_is_refused(
    deployment: Deployment,
    make_tenant: MakeTenant,
    how: str,
    size: int,
    errors: type[Exception] | tuple[type[Exception], ...],
) -> None:
    acme = make_tenant("acme")
    record = put(deployment, acme, os.urandom(size))
    path = object_file(deployment, record)
    path.chmod(0o600)
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[100] ^= 0x01
    elif how == "flip-middle-segment":
        data[SEGMENT_BYTES + 100] ^= 0x01
    elif how == "truncate":
        del data[-100:]
    elif how == "truncate-at-segment":
        del data[2 * SEGMENT_BYTES :]
    else:
        data += b"tail"
    path.write_bytes(bytes(data))
    with pytest.raises(errors):
        read(deployment, record, ring_of(deployment, acme))
    with pytest.raises(ObjectCorrupted):
        deployment.store.verify(ref_of(record))


def test_failed_upload_leaves_no_row_and_no_file(
    deployment: Deployment, make_tenant: MakeTenant
) -> None:
    acme = make_tenant("acme")

    def pieces() -> Iterator[bytes]:
        yield os.urandom(2 * SEGMENT_BYTES)
        raise ConnectionResetError("client went away")

    ring = ring_of(deployment, acme)
    with pytest.raises(ConnectionResetError), deployment.transaction() as session:
        put_object(session, deployment.store, ring, acme, pieces(), kind="upload")
    with deployment.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(StoredObject)) == 0
    assert list(all_files(deployment.store.root)) == []


_KILLED_UPLOAD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from strongroom.config import load_settings
    from strongroom.deployment import open_deployment
    from strongroom.storage.services import put_object
    from strongroom.tenancy.services import get_tenant

    deployment = open_deployment(load_settings(Path(sys.argv[1])))

    def pieces():
        for _ in range(8):
            yield b"%s" * 40_000
        print("half-written", flush=True)
        time.sleep(300)
        yield b"the rest"

    with deployment.transaction() as session:
        tenant = get_tenant(session, "acme")
        ring = deployment.keys.tenant_ring(session, tenant.id)
        put_object(session, deployment.store, ring, tenant, pieces(), kind="upload")
    print("published", flush=True)
    """
)


def test_upload_killed_mid_write_leaves_nothing(
    deployment: Deployment, make_tenant: MakeTenant
) -> None:
    make_tenant("acme")
    script = _KILLED_UPLOAD % CANARY.decode()
    home = deployment.settings.home
    with subprocess.Popen(
        [sys.executable, "-c", script, str(home)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as upload:
        try:
            assert upload.stdout is not None
            assert upload.stderr is not None
            assert upload.stdout.readline() == b"half-written\n", upload.stderr.read()
            leftovers = list((deployment.store.root / ".incoming").iterdir())
            assert len(leftovers) == 1
            assert leftovers[0].stat().st_size >= 4 * SEGMENT_BYTES
        finally:
            upload.send_signal(signal.SIGKILL)
            upload.wait()
    assert not (deployment.store.root / "tenants").exists()
    with deployment.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(StoredObject)) == 0
    # The next start clears the orphan; no plaintext was ever on disk.
    for path in all_files(home):
        assert CANARY not in path.read_bytes(), path
    open_deployment(deployment.settings).close()
    assert list((deployment.store.root / ".incoming").iterdir()) == []


# -- suspended tenants ----------------------------------------------------------------------


def test_suspended_tenant_cannot_store_but_its_data_stays_intact(
    deployment: Deployment, make_tenant: MakeTenant
) -> None:
    acme = make_tenant("acme")
    record = put(deployment, acme, CANARY * 1000)
    with deployment.transaction() as session:
        acme = suspend_tenant(session, "acme")
    with pytest.raises(TenantSuspended, match="acme is suspended"):
        put(deployment, acme, b"more")
    with deployment.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(StoredObject)) == 1
    # Operators can still verify and read what is there (for export or restore).
    deployment.store.verify(ref_of(record))
    assert read(deployment, record, ring_of(deployment, acme)) == CANARY * 1000
    with deployment.transaction() as session:
        acme = resume_tenant(session, "acme")
    assert read(deployment, put(deployment, acme, b"more"), ring_of(deployment, acme)) == b"more"


def test_an_object_whose_row_cannot_be_written_leaves_no_file(
    deployment: Deployment, make_tenant: MakeTenant
) -> None:
    """The ciphertext is published before its row; a refused row takes the file with it."""
    acme = make_tenant("acme")
    put(deployment, acme, b"first")
    root = deployment.store.root / "tenants" / acme.id
    files_before = sorted(all_files(root))
    postgres = deployment.engine.dialect.name == "postgresql"
    with deployment.engine.begin() as conn:
        if postgres:
            conn.execute(sa.text(
                "CREATE FUNCTION refuse_object() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"))
            conn.execute(sa.text("CREATE TRIGGER refuse_object BEFORE INSERT ON objects "
                                 "FOR EACH ROW EXECUTE FUNCTION refuse_object()"))
        else:
            conn.execute(sa.text("CREATE TRIGGER refuse_object BEFORE INSERT ON objects "
                                 "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
    with pytest.raises(sa.exc.SQLAlchemyError, match="disk full"):
        put(deployment, acme, b"second")
    assert sorted(all_files(root)) == files_before
