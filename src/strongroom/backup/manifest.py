"""The signed manifest: every file and object of a backup with its SHA-256.

On disk a manifest is a JSON envelope ``{"body": "...", "signature": "...",
"seal": "..."}``. ``body`` is the exact JSON text that was signed (Ed25519, by
the deployment's backup-signing key) and sealed (an AEAD ciphertext of its
digest under the environment KEK, so a forger needs the master key too).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from strongroom.backup.errors import BackupCorrupted
from strongroom.crypto import backup_keys
from strongroom.crypto.audit_keys import AuditPublicKey
from strongroom.crypto.keystore import KeyStore

FORMAT = "strongroom-backup/1"


@dataclasses.dataclass(frozen=True)
class FileEntry:
    name: str
    role: str  # "database" or "home:<relative path>"
    sha256: str
    size: int


@dataclasses.dataclass(frozen=True)
class ObjectEntry:
    prefix: str
    digest: str
    size: int


@dataclasses.dataclass(frozen=True)
class Manifest:
    backup_id: str
    kind: str
    created_at: str
    environment: str
    backend: str
    schema: str | None
    wrapped_key: bytes
    files: tuple[FileEntry, ...]
    objects: tuple[ObjectEntry, ...]
    audit_seq: int
    public_key: str

    def body(self) -> bytes:
        data: dict[str, Any] = {
            "format": FORMAT,
            "id": self.backup_id,
            "kind": self.kind,
            "created_at": self.created_at,
            "environment": self.environment,
            "database": {"backend": self.backend, "schema": self.schema},
            "wrapped_key": base64.b64encode(self.wrapped_key).decode(),
            "files": [dataclasses.asdict(f) for f in self.files],
            "objects": [dataclasses.asdict(o) for o in self.objects],
            "audit_seq": self.audit_seq,
            "public_key": self.public_key,
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @property
    def object_bytes(self) -> int:
        return sum(o.size for o in self.objects)


def sign(manifest: Manifest, keys: KeyStore, signer: backup_keys.BackupSigningKey) -> bytes:
    """The manifest file: body, Ed25519 signature and KEK seal."""
    body = manifest.body()
    envelope = {
        "body": body.decode(),
        "signature": signer.sign(body),
        "seal": base64.b64encode(
            backup_keys.seal_manifest(keys, body, manifest.backup_id)
        ).decode(),
    }
    return (json.dumps(envelope, sort_keys=True) + "\n").encode()


def _parse_body(body: bytes, backup_id: str) -> Manifest:
    data = json.loads(body)
    if data.get("format") != FORMAT or data.get("id") != backup_id:
        raise ValueError
    return Manifest(
        backup_id=str(data["id"]),
        kind=str(data["kind"]),
        created_at=str(data["created_at"]),
        environment=str(data["environment"]),
        backend=str(data["database"]["backend"]),
        schema=data["database"]["schema"],
        wrapped_key=base64.b64decode(data["wrapped_key"], validate=True),
        files=tuple(
            FileEntry(str(f["name"]), str(f["role"]), str(f["sha256"]), int(f["size"]))
            for f in data["files"]
        ),
        objects=tuple(
            ObjectEntry(str(o["prefix"]), str(o["digest"]), int(o["size"]))
            for o in data["objects"]
        ),
        audit_seq=int(data["audit_seq"]),
        public_key=str(data["public_key"]),
    )


def load(
    raw: bytes, backup_id: str, keys: KeyStore, expected_public_key: str | None = None
) -> Manifest:
    """Parse and authenticate a manifest; BackupCorrupted names exactly what is wrong."""
    where = f"backup {backup_id}: manifest"
    if not raw:
        raise BackupCorrupted(f"{where} is missing")
    try:
        envelope = json.loads(raw)
        body = str(envelope["body"]).encode()
        signature = str(envelope["signature"])
        seal = base64.b64decode(str(envelope["seal"]), validate=True)
    except (ValueError, KeyError, TypeError):
        raise BackupCorrupted(f"{where} is truncated or not valid JSON") from None
    try:
        public_key = str(json.loads(body)["public_key"])
        verifier = AuditPublicKey.from_hex(public_key)
    except (ValueError, KeyError, TypeError):
        raise BackupCorrupted(f"{where} body is malformed") from None
    if not verifier.verify(signature, body):
        raise BackupCorrupted(f"{where} signature does not verify (forged or altered)")
    if expected_public_key is not None and public_key != expected_public_key:
        raise BackupCorrupted(f"{where} was signed by another deployment's key (forged)")
    if not backup_keys.manifest_seal_matches(keys, body, backup_id, seal):
        raise BackupCorrupted(
            f"{where} seal does not open with this master key (forged, or another "
            "deployment or environment)"
        )
    try:
        return _parse_body(body, backup_id)
    except (ValueError, KeyError, TypeError):
        raise BackupCorrupted(f"{where} body is malformed") from None
