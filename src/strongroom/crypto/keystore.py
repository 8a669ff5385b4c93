"""Keysets in the metadata database, wrapped by the environment KEK."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session
from tink import aead

from strongroom.config import Environment
from strongroom.crypto import audit_keys, backup_keys, master
from strongroom.crypto._tink import TinkError
from strongroom.crypto.errors import KeyNotFound, MasterKeyError
from strongroom.crypto.keyring import TenantKeyRing, keyset_context
from strongroom.crypto.macs import MacKey
from strongroom.crypto.models import DeploymentRecord, KeysetRecord
from strongroom.db import utcnow

KEK_PURPOSE = "kek"
DEPLOYMENT_OWNER = "deployment"
IDENTITY_PURPOSE = "identity-mac"
TELEMETRY_PURPOSE = "telemetry-mac"
_RING_CACHE_MAX = 1024


class KeyStore:
    """Creates, opens and rotates keysets. Callers own the session and its transaction."""

    def __init__(self, env_kek: aead.Aead, environment: Environment) -> None:
        self._kek = env_kek
        self.environment = environment
        # Unwrapped keys, by purpose and by the exact stored ciphertext. A committed
        # deployment secret never changes, and a keyset row that is rotated gets a new
        # ciphertext, so a stale entry can never be served; the caches only spare the
        # unwrap (and the second factor of work) on every request.
        self._secrets: dict[str, bytes] = {}
        self._rings: dict[tuple[str, bytes], TenantKeyRing] = {}

    # -- the deployment ----------------------------------------------------------------------

    def initialise(self, session: Session) -> None:
        """Record the environment and a key check, so a wrong key is recognised at start-up."""
        if session.get(DeploymentRecord, 1) is not None:
            raise MasterKeyError("this database already belongs to an initialised deployment")
        session.add(
            DeploymentRecord(
                id=1,
                environment=self.environment.value,
                key_check=master.make_key_check(self._kek, self.environment),
            )
        )

    def check(self, session: Session) -> None:
        record = session.get(DeploymentRecord, 1)
        if record is None:
            raise MasterKeyError(
                "the metadata database holds no deployment",
                hint="run `strongroom init` for this home first",
            )
        master.verify_key_check(self._kek, record.key_check, self.environment, record.environment)

    # -- tenant keysets ----------------------------------------------------------------------

    def create_tenant_ring(self, session: Session, tenant_id: str) -> TenantKeyRing:
        ring = TenantKeyRing.generate(self.environment, tenant_id)
        session.add(
            KeysetRecord(
                owner=tenant_id, purpose=KEK_PURPOSE, encrypted_keyset=ring.wrap(self._kek)
            )
        )
        return ring

    def _record(self, session: Session, tenant_id: str) -> KeysetRecord:
        record = session.scalars(
            sa.select(KeysetRecord).where(
                KeysetRecord.owner == tenant_id, KeysetRecord.purpose == KEK_PURPOSE
            )
        ).one_or_none()
        if record is None:
            raise KeyNotFound("the tenant has no keyset")
        return record

    def tenant_ring(self, session: Session, tenant_id: str) -> TenantKeyRing:
        record = self._record(session, tenant_id)
        key = (tenant_id, bytes(record.encrypted_keyset))
        ring = self._rings.get(key)
        if ring is None:
            ring = TenantKeyRing.unwrap(
                record.encrypted_keyset, self._kek, self.environment, tenant_id
            )
            if len(self._rings) >= _RING_CACHE_MAX:
                self._rings.clear()
            self._rings[key] = ring
        return ring

    def rotate_tenant(self, session: Session, tenant_id: str) -> TenantKeyRing:
        """Add a new primary key version to the tenant keyset; older versions stay usable."""
        record = self._record(session, tenant_id)
        ring = TenantKeyRing.unwrap(
            record.encrypted_keyset, self._kek, self.environment, tenant_id
        ).rotated()
        record.encrypted_keyset = ring.wrap(self._kek)
        record.version = ring.version
        record.rotated_at = utcnow()
        return ring

    # -- deployment secrets (audit) ----------------------------------------------------------

    def _secret(self, session: Session, purpose: str) -> bytes:
        if purpose in self._secrets:
            return self._secrets[purpose]
        context = keyset_context(self.environment, DEPLOYMENT_OWNER, purpose)
        record = session.scalars(
            sa.select(KeysetRecord).where(
                KeysetRecord.owner == DEPLOYMENT_OWNER, KeysetRecord.purpose == purpose
            )
        ).one_or_none()
        if record is None:
            secret = audit_keys.new_secret()
            session.add(
                KeysetRecord(
                    owner=DEPLOYMENT_OWNER,
                    purpose=purpose,
                    encrypted_keyset=self._kek.encrypt(secret, context),
                )
            )
            session.flush()
            return secret
        try:
            secret = bytes(self._kek.decrypt(record.encrypted_keyset, context))
        except TinkError:
            raise MasterKeyError(
                f"the deployment's {purpose} key does not open with this master key"
            ) from None
        # Cached only once read back from a committed row: a secret made in a
        # transaction that then rolls back must not outlive it.
        self._secrets[purpose] = secret
        return secret

    def audit_keys(self, session: Session) -> audit_keys.AuditKeys:
        """The audit HMAC and signing keys, made on first use."""
        return audit_keys.AuditKeys(
            self._secret(session, audit_keys.MAC_PURPOSE),
            self._secret(session, audit_keys.SIGNING_PURPOSE),
        )

    def backup_signing_key(self, session: Session) -> backup_keys.BackupSigningKey:
        """The Ed25519 key that signs backup manifests, made on first use."""
        return backup_keys.BackupSigningKey(self._secret(session, backup_keys.SIGNING_PURPOSE))

    def identity_key(self, session: Session) -> MacKey:
        """The key that turns emails into look-up tokens and derives CSRF tokens."""
        return MacKey(self._secret(session, IDENTITY_PURPOSE))

    def telemetry_key(self, session: Session) -> MacKey:
        """The key that turns user and tenant ids into usage-telemetry pseudonyms."""
        return MacKey(self._secret(session, TELEMETRY_PURPOSE))

    # -- deployment-level sealing (operator MFA secrets) -------------------------------------

    def seal(self, plaintext: bytes, purpose: str) -> bytes:
        context = keyset_context(self.environment, DEPLOYMENT_OWNER, purpose)
        return bytes(self._kek.encrypt(plaintext, context))

    def unseal(self, ciphertext: bytes, purpose: str) -> bytes:
        try:
            return bytes(
                self._kek.decrypt(
                    ciphertext, keyset_context(self.environment, DEPLOYMENT_OWNER, purpose)
                )
            )
        except TinkError:
            raise MasterKeyError(f"sealed {purpose} does not open with this master key") from None
