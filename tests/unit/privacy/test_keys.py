"""Pseudonymisation keys: fixed vectors, tenant separation, versions, rotation and reversal."""

from __future__ import annotations

import base64
import hmac  # noqa: TID251 (the independent computation the fixed vectors are checked against)
import json
import threading
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESSIV  # noqa: TID251 (as above)
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.privacy.conftest import HMAC_KEY, SIV_KEY

from strongroom.audit import Actor
from strongroom.audit.models import AuditEvent
from strongroom.crypto.errors import DecryptionFailed
from strongroom.crypto.pseudonyms import PseudonymKey, token_context
from strongroom.deployment import Deployment
from strongroom.privacy.errors import ReversalForbidden, RotationConflict, TokenInvalid
from strongroom.privacy.keys import (
    MAX_TOKENS_PER_REVERSAL,
    PrivacyKeys,
    audit_refused_reversal,
    key_versions,
    privacy_keys,
    reverse_tokens,
    rewrap_privacy_keys,
    rotate_privacy_keys,
)
from strongroom.privacy.models import PseudonymKeyRecord
from strongroom.tenancy.deletion import purge_tenant, request_deletion
from strongroom.tenancy.models import Tenant

VALUE = "alice@example.com"


def _events(deployment: Deployment, tag: str) -> list[AuditEvent]:
    with deployment.transaction() as session:
        return list(
            session.scalars(
                sa.select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.seq)
            )
        )


# -- fixed vectors (no database) ------------------------------------------------------------


def test_pseudonym_fixed_vector(known_keys: PrivacyKeys) -> None:
    digest = hmac.digest(HMAC_KEY, VALUE.encode(), "sha256")
    expected = "p1_" + digest[:20].hex()
    assert known_keys.pseudonym(VALUE) == expected
    assert len(expected) == 3 + 40  # 160 bits
    # and literally, so a change on both sides at once cannot slip through
    assert expected == "p1_a59fc578d4cb46faab1d6eb348e7c74b33b85122"
    assert known_keys.pseudonym("") == "p1_" + hmac.digest(HMAC_KEY, b"", "sha256")[:20].hex()


def test_token_fixed_vector_and_round_trip(known_keys: PrivacyKeys) -> None:
    sealed = AESSIV(SIV_KEY).encrypt(VALUE.encode(), [b"strongroom/privacy-token/tenant-a/v1"])
    expected = "t1_" + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()
    assert known_keys.token(VALUE) == expected
    assert known_keys.token(VALUE) == known_keys.token(VALUE)  # deterministic
    assert known_keys.reverse(expected) == VALUE
    assert known_keys.reverse(known_keys.token("")) == ""
    assert known_keys.reverse(known_keys.token("ünïcødé ✓")) == "ünïcødé ✓"


def test_pseudonyms_differ_by_tenant_and_version() -> None:
    a1 = PseudonymKey("tenant-a", 1, HMAC_KEY, SIV_KEY)
    a2 = PseudonymKey("tenant-a", 2, bytes(32), SIV_KEY)
    b1 = PseudonymKey("tenant-b", 1, bytes(31) + b"\x01", SIV_KEY)
    values = {k.pseudonym(VALUE.encode()) for k in (a1, a2, b1)}
    assert len(values) == 3
    # Same material under another version still differs in its visible version.
    assert PseudonymKey("tenant-a", 2, HMAC_KEY, SIV_KEY).pseudonym(b"x").startswith("p2_")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # last character
        lambda t: t[:5] + ("A" if t[5] != "A" else "B") + t[6:],  # inside the SIV
        lambda t: t + "AA",  # extended
        lambda t: t[:-4],  # truncated
        lambda t: "t2" + t[2:],  # relabelled to another version
        lambda t: "x" + t[1:],  # not a token prefix
        lambda t: t.replace("_", "-", 1),
        lambda _t: "",
        lambda _t: "t1_",
        lambda _t: "t1_" + "=" * 30,
    ],
)
def test_tampered_token_refused(known_keys: PrivacyKeys, tamper: Callable[[str], str]) -> None:
    keys = PrivacyKeys("tenant-a", {**known_keys.versions, 2: PseudonymKey.generate("tenant-a", 2)})
    token = keys.versions[1].token(VALUE.encode())
    with pytest.raises(TokenInvalid) as caught:
        keys.reverse(tamper(token))
    assert caught.value.status == 422
    assert VALUE not in caught.value.detail


