"""Per-tenant, versioned pseudonymisation keys, and the audited reversal of tokens.

Each tenant has key versions 1, 2, ... in ``privacy_keys``, each wrapped by the
tenant keyring. The first is made on first use; :func:`rotate_privacy_keys` adds
the next. New pseudonyms and tokens always use the newest version; every version
is kept, so a token made before a rotation can still be reversed (its prefix names
its version). Pseudonyms change with the version: after a rotation, new exports no
longer join with old ones, which is the point of rotating.

Tokens bind the tenant and key version, not the column: a value gets the same token
in every column and dataset of the tenant, so tokenised exports join like pseudonymised
ones, and a reversal needs only the token.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from strongroom.audit import Actor, EventTag, Outcome, Sensitive
from strongroom.crypto.keyring import TenantKeyRing
from strongroom.crypto.pseudonyms import PseudonymKey, TokenUnreadable, token_version
from strongroom.identity.models import Role
from strongroom.privacy.errors import ReversalForbidden, RotationConflict, TokenInvalid
from strongroom.privacy.models import PseudonymKeyRecord
from strongroom.tenancy.services import require_active

if TYPE_CHECKING:
    from strongroom.deployment import Deployment
    from strongroom.errors import StrongroomError
    from strongroom.tenancy.models import Tenant

MAX_TOKENS_PER_REVERSAL = 1000


@dataclasses.dataclass(frozen=True)
class PrivacyKeys:
    """The opened key versions of one tenant: pseudonymise, tokenise and reverse with them."""

    tenant_id: str
    versions: Mapping[int, PseudonymKey]

    @property
    def current(self) -> PseudonymKey:
        return self.versions[max(self.versions)]

    @property
    def version(self) -> int:
        """The key version new pseudonyms and tokens are made with."""
        return max(self.versions)

    def pseudonym(self, value: str) -> str:
        """``p<version>_`` + 160 bits of HMAC-SHA256 under the current key, in hex."""
        return self.current.pseudonym(value.encode("utf-8"))

    def token(self, value: str) -> str:
        """``t<version>_`` + AES-SIV of the value under the current key, URL-safe base64."""
        return self.current.token(value.encode("utf-8"))

    def reverse(self, token: str) -> str:
        """The value behind a token of any of this tenant's key versions; TokenInvalid otherwise.

        Callers must have checked that the user is a tenant admin and must audit the
        reversal: :func:`reverse_tokens` does both.
        """
        try:
            key = self.versions.get(token_version(token))
            if key is None:
                raise TokenInvalid("the token names a key version this tenant does not have")
            return key.reverse(token).decode("utf-8")
        except (TokenUnreadable, UnicodeDecodeError):
            raise TokenInvalid(
                "a token is malformed, altered, or was not made for this tenant"
            ) from None

    def pseudonyms(self, values: Iterable[str | None]) -> list[str | None]:
        """Many pseudonyms at once (None stays None)."""
        return self.current.pseudonyms(None if v is None else v.encode("utf-8") for v in values)

    def tokens(self, values: Iterable[str | None]) -> list[str | None]:
        """Many tokens at once (None stays None)."""
        make = self.current.token
        return [None if v is None else make(v.encode("utf-8")) for v in values]

    def __repr__(self) -> str:
        return f"PrivacyKeys(tenant_id={self.tenant_id!r}, versions={sorted(self.versions)})"


def _records(session: Session, tenant_id: str) -> list[PseudonymKeyRecord]:
    return list(
        session.scalars(
            sa.select(PseudonymKeyRecord)
            .where(PseudonymKeyRecord.tenant_id == tenant_id)
            .order_by(PseudonymKeyRecord.version)
        )
    )


def _insert_first(session: Session, ring: TenantKeyRing, tenant_id: str) -> bool:
    """Insert version 1 unless a concurrent transaction already did; True if this one did.

    ON CONFLICT DO NOTHING instead of a savepoint: on PostgreSQL the insert waits for
    the other transaction and then does nothing, and the re-read sees its key.
    """
    key = PseudonymKey.generate(tenant_id, 1)
    values = {"tenant_id": tenant_id, "version": 1, "wrapped_key": key.wrap(ring)}
    statement: sa.Insert
    if session.get_bind().dialect.name == "postgresql":
        statement = postgresql.insert(PseudonymKeyRecord).values(values).on_conflict_do_nothing(
            index_elements=["tenant_id", "version"]
        )
    else:
        statement = sqlite.insert(PseudonymKeyRecord).values(values).on_conflict_do_nothing(
            index_elements=["tenant_id", "version"]
        )
    # RETURNING, not rowcount: it names a row only when this statement inserted one.
    return session.execute(statement.returning(PseudonymKeyRecord.id)).first() is not None


def privacy_keys(session: Session, deployment: Deployment, tenant_id: str) -> PrivacyKeys:
    """Every key version of the tenant, opened; version 1 is made (and audited) on first use."""
    records = _records(session, tenant_id)
    ring = deployment.keys.tenant_ring(session, tenant_id)
    if not records:
        if _insert_first(session, ring, tenant_id):
            deployment.audit.record_event(
                session, EventTag.PRIVACY_KEY_CREATE, actor=Actor.system(), tenant=tenant_id,
                details={"version": 1},
            )
        records = _records(session, tenant_id)
    return PrivacyKeys(
        tenant_id,
        {r.version: PseudonymKey.unwrap(ring, r.version, r.wrapped_key) for r in records},
    )


def rotate_privacy_keys(
    session: Session, deployment: Deployment, tenant_id: str, *, actor: Actor | None = None
) -> int:
    """Add the next key version and make it current; returns it. Older versions stay.

    New pseudonyms and tokens differ from those made before; old tokens still reverse.
    """
    ring = deployment.keys.tenant_ring(session, tenant_id)
    newest = session.scalar(
        sa.select(sa.func.max(PseudonymKeyRecord.version)).where(
            PseudonymKeyRecord.tenant_id == tenant_id
        )
    )
    version = (newest or 0) + 1
    key = PseudonymKey.generate(tenant_id, version)
    # No savepoint (unreliable under pysqlite's implicit transactions): a concurrent
    # rotation makes the flush fail on the unique (tenant, version), and the caller's
    # transaction is rolled back whole with a 409.
    session.add(
        PseudonymKeyRecord(tenant_id=tenant_id, version=version, wrapped_key=key.wrap(ring))
    )
    try:
        session.flush()
    except sa.exc.IntegrityError:
        raise RotationConflict(
            "another rotation of this tenant's privacy keys happened at the same time",
            hint="list the key versions and retry if still needed",
        ) from None
    deployment.audit.record_event(
        session, EventTag.PRIVACY_KEY_ROTATE, actor=actor or Actor.system(), tenant=tenant_id,
        details={"version": version, "previous": newest},
    )
    return version


def key_versions(session: Session, tenant_id: str) -> list[int]:
    """The tenant's key versions, oldest first (no key material is opened)."""
    return [r.version for r in _records(session, tenant_id)]


