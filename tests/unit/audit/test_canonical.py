"""The canonical form is a format: logs written today must verify with tomorrow's code.

Known-answer values, computed independently with plain SHA-256 and HMAC-SHA256
over the documented serialisation. If one changes, every existing log stops
verifying: change the format only with a migration of the chain.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from strongroom.audit import canonical
from strongroom.crypto.audit_keys import AuditKeys, sha256_hex

ROW: dict[str, Any] = {
    "seq": 42, "occurred_at": dt.datetime(2026, 11, 26, 19, 30, 58, 120000, tzinfo=dt.UTC),
    "tag": "operator:tenant:create", "event_class": "administration", "actor_kind": "operator",
    "actor_id": "uid:1000", "actor_role": "operator", "actor_session": "cli:pid:7",
    "actor_address": None, "actor_network": None, "actor_agent": "strongroom-cli/0.1.0",
    "tenant_id": "t1", "target": "tenant:t1", "outcome": "success", "reason": None,
    "details": "{}", "prev_hash": "ab" * 32,
}
CANONICAL = (
    '{"actor_address":null,"actor_agent":"strongroom-cli/0.1.0","actor_id":"uid:1000",'
    '"actor_kind":"operator","actor_network":null,"actor_role":"operator",'
    '"actor_session":"cli:pid:7","details":"{}","event_class":"administration",'
    '"occurred_at":"2026-11-26T19:30:58.120000Z","outcome":"success",'
    '"prev_hash":"' + "ab" * 32 + '","reason":null,"seq":42,'
    '"tag":"operator:tenant:create","target":"tenant:t1","tenant_id":"t1"}'
)


def test_canonical_bytes_and_hash_are_stable() -> None:
    assert canonical.canonical_bytes(canonical.chain_fields(ROW)).decode() == CANONICAL
    assert canonical.values_hash(ROW) == (
        "5ca2046caabac56bbaae11b64ef0b93ec5d69b3ef6e30e22fc2e1114bc4f07eb"
    )
    assert sha256_hex(CANONICAL.encode()) == canonical.values_hash(ROW)


def test_the_seal_is_hmac_sha256_over_domain_nul_value() -> None:
    keys = AuditKeys(bytes(range(32)), bytes(32))
    assert keys.mac("audit-event", b"abc") == (
        "e50df819c600fddbcb99c66293ed3fa9bff07c41fae605f4cce7977288c2aee0"
    )
    assert keys.mac_matches("audit-event", b"abc", keys.mac("audit-event", b"abc"))
    assert not keys.mac_matches("audit-value", b"abc", keys.mac("audit-event", b"abc"))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "2026-01-02T03:04:05.000000Z"),
        (dt.datetime(2026, 1, 2, 0, 30, 0, 7, tzinfo=dt.timezone(dt.timedelta(hours=1))),
         "2026-01-01T23:30:00.000007Z"),
    ],
)
def test_timestamps_are_utc_to_the_microsecond(value: dt.datetime, text: str) -> None:
    assert canonical.timestamp(value) == text


def test_every_stored_column_but_hash_and_mac_is_covered() -> None:
    from strongroom.audit.models import AuditEvent

    columns = {c.name for c in AuditEvent.__table__.columns}
    assert set(canonical.CHAIN_FIELDS) == columns - {"hash", "mac"}