def test_only_the_canonical_spelling_of_a_token_reverses(known_keys: PrivacyKeys) -> None:
    """Base64's unused low bits in the last character must not make aliases of a token."""
    for value in ("x", "abc", "", "alice@example.co"):  # 16 + length not a multiple of 3
        token = known_keys.token(value)
        aliases = [token[:-1] + c for c in _B64 if c != token[-1]]
        same_bytes = [a for a in aliases
                      if base64.urlsafe_b64decode(a[3:] + "=" * (-len(a[3:]) % 4))
                      == base64.urlsafe_b64decode(token[3:] + "=" * (-len(token[3:]) % 4))]
        assert same_bytes, "the value lengths above are chosen to leave unused bits"
        for alias in aliases:
            with pytest.raises(TokenInvalid):
                known_keys.reverse(alias)
        assert known_keys.reverse(token) == value


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_token_bound_to_tenant_even_with_the_same_key() -> None:
    """The associated data names the tenant: the same key material does not carry over."""
    a = PseudonymKey("tenant-a", 1, HMAC_KEY, SIV_KEY)
    b = PrivacyKeys("tenant-b", {1: PseudonymKey("tenant-b", 1, HMAC_KEY, SIV_KEY)})
    assert token_context("tenant-a", 1) != token_context("tenant-b", 1)
    with pytest.raises(TokenInvalid):
        b.reverse(a.token(VALUE.encode()))


def test_unknown_version_refused(known_keys: PrivacyKeys) -> None:
    other = PseudonymKey.generate("tenant-a", 7)
    with pytest.raises(TokenInvalid):
        known_keys.reverse(other.token(VALUE.encode()))


def test_key_material_checked_and_hidden() -> None:
    with pytest.raises(ValueError, match="length"):
        PseudonymKey("t", 1, bytes(16), SIV_KEY)
    with pytest.raises(ValueError, match="range"):
        PseudonymKey("t", 0, HMAC_KEY, SIV_KEY)
    key = PseudonymKey("t", 1, HMAC_KEY, SIV_KEY)
    assert HMAC_KEY.hex() not in repr(key)
    assert "HMAC" not in repr(PrivacyKeys("t", {1: key}))


def test_batch_forms_match_single(known_keys: PrivacyKeys) -> None:
    values = [VALUE, None, "bob"]
    assert known_keys.pseudonyms(values) == [known_keys.pseudonym(VALUE), None,
                                             known_keys.pseudonym("bob")]
    tokens = known_keys.tokens(values)
    assert tokens[1] is None
    assert [known_keys.reverse(t) for t in tokens if t] == [VALUE, "bob"]


# -- stored keys ----------------------------------------------------------------------------


def test_created_on_first_use_then_stable(deployment: Deployment, tenant: Tenant) -> None:
    with deployment.transaction() as session:
        first = privacy_keys(session, deployment, tenant.id)
        pseudonym, token = first.pseudonym(VALUE), first.token(VALUE)
    with deployment.transaction() as session:
        again = privacy_keys(session, deployment, tenant.id)
        assert key_versions(session, tenant.id) == [1]
        record = session.scalars(sa.select(PseudonymKeyRecord)).one()
    assert again.version == 1
    assert again.pseudonym(VALUE) == pseudonym
    assert again.token(VALUE) == token
    assert again.reverse(token) == VALUE
    # Stored wrapped: neither key appears in the row.
    assert VALUE.encode() not in record.wrapped_key
    created = _events(deployment, "system:privacy-key:create")
    assert len(created) == 1
    assert created[0].tenant_id == tenant.id


def test_first_use_rolled_back_leaves_nothing(deployment: Deployment, tenant: Tenant) -> None:
    class Stop(Exception):
        pass

    def make_then_fail() -> None:
        with deployment.transaction() as session:
            privacy_keys(session, deployment, tenant.id)
            raise Stop

    with pytest.raises(Stop):
        make_then_fail()
    with deployment.transaction() as session:
        assert key_versions(session, tenant.id) == []


def test_tenants_get_different_pseudonyms_and_cannot_reverse_each_other(
    deployment: Deployment, make_tenant: Callable[[str], Tenant], admin: Actor
) -> None:
    a, b = make_tenant("tenant-one"), make_tenant("tenant-two")
    with deployment.transaction() as session:
        keys_a = privacy_keys(session, deployment, a.id)
        keys_b = privacy_keys(session, deployment, b.id)
    assert keys_a.pseudonym(VALUE) != keys_b.pseudonym(VALUE)
    token_a = keys_a.token(VALUE)
    assert token_a != keys_b.token(VALUE)
    with pytest.raises(TokenInvalid):
        keys_b.reverse(token_a)
    with pytest.raises(TokenInvalid), deployment.transaction() as session:
        reverse_tokens(session, deployment, b, admin, [token_a])