@dataclasses.dataclass(frozen=True)
class KeyVersion:
    """When a key version was made; no key material."""

    version: int
    created_at: dt.datetime


def list_key_versions(session: Session, tenant_id: str) -> list[KeyVersion]:
    """The tenant's key versions with their creation times, oldest first (nothing is opened).

    Reading makes nothing: a tenant that never pseudonymised has no versions yet.
    """
    return [KeyVersion(r.version, r.created_at) for r in _records(session, tenant_id)]


def _require_tenant_admin(actor: Actor) -> None:
    if actor.kind != "user" or actor.role != Role.ADMIN.value:
        raise ReversalForbidden("only a tenant admin can reverse tokens")


def reverse_tokens(
    session: Session, deployment: Deployment, tenant: Tenant, actor: Actor, tokens: Sequence[str]
) -> list[str]:
    """The values behind ``tokens``, in order; one audit event for the whole request.

    The route checks the admin role first; this checks it again (defence in depth).
    Every token must be valid or nothing is returned (TokenInvalid, 422). The event
    holds the count, the key versions used and each token as a keyed HMAC (so an
    operator can find the reversal of a known token), never a value or a token.
    Refusals raise; the caller audits them in a transaction of its own with
    :func:`audit_refused_reversal`, since this transaction will roll back.
    """
    require_active(tenant)
    _require_tenant_admin(actor)
    if not tokens:
        raise TokenInvalid("no tokens to reverse")
    if len(tokens) > MAX_TOKENS_PER_REVERSAL:
        raise TokenInvalid(
            f"at most {MAX_TOKENS_PER_REVERSAL} tokens can be reversed at once",
            hint="split the request",
        )
    if not all(isinstance(token, str) for token in tokens):
        raise TokenInvalid("tokens must be strings")
    keys = privacy_keys(session, deployment, tenant.id)
    values = [keys.reverse(token) for token in tokens]
    deployment.audit.record_event(
        session, EventTag.PRIVACY_TOKEN_REVERSE, actor=actor, tenant=tenant.id,
        details={
            "count": len(tokens),
            "key_versions": sorted({token_version(token) for token in tokens}),
            "tokens": [Sensitive(token) for token in tokens],
        },
    )
    return values


def audit_refused_reversal(
    session: Session, deployment: Deployment, tenant_id: str, actor: Actor, count: int,
    error: StrongroomError,
) -> None:
    """Record a refused reversal (wrong role, bad or foreign token) with its reason."""
    outcome = Outcome.DENIED if isinstance(error, ReversalForbidden) else Outcome.FAILURE
    deployment.audit.record_event(
        session, EventTag.PRIVACY_TOKEN_REVERSE, actor=actor, tenant=tenant_id,
        outcome=outcome, reason=error.slug, details={"count": count},
    )


def rewrap_privacy_keys(session: Session, ring: TenantKeyRing) -> int:
    """Re-encrypt the tenant's stored key versions under the keyring's primary key.

    For ``strongroom keys rewrap`` after a keyring rotation; returns how many changed.
    """
    changed = 0
    for record in _records(session, ring.tenant_id):
        key = PseudonymKey.unwrap(ring, record.version, record.wrapped_key)
        if TenantKeyRing.key_id_of(record.wrapped_key) != ring.primary_key_id:
            record.wrapped_key = key.wrap(ring)
            changed += 1
    return changed
