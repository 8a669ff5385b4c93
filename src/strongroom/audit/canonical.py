"""The canonical serialisation of an event, which its hash and MAC cover.

Every stored column except ``hash`` and ``mac`` is included, with the sequence
number and the previous hash, as compact sorted-key JSON. Changing any field,
moving a row to another sequence number or re-linking it changes the hash.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from strongroom.audit.models import AuditEvent
from strongroom.crypto.audit_keys import sha256_hex

GENESIS_HASH = "0" * 64
MAC_DOMAIN = "audit-event"
CHAIN_FIELDS = (
    "seq", "occurred_at", "tag", "event_class", "actor_kind", "actor_id", "actor_role",
    "actor_session", "actor_address", "actor_network", "actor_agent", "tenant_id", "target",
    "outcome", "reason", "details", "prev_hash",
)


def timestamp(value: dt.datetime) -> str:
    """UTC to the microsecond, e.g. 2026-11-26T19:30:58.123456Z (what the hash covers)."""
    # Same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ"), at a fraction of its cost.
    utc = value.astimezone(dt.UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def chain_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed fields of an event given as a mapping (a row about to be inserted)."""
    fields: dict[str, Any] = {name: values[name] for name in CHAIN_FIELDS}
    fields["occurred_at"] = timestamp(values["occurred_at"])
    return fields


def canonical_fields(event: AuditEvent) -> dict[str, Any]:
    return chain_fields({name: getattr(event, name) for name in CHAIN_FIELDS})


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def values_hash(values: Mapping[str, Any]) -> str:
    return sha256_hex(canonical_bytes(chain_fields(values)))


def event_hash(event: AuditEvent) -> str:
    return sha256_hex(canonical_bytes(canonical_fields(event)))