def test_wrapped_key_does_not_open_as_another_tenant_or_version(
    deployment: Deployment, make_tenant: Callable[[str], Tenant]
) -> None:
    a, b = make_tenant("tenant-one"), make_tenant("tenant-two")
    with deployment.transaction() as session:
        privacy_keys(session, deployment, a.id)
        wrapped = session.scalars(sa.select(PseudonymKeyRecord)).one().wrapped_key
        ring_a = deployment.keys.tenant_ring(session, a.id)
        ring_b = deployment.keys.tenant_ring(session, b.id)
    with pytest.raises(DecryptionFailed):
        PseudonymKey.unwrap(ring_b, 1, wrapped)
    with pytest.raises(DecryptionFailed):
        PseudonymKey.unwrap(ring_a, 2, wrapped)


def test_rotation_new_version_old_tokens_still_reverse(
    deployment: Deployment, tenant: Tenant, admin: Actor
) -> None:
    with deployment.transaction() as session:
        v1 = privacy_keys(session, deployment, tenant.id)
    old_token, old_pseudonym = v1.token(VALUE), v1.pseudonym(VALUE)
    with deployment.transaction() as session:
        assert rotate_privacy_keys(session, deployment, tenant.id, actor=admin) == 2
    with deployment.transaction() as session:
        v2 = privacy_keys(session, deployment, tenant.id)
        assert key_versions(session, tenant.id) == [1, 2]
    assert v2.version == 2
    assert v2.pseudonym(VALUE) != old_pseudonym
    assert v2.pseudonym(VALUE).startswith("p2_")
    assert v2.token(VALUE) != old_token
    assert v2.token(VALUE).startswith("t2_")
    assert v2.reverse(old_token) == VALUE
    assert v2.reverse(v2.token(VALUE)) == VALUE
    with deployment.transaction() as session:
        values = reverse_tokens(
            session, deployment, tenant, admin, [old_token, v2.token(VALUE)]
        )
    assert values == [VALUE, VALUE]
    rotated = _events(deployment, "user:privacy-key:rotate")
    assert [json.loads(e.details)["version"] for e in rotated] == [2]
    assert rotated[0].actor_id == admin.id


def test_rotation_before_first_use_makes_version_one(
    deployment: Deployment, tenant: Tenant
) -> None:
    with deployment.transaction() as session:
        assert rotate_privacy_keys(session, deployment, tenant.id) == 1
        assert rotate_privacy_keys(session, deployment, tenant.id) == 2
    with deployment.transaction() as session:
        assert privacy_keys(session, deployment, tenant.id).version == 2


def test_reversal_audited_without_values_or_tokens(
    deployment: Deployment, tenant: Tenant, admin: Actor
) -> None:
    with deployment.transaction() as session:
        keys = privacy_keys(session, deployment, tenant.id)
    tokens = [keys.token(VALUE), keys.token("bob@example.org")]
    with deployment.transaction() as session:
        assert reverse_tokens(session, deployment, tenant, admin, tokens) == [
            VALUE, "bob@example.org"
        ]
    (event,) = _events(deployment, "user:privacy-token:reverse")
    details = json.loads(event.details)
    assert details["count"] == 2
    assert details["key_versions"] == [1]
    assert details["tokens"] == [{"hmac": deployment.audit.hash_value(t)} for t in tokens]
    assert event.actor_id == admin.id
    assert event.outcome == "success"
    for secret in (VALUE, "bob@example.org", *tokens):
        assert secret not in event.details


@pytest.mark.parametrize(
    "actor",
    [
        Actor(kind="user", id="u2", role="analyst"),
        Actor(kind="user", id="u3", role="viewer"),
        Actor(kind="operator", id="uid:0", role="operator"),
        Actor.system(),
    ],
)
def test_only_a_tenant_admin_reverses(
    deployment: Deployment, tenant: Tenant, actor: Actor
) -> None:
    with deployment.transaction() as session:
        token = privacy_keys(session, deployment, tenant.id).token(VALUE)
    with pytest.raises(ReversalForbidden) as caught, deployment.transaction() as session:
        reverse_tokens(session, deployment, tenant, actor, [token])
    assert caught.value.status == 403
    with deployment.transaction() as session:
        audit_refused_reversal(session, deployment, tenant.id, actor, 1, caught.value)
    (event,) = _events(deployment, "user:privacy-token:reverse")
    assert event.outcome == "denied"
    assert event.reason == "token-reversal-forbidden"


