"""Tenant key rings: wrapping under the environment KEK, rotation, data keys."""

from __future__ import annotations

import io
import secrets

import pytest

from strongroom.config import Environment
from strongroom.crypto.errors import DecryptionFailed, MasterKeyError
from strongroom.crypto.keyring import TenantKeyRing, data_key_context
from strongroom.crypto.master import RawMasterKey
from strongroom.crypto.streaming import object_context


@pytest.fixture
def master_key() -> RawMasterKey:
    return RawMasterKey(secrets.token_bytes(32), "test")


def test_wrapped_ring_opens_for_its_tenant_and_environment(
    ring: TenantKeyRing, master_key: RawMasterKey
) -> None:
    kek = master_key.environment_aead(Environment.TEST)
    wrapped = ring.wrap(kek)
    opened = TenantKeyRing.unwrap(wrapped, kek, Environment.TEST, ring.tenant_id)
    assert opened.primary_key_id == ring.primary_key_id
    sealed = ring.encrypt(b"secret", b"ad")
    assert opened.decrypt(sealed, b"ad") == b"secret"


def test_wrapped_ring_does_not_open_as_another_tenant(
    ring: TenantKeyRing, other_ring: TenantKeyRing, master_key: RawMasterKey
) -> None:
    kek = master_key.environment_aead(Environment.TEST)
    with pytest.raises(MasterKeyError, match="belongs to another tenant or environment"):
        TenantKeyRing.unwrap(ring.wrap(kek), kek, Environment.TEST, other_ring.tenant_id)


def test_wrapped_ring_does_not_open_in_another_environment(
    ring: TenantKeyRing, master_key: RawMasterKey
) -> None:
    test_kek = master_key.environment_aead(Environment.TEST)
    wrapped = ring.wrap(test_kek)
    production = master_key.environment_aead(Environment.PRODUCTION)
    # Same master key, but the KEK derived for another environment does not open it ...
    with pytest.raises(MasterKeyError):
        TenantKeyRing.unwrap(wrapped, production, Environment.TEST, ring.tenant_id)
    with pytest.raises(MasterKeyError):
        TenantKeyRing.unwrap(wrapped, production, Environment.PRODUCTION, ring.tenant_id)
    # ... and neither does the right KEK when the associated data names another environment.
    with pytest.raises(MasterKeyError):
        TenantKeyRing.unwrap(wrapped, test_kek, Environment.PRODUCTION, ring.tenant_id)


def test_wrapped_ring_does_not_open_with_another_master_key(
    ring: TenantKeyRing, master_key: RawMasterKey
) -> None:
    wrapped = ring.wrap(master_key.environment_aead(Environment.TEST))
    wrong = RawMasterKey(secrets.token_bytes(32), "wrong").environment_aead(Environment.TEST)
    with pytest.raises(MasterKeyError, match="wrong master key"):
        TenantKeyRing.unwrap(wrapped, wrong, Environment.TEST, ring.tenant_id)


def test_tenant_rings_hold_different_keys(
    ring: TenantKeyRing, other_ring: TenantKeyRing
) -> None:
    sealed = ring.encrypt(b"secret", b"ad")
    with pytest.raises(DecryptionFailed):
        other_ring.decrypt(sealed, b"ad")


# -- rotation -------------------------------------------------------------------------------


def test_rotation_adds_a_new_primary_and_keeps_old_keys(ring: TenantKeyRing) -> None:
    old_sealed = ring.encrypt(b"before", b"ad")
    rotated = ring.rotated()
    assert rotated.version == ring.version + 1 == 2
    assert rotated.primary_key_id != ring.primary_key_id
    assert TenantKeyRing.key_id_of(old_sealed) == ring.primary_key_id
    assert rotated.decrypt(old_sealed, b"ad") == b"before"
    new_sealed = rotated.encrypt(b"after", b"ad")
    assert TenantKeyRing.key_id_of(new_sealed) == rotated.primary_key_id
    # The new primary is a genuinely new key: the old ring cannot read what it wraps.
    with pytest.raises(DecryptionFailed):
        ring.decrypt(new_sealed, b"ad")


def test_rotating_twice_keeps_every_version_readable(ring: TenantKeyRing) -> None:
    sealed = [ring.encrypt(b"v1", b"ad")]
    current = ring
    for _ in range(2):
        current = current.rotated()
        sealed.append(current.encrypt(b"v%d" % current.version, b"ad"))
    assert current.version == 3
    assert [current.decrypt(s, b"ad") for s in sealed] == [b"v1", b"v2", b"v3"]
    assert len({TenantKeyRing.key_id_of(s) for s in sealed}) == 3


def test_rewrap_moves_a_key_to_the_primary_version(ring: TenantKeyRing) -> None:
    context = data_key_context(ring.environment, ring.tenant_id, "obj")
    key, wrapped = ring.new_data_key("obj")
    rotated = ring.rotated()
    rewrapped = rotated.rewrap(wrapped, context)
    assert rewrapped is not None
    assert TenantKeyRing.key_id_of(rewrapped) == rotated.primary_key_id
    assert rotated.decrypt(rewrapped, context) == rotated.decrypt(wrapped, context)
    assert rotated.rewrap(rewrapped, context) is None  # already on the primary
    # The rewrapped data key still opens what the original sealed.
    blob = io.BytesIO()
    obj = object_context(ring.environment, ring.tenant_id, "obj")
    key.seal(obj, [b"payload"], blob)
    reopened = rotated.open_data_key(rewrapped, "obj")
    assert b"".join(reopened.open(obj, io.BytesIO(blob.getvalue()))) == b"payload"


def test_rewrap_refuses_a_key_wrapped_for_another_object(ring: TenantKeyRing) -> None:
    _, wrapped = ring.new_data_key("obj")
    other = data_key_context(ring.environment, ring.tenant_id, "other")
    with pytest.raises(DecryptionFailed):
        ring.rotated().rewrap(wrapped, other)


# -- data keys ------------------------------------------------------------------------------


def test_data_key_opens_only_for_its_object_and_tenant(
    ring: TenantKeyRing, other_ring: TenantKeyRing
) -> None:
    _, wrapped = ring.new_data_key("obj")
    assert ring.open_data_key(wrapped, "obj").bits == 256
    with pytest.raises(DecryptionFailed, match="moved to another tenant or object"):
        ring.open_data_key(wrapped, "other")
    with pytest.raises(DecryptionFailed):
        other_ring.open_data_key(wrapped, "obj")


def test_every_data_key_is_fresh(ring: TenantKeyRing) -> None:
    context = object_context(ring.environment, ring.tenant_id, "obj")
    first, _ = ring.new_data_key("obj")
    second, _ = ring.new_data_key("obj")
    blob = io.BytesIO()
    first.seal(context, [b"payload"], blob)
    with pytest.raises(DecryptionFailed):
        b"".join(second.open(context, io.BytesIO(blob.getvalue())))