def test_reversal_is_all_or_nothing(
    deployment: Deployment, tenant: Tenant, admin: Actor
) -> None:
    with deployment.transaction() as session:
        token = privacy_keys(session, deployment, tenant.id).token(VALUE)
    for bad in ([token, token[:-2]], [], [token] * (MAX_TOKENS_PER_REVERSAL + 1)):
        with pytest.raises(TokenInvalid), deployment.transaction() as session:
            reverse_tokens(session, deployment, tenant, admin, bad)
    assert _events(deployment, "user:privacy-token:reverse") == []


def test_rewrap_after_keyring_rotation(deployment: Deployment, tenant: Tenant) -> None:
    with deployment.transaction() as session:
        token = privacy_keys(session, deployment, tenant.id).token(VALUE)
    with deployment.transaction() as session:
        ring = deployment.keys.rotate_tenant(session, tenant.id)
        assert rewrap_privacy_keys(session, ring) == 1
        assert rewrap_privacy_keys(session, ring) == 0
    with deployment.transaction() as session:
        assert privacy_keys(session, deployment, tenant.id).reverse(token) == VALUE


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=200))
def test_any_text_round_trips_and_tenants_differ(value: str) -> None:
    a = PrivacyKeys("tenant-a", {1: PseudonymKey("tenant-a", 1, HMAC_KEY, SIV_KEY)})
    b = PrivacyKeys("tenant-b", {1: PseudonymKey("tenant-b", 1, SIV_KEY[:32], SIV_KEY)})
    assert a.reverse(a.token(value)) == value
    assert a.pseudonym(value) == "p1_" + hmac.digest(HMAC_KEY, value.encode(), "sha256")[:20].hex()
    assert a.pseudonym(value) != b.pseudonym(value)
    assert a.token(value) != b.token(value)


def test_concurrent_first_use_agrees_on_one_key(deployment: Deployment, tenant: Tenant) -> None:
    """Two transactions making the first key at once: one inserts, the other reads it."""
    results: list[str] = []
    errors: list[Exception] = []

    def second() -> None:
        try:
            with deployment.transaction() as session:
                results.append(privacy_keys(session, deployment, tenant.id).pseudonym(VALUE))
        except Exception as exc:  # noqa: BLE001 (reported below, in the test's thread)
            errors.append(exc)

    with deployment.transaction() as session:
        first = privacy_keys(session, deployment, tenant.id).pseudonym(VALUE)
        thread = threading.Thread(target=second)
        thread.start()
        # Give the second transaction the chance to reach its insert and wait on ours;
        # the outcome is the same if it does not get there first.
        time.sleep(0.3)
    thread.join(timeout=30)
    assert not errors
    assert results == [first]
    with deployment.transaction() as session:
        assert key_versions(session, tenant.id) == [1]
    assert len(_events(deployment, "system:privacy-key:create")) == 1


def test_tenant_purge_removes_its_keys_only(
    deployment: Deployment, make_tenant: Callable[[str], Tenant]
) -> None:
    gone, kept = make_tenant("tenant-gone"), make_tenant("tenant-kept")
    with deployment.transaction() as session:
        privacy_keys(session, deployment, gone.id)
        rotate_privacy_keys(session, deployment, gone.id)
        privacy_keys(session, deployment, kept.id)
    with deployment.transaction() as session:
        request_deletion(session, "tenant-gone", "tenant-gone", 0)
    with deployment.transaction() as session:
        purge_tenant(session, session.get_one(Tenant, gone.id))
    with deployment.transaction() as session:
        assert key_versions(session, gone.id) == []
        assert key_versions(session, kept.id) == [1]


def test_concurrent_rotations_never_share_a_version(
    deployment: Deployment, tenant: Tenant
) -> None:
    """The second rotation either conflicts (409) or comes after the first: never a tie."""
    with deployment.transaction() as session:
        privacy_keys(session, deployment, tenant.id)
    outcome: list[object] = []

    def second() -> None:
        try:
            with deployment.transaction() as session:
                outcome.append(rotate_privacy_keys(session, deployment, tenant.id))
        except RotationConflict as conflict:
            outcome.append(conflict)

    with deployment.transaction() as session:
        assert rotate_privacy_keys(session, deployment, tenant.id) == 2
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)  # let the second read the newest version before this one commits
    thread.join(timeout=30)
    assert len(outcome) == 1
    with deployment.transaction() as session:
        versions = key_versions(session, tenant.id)
    if isinstance(outcome[0], RotationConflict):
        assert outcome[0].status == 409
        assert versions == [1, 2]
    else:
        assert outcome == [3]
        assert versions == [1, 2, 3]
